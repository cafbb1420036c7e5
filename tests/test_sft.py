"""Foundation tests: toy generator, tokenizer, masking, accumulation equivalence, checkpoints,
resume, torchrun DDP, bad-input errors. Small models, CPU, seconds each."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, tiny_qwen2, toy_prepare, torchrun
from checkpoint import load_train_state, save_checkpoint
from common import (IGNORE, DataError, SeqLogp, collate, enable_checkpointing, encode_pair, format_prompt,
                    format_response, load_model, read_jsonl, sequence_logps, write_jsonl)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def run(args, **kw):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=ENV, capture_output=True, text=True, **kw)


# ---------------------------------------------------------------- toy world

def test_toy_generator_deterministic_and_correct():
    prep = toy_prepare()
    a, b = prep.make_split(200, 7, "x"), prep.make_split(200, 7, "x")
    assert a == b
    assert a != prep.make_split(200, 8, "x")
    assert len({r["question"] for r in a}) == 200
    ops = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}
    for r in a:
        eqs = re.findall(r"(\d+) ([-+*]) (\d+) = (\d+)", r["solution"])
        assert len(eqs) >= 2
        for x, op, y, z in eqs:  # every intermediate equation is true arithmetic
            assert ops[op](int(x), int(y)) == int(z), r["solution"]
        assert int(eqs[-1][3]) == int(r["answer"]) >= 0
        assert r["solution"].endswith(f"The answer is: {r['answer']}")


def test_toy_splits_disjoint(tmp_path):
    out = run(["data/toy/prepare.py", "--out-dir", str(tmp_path), "--n-train", "300", "--n-val", "50", "--n-test", "50"])
    assert out.returncode == 0, out.stderr
    q = {s: {r["question"] for r in read_jsonl(tmp_path / f"{s}.jsonl")} for s in ("train", "val", "test")}
    assert not (q["train"] & q["test"]) and not (q["train"] & q["val"]) and not (q["val"] & q["test"])


def test_tokenizer_round_trip(toy_tok):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(REPO / "data" / "toy" / "tokenizer")  # plain HF loading works
    for r in toy_prepare().make_split(50, 3, "rt"):
        text = format_prompt(r["question"]) + format_response(r["solution"])
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    digits = tok.convert_ids_to_tokens(tok("x 12345", add_special_tokens=False)["input_ids"])
    assert [t for t in digits if t.strip("Ġ").isdigit()] == list("12345")  # one token per digit
    assert tok.eos_token == "<|endoftext|>"


# ---------------------------------------------------------------- masking / loss

def test_response_only_masking(toy_tok):
    prompt, resp = format_prompt("Tom has 3 pens."), format_response("3 * 2 = 6\nThe answer is: 6")
    ids, labels = encode_pair(toy_tok, prompt, resp)
    n_prompt = len(toy_tok(prompt, add_special_tokens=False)["input_ids"])
    assert labels[:n_prompt] == [IGNORE] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and ids[-1] == toy_tok.eos_token_id
    assert encode_pair(toy_tok, prompt, resp, max_len=len(ids) - 1) is None


def test_sequence_logps_matches_full_softmax(toy_tok):
    model = tiny_qwen2(toy_tok).eval()
    seqs = [encode_pair(toy_tok, format_prompt(q), format_response(s))
            for q, s in [("a b c", "1 + 2 = 3"), ("longer question here ok", "The answer is: 12345")]]
    x, m, y = collate(seqs, toy_tok.pad_token_id)
    with torch.no_grad():
        lp, n = sequence_logps(model, x, m, y, chunk=3)  # small chunk: exercises the chunk loop
        logits = model(input_ids=x, attention_mask=m).logits.double()
        full = torch.log_softmax(logits[:, :-1], -1).gather(2, y[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)
        ref = (full * (y[:, 1:] != IGNORE)).sum(-1)
    assert torch.allclose(lp.double(), ref, atol=1e-4)
    assert n.tolist() == [sum(t != IGNORE for t in lab) for _, lab in seqs]
    # prompt tokens carry no log-prob: labelling them too adds their terms, so the masked sum is smaller in size
    y_all = torch.where(m.bool(), x, torch.full_like(x, IGNORE))
    with torch.no_grad():
        lp_all, n_all = sequence_logps(model, x, m, y_all)
    assert (n_all > n).all() and (lp_all < lp).all()


def test_checkpointing_same_gradients_no_deprecation(toy_tok, recwarn):
    """--grad-checkpointing recomputes the layers in backward: the same loss and gradients as keeping activations,
    and no FutureWarning from transformers' renamed call."""
    seqs = [encode_pair(toy_tok, format_prompt(q), format_response(s))
            for q, s in [("a b c", "1 + 2 = 3"), ("longer question here ok", "The answer is: 12345")]]
    x, m, y = collate(seqs, toy_tok.pad_token_id)
    grads = []
    for ckpt in (False, True):
        model = tiny_qwen2(toy_tok).train()          # same seed: same weights
        if ckpt:
            enable_checkpointing(model)
        assert model.is_activation_checkpointing == ckpt
        lp, n = SeqLogp(model, 1024)(x, m, y)
        (-lp.sum() / n.sum()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning) and "checkpointing" in str(w.message)]


# ---------------------------------------------------------------- training script

