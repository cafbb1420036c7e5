"""Shared fixtures: a tiny random Qwen2 checkpoint on the toy tokenizer and small toy splits,
built once per test session in a temp dir (no network, no ../shared/data)."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"  # real data, present on dev machines only

from common import load_tokenizer, write_jsonl  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: multi-process or end-to-end tests (still CPU, under a minute)")


def toy_prepare():
    """Import data/toy/prepare.py as a module (its CLI only runs under __main__)."""
    spec = importlib.util.spec_from_file_location("toy_prepare", REPO / "data" / "toy" / "prepare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tiny_qwen2(tok, seed=0, layers=2, hidden=64):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=128, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.eos_token_id)
    return Qwen2ForCausalLM(cfg)


@pytest.fixture(scope="session")
def toy_tok():
    return load_tokenizer("toy")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, toy_tok):
    """A saved HF checkpoint dir (config + safetensors + tokenizer) of a tiny random Qwen2."""
    d = tmp_path_factory.mktemp("tiny_model")
    tiny_qwen2(toy_tok).save_pretrained(d)
    toy_tok.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def toy_splits(tmp_path_factory):
    """Small toy train/val/test JSONL files: {'train': path, 'val': path, 'test': path}."""
    d = tmp_path_factory.mktemp("toy_data")
    prep = toy_prepare()
    out = {}
    for name, n, seed in [("train", 64, 1), ("val", 16, 2), ("test", 16, 3)]:
        out[name] = d / f"{name}.jsonl"
        write_jsonl(out[name], prep.make_split(n, seed, f"t-{name}"))
    return out


def torchrun(args, nproc=2, env=None, timeout=300):
    """`python -m torch.distributed.run --standalone --nproc_per_node N args...` from the repo root.
    --standalone: the launcher binds its rendezvous TCP store to port 0 and shares that store with the workers,
    so no port is chosen by us (a fixed port collides, a bind-release-reuse races). Retried twice if the OS
    still reports an address in use, so a collision can only cost time, never the test."""
    env = {k: v for k, v in (env or os.environ).items() if k != "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *map(str, args)]
    for _ in range(3):
        r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        if r.returncode == 0 or "address already in use" not in (r.stdout + r.stderr).lower():
            return r
    return r


@pytest.fixture(scope="module")
def one_thread():
    """Tiny shapes: one intra-op thread is as fast and does not collapse on a shared, loaded CPU. Restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