def sft(tmp_path, data, model_dir, out, *extra):
    args = ["train_sft.py", "--model", str(model_dir), "--data", str(data), "--val-data", "", "--out-dir", str(out),
            "--lr", "1e-3", "--warmup", "1", "--seed", "3", "--log-every", "1", *extra]
    res = run(args, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def weights(d):
    return load_file(str(d / "model.safetensors"))


def test_accumulation_equivalence(tmp_path, toy_splits, tiny_model_dir):
    # 3 steps: Adam's first step is ~lr*sign(g), blind to a wrong loss scale; later steps are not
    sft(tmp_path, toy_splits["train"], tiny_model_dir, tmp_path / "a", "--batch-size", "4", "--micro-batch-size", "4", "--max-steps", "3")
    sft(tmp_path, toy_splits["train"], tiny_model_dir, tmp_path / "b", "--batch-size", "4", "--micro-batch-size", "1", "--max-steps", "3")
    wa, wb = weights(tmp_path / "a"), weights(tmp_path / "b")
    base = weights(tiny_model_dir)
    assert any(not torch.equal(wa[k], base[k]) for k in wa)  # the step did something
    # tolerance: 1% of lr. Adam divides by sqrt(v)+eps, so a gradient entry that is pure
    # round-off (|g| ~ eps) can move by ~lr either way; a per-micro-batch mean moves every entry
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k


def test_toy_sizes():
    # 'toy' is the embedded default; 'toy-l' its larger sibling (README "The capacity lever"): same tokenizer
    small, tok, how = load_model("toy", seed=3)
    large, tok_l, how_l = load_model("toy-l", seed=3)
    assert how == "random init (toy config)" and how_l == "random init (toy-l config)" and len(tok) == len(tok_l)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 1.6e6 < n(small) < 1.8e6 and 6.5e6 < n(large) < 7.0e6
    assert (large.config.hidden_size, large.config.num_hidden_layers) == (320, 6)
    again, _, _ = load_model("toy", seed=3)   # seeded init: the same weights again
    assert all(torch.equal(a, b) for a, b in zip(small.parameters(), again.parameters()))


def test_checkpoint_round_trip(tmp_path, toy_tok):
    model = tiny_qwen2(toy_tok, seed=5).eval()
    save_checkpoint(tmp_path / "ck", model, toy_tok, {"stage": "test"})
    loaded, tok, how = load_model(str(tmp_path / "ck"))
    assert "pretrained" in how and len(tok) == len(toy_tok)
    x = torch.randint(0, len(toy_tok), (2, 17))
    with torch.no_grad():
        assert torch.equal(model(input_ids=x).logits, loaded.eval()(input_ids=x).logits)
    assert json.loads((tmp_path / "ck" / "hardneg_meta.json").read_text())["stage"] == "test"
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in weights(tmp_path / "ck"))


def test_resume_continues_same_curve(tmp_path, toy_splits, tiny_model_dir):
    common = ["--batch-size", "4", "--micro-batch-size", "2", "--max-steps", "6"]
    sft(tmp_path, toy_splits["train"], tiny_model_dir, tmp_path / "full", *common)
    sft(tmp_path, toy_splits["train"], tiny_model_dir, tmp_path / "res", *common, "--halt-after", "3")
    sft(tmp_path, toy_splits["train"], tiny_model_dir, tmp_path / "res", *common, "--resume")
    hf = load_train_state(tmp_path / "full")["history"]
    hr = load_train_state(tmp_path / "res")["history"]
    assert [h["step"] for h in hr] == list(range(1, 7))
    assert [h["loss"] for h in hf] == [h["loss"] for h in hr]  # exact: same data order, RNG and optimizer state
    wf, wr = weights(tmp_path / "full"), weights(tmp_path / "res")
    for k in wf:
        assert torch.equal(wf[k], wr[k]), k


def test_torchrun_ddp_matches_single_process(tmp_path, toy_splits, tiny_model_dir):
    common = ["--batch-size", "4", "--micro-batch-size", "2", "--max-steps", "2", "--device", "cpu"]
    sft(tmp_path, toy_splits["train"], tiny_model_dir, tmp_path / "one", *common)
    args = ["train_sft.py", "--model", str(tiny_model_dir), "--data", str(toy_splits["train"]), "--val-data", "",
            "--out-dir", str(tmp_path / "two"), "--lr", "1e-3", "--warmup", "1", "--seed", "3", "--threads", "1", *common]
    res = torchrun(args, env=ENV)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "world 2" in res.stdout
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "two")
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=1e-5), k  # 1% of lr, see test_accumulation_equivalence


def test_malformed_jsonl_names_file_line_field(tmp_path, tiny_model_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q1", "solution": "s1"}\n{"question": "q2"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: missing field 'solution'"):
        read_jsonl(bad, required=("question", "solution"))
    res = run(["train_sft.py", "--model", str(tiny_model_dir), "--data", str(bad), "--val-data", "", "--out-dir",
               str(tmp_path / "o"), "--max-steps", "1"])
    assert res.returncode != 0 and "bad.jsonl:2: missing field 'solution'" in res.stderr
    assert not (tmp_path / "o").exists()  # nothing half-written
    bad.write_text('{"question": "q1", "solution": "s1"}\n{"question": "q2", "solution": \n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: invalid JSON"):
        read_jsonl(bad)
    bad.write_text('{"question": 5, "solution": "s"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: field 'question' must be str"):
        read_jsonl(bad, required=("question",), types={"question": str})
