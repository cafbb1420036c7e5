"""sample.py: hand-written forward vs HF, greedy == model.generate (left padding), seeding / batch-order
independence, stop-at-answer-line, resume after a torn write, CUDA-graph code path (emulated), bad input."""
import json
import os
import subprocess
import sys
from contextlib import nullcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import REPO
from common import DataError, format_prompt, load_model, write_jsonl
import sample
from engine import Sampler, qwen2_forward, sample_seed, sample_tokens, uniforms
from problems import load_problems

QUESTIONS = ["Mia has 7 boxes.", "Tom buys 3 bags of 12 apples each and finds 5 more. How many apples does Tom have?",
             "x", "Leo sells 44 cards to Ava.", "Zoe has 9 jars of 35 shells and 4 jars of 27 shells. How many?",
             "Ben has 6 packs."]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny shapes, one intra-op thread


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    torch.manual_seed(0)
    model, tok, _ = load_model(str(tiny_model_dir))
    return model.eval(), tok


def hf_greedy(model, tok, prompts, n):
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    return [out[i, enc["input_ids"].shape[1]:].tolist() for i in range(len(prompts))]


def as_hf(r, eos):  # our result as the token list model.generate returns (EOS kept, pads after it dropped)
    return r["token_ids"] + ([eos] if r["finish_reason"] == "eos" else [])


# ---------------------------------------------------------------- model / decoding equivalence

def test_forward_matches_hf_logits(tiny):
    model, tok = tiny
    prompts = [format_prompt(q) for q in QUESTIONS[:3]]
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    ids, am = enc["input_ids"], enc["attention_mask"].bool()
    B, P = ids.shape
    pos = (am.long().cumsum(-1) - 1).clamp(min=0)
    mask = ((torch.ones(P, P, dtype=torch.bool).tril() & am[:, None, :]) | torch.eye(P, dtype=torch.bool))[:, None]
    cfg = model.config
    kv = [(torch.zeros(B, cfg.num_key_value_heads, P + 4, 16), torch.zeros(B, cfg.num_key_value_heads, P + 4, 16))
          for _ in range(cfg.num_hidden_layers)]
    with torch.no_grad():
        ours = model.lm_head(qwen2_forward(model, ids, pos, kv, torch.arange(P), mask))
        ref = model(input_ids=ids, attention_mask=enc["attention_mask"], position_ids=pos).logits[:, -1]
    assert torch.allclose(ours, ref, atol=1e-5), (ours - ref).abs().max()


def test_greedy_equals_model_generate_left_padded(tiny):
    model, tok = tiny
    prompts = [format_prompt(q) for q in QUESTIONS]          # 6 different lengths -> left padding
    ref = hf_greedy(model, tok, prompts, 16)
    s = Sampler(model, tok)
    for bs in (6, 4, 1):                                     # one batch, two batches, no batching
        res = s.generate(prompts, list(range(6)), max_new_tokens=16, temperature=0, batch_size=bs, stop_at_answer=False)
        for r, h in zip(res, ref):
            assert as_hf(r, tok.eos_token_id) == h[:len(as_hf(r, tok.eos_token_id))]
            assert r["finish_reason"] == "eos" or (r["finish_reason"] == "length" and r["n_tokens"] == 16)


# ---------------------------------------------------------------- randomness

def test_uniforms_counter_based():
    u = uniforms([0, 1, 10**15, 2**63 + 5], 50)
    assert u.shape == (4, 50) and u.dtype == np.float32 and (u >= 0).all() and (u < 1).all()
    assert np.array_equal(uniforms([1, 0], 10), u[[1, 0], :10])     # prefix- and order-independent
    assert len(np.unique(u)) > 190
    # pinned: stored seeds must keep regenerating the same samples across versions
    assert uniforms([0, 12345], 3).ravel().tolist() == pytest.approx(
        [0.7012121081, 0.3871241212, 0.6564136744, 0.5009453893, 0.1775110960, 0.7054615617], abs=1e-9)
    assert sample_seed(3, 5, 2) == 3 * 1_000_003 + 5 * 1009 + 2


def test_sample_tokens_inverse_cdf():
    torch.manual_seed(0)
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -30.0]]).repeat(20000, 1)
    u = torch.from_numpy(uniforms(range(20000), 1)[:, 0])
    tok = sample_tokens(logits, u, temperature=1.0)
    freq = torch.bincount(tok, minlength=5).float() / 20000
    assert torch.allclose(freq, torch.softmax(logits[0], -1), atol=0.015)
    tok = sample_tokens(logits, u, temperature=1.0, top_p=0.7)      # nucleus = {0, 1}: 0.64 + 0.24 >= 0.7
    assert set(tok.tolist()) == {0, 1}
    assert sample_tokens(logits[:2], u[:2], temperature=0).tolist() == [0, 0]


def test_seeding_reproducible_and_batch_independent(tiny):
    model, tok = tiny
    s = Sampler(model, tok)
    prompts = [format_prompt(q) for q in QUESTIONS for _ in range(3)]   # k = 3 rows per problem
    seeds = [sample_seed(7, i // 3, i % 3) for i in range(len(prompts))]
    kw = dict(max_new_tokens=20, temperature=1.0, stop_at_answer=False)
    a = s.generate(prompts, seeds, batch_size=8, **kw)
    b = s.generate(prompts[::-1], seeds[::-1], batch_size=5, **kw)[::-1]   # other order, other batch composition
    assert [r["token_ids"] for r in a] == [r["token_ids"] for r in b]
    assert len({tuple(r["token_ids"]) for r in a[:3]}) > 1                 # the k samples differ
    for i in (0, 7, 16):                                                    # regenerate one sample alone from its seed
        assert s.generate([prompts[i]], [seeds[i]], batch_size=1, **kw)[0]["token_ids"] == a[i]["token_ids"]
    c = s.generate(prompts, [x + 1 for x in seeds], batch_size=8, **kw)
    assert [r["token_ids"] for r in c] != [r["token_ids"] for r in a]
    short = s.generate(prompts[:4], seeds[:4], batch_size=4, **{**kw, "max_new_tokens": 7})
    assert all(r["token_ids"] == x["token_ids"][:7] for r, x in zip(short, a))  # --max-new-tokens only truncates


# ---------------------------------------------------------------- stopping (a scripted "model": continues a fixed text)

TEXT = "Question: Amy has 3 bags.\nAnswer: Amy has 3 * 4 = 12 pens.\nThe answer is: 12\nMore words here\n"


def scripted(tiny, text=TEXT):
    """Sampler whose model continues `text` token by token (then EOS), whatever the prompt's cut point: the 'next
    token' of absolute position p is text token p + 1. Rows with different prompt lengths finish at different steps."""
    model, tok = tiny
    full = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    script = torch.tensor(full[1:] + [tok.eos_token_id] * 64)

    class Head(torch.nn.Module):
        weight = torch.zeros(1)

        def forward(self, h):  # h = position of the input token
            return F.one_hot(script[h[:, 0].long()], len(tok)).float() * 50

    s = Sampler(model, tok)
    s.fwd = lambda m, ids, pos, *a, **k: pos[:, -1:].float()
    s.model = type("M", (), {"lm_head": Head(), "config": model.config})()
    return s, full


def test_stop_at_answer_line_eos_and_length(tiny):
    s, full = scripted(tiny)
    tok = tiny[1]
    cut = len(tok("Question: Amy has 3 bags.\nAnswer:", add_special_tokens=False)["input_ids"])
    after = len(tok("Question: Amy has 3 bags.\nAnswer: Amy has 3 * 4 = 12 pens.\nThe answer is: 12\n",
                    add_special_tokens=False)["input_ids"])
    prompts = [full[:cut], full[:after], full[:cut], full[:cut + 3]]
    res = s.generate(prompts, [0, 1, 2, 3], max_new_tokens=30, temperature=0, batch_size=4)
    assert res[0]["completion"] == " Amy has 3 * 4 = 12 pens.\nThe answer is: 12"
    assert res[0]["finish_reason"] == "stop" and res[0]["n_tokens"] == after - cut   # incl. the newline token
    assert res[1] == {"completion": "More words here\n", "finish_reason": "eos", "n_tokens": len(full) - after,
                      "token_ids": full[after:-1]}
    assert res[3]["completion"] == tok.decode(full[cut + 3:after - 1]) and res[3]["finish_reason"] == "stop"
    short = s.generate(prompts[:1], [0], max_new_tokens=5, temperature=0)[0]
    assert short["finish_reason"] == "length" and short["n_tokens"] == 5 and short["token_ids"] == full[cut:cut + 5]
    off = s.generate(prompts[:1], [0], max_new_tokens=40, temperature=0, stop_at_answer=False)[0]
    assert off["finish_reason"] == "eos" and off["completion"].endswith("More words here\n")
    for ce in (1, 3, 100):  # host-sync interval changes nothing
        s.check_every = ce
        assert s.generate(prompts, [0, 1, 2, 3], max_new_tokens=30, temperature=0, batch_size=4) == res


def test_cuda_graph_path_emulated(tiny, monkeypatch):
    """The CUDA-graph branch of Sampler._decode on CPU: capture records the step without running it, replay runs it
    with static shapes (eager=False: full T_max attention under the mask). Results must equal plain eager."""
    class Graph:
        capturing, made = None, 0

        def __init__(self):
            Graph.made += 1

        def replay(self):
            self.orig(*self.call)

    orig_step = Sampler._decode_step

    def step(self, st, *a, eager=True):
        if Graph.capturing is not None:
            Graph.capturing.call, Graph.capturing.orig = (self, st, *a), lambda *c: orig_step(*c, eager=False)
            return
        return orig_step(self, st, *a, eager=eager)

    class Capture:
        def __init__(self, g): self.g = g
        def __enter__(self): Graph.capturing = self.g
        def __exit__(self, *e): Graph.capturing = None

    stream = type("S", (), {"wait_stream": lambda self, s: None})
    monkeypatch.setattr(Sampler, "_decode_step", step)
    for name, fn in [("Stream", stream), ("current_stream", stream), ("stream", lambda s: nullcontext()),
                     ("CUDAGraph", Graph), ("graph", Capture)]:
        monkeypatch.setattr(torch.cuda, name, fn)
    model, tok = tiny
    prompts = [format_prompt(q) for q in QUESTIONS]
    for temp in (0.0, 1.0):
        s = Sampler(model, tok)
        want = s.generate(prompts, list(range(6)), max_new_tokens=21, temperature=temp, batch_size=4, stop_at_answer=False)
        s.graphs = True
        got = s.generate(prompts, list(range(6)), max_new_tokens=21, temperature=temp, batch_size=4, stop_at_answer=False)
        assert [r["token_ids"] for r in got] == [r["token_ids"] for r in want]
    assert Graph.made >= 4                                  # a graph per batch: the branch really ran
    s, full = scripted(tiny)  # rows finish at different steps: compaction + recapture
    s.graphs, made = True, Graph.made
    prompts = [full[:n] for n in (12, 20, 25, 30)]
    got = s.generate(prompts, [0, 1, 2, 3], max_new_tokens=40, temperature=0, batch_size=4)
    assert Graph.made - made >= 2
    s.graphs = False
    assert got == s.generate(prompts, [0, 1, 2, 3], max_new_tokens=40, temperature=0, batch_size=4)


# ---------------------------------------------------------------- the CLI: output, resume, sharding-free merge

def cli(tiny_model_dir, data, out, *extra):
    sample.main(["--model", str(tiny_model_dir), "--data", str(data), "-o", str(out), "--k", "2", "--temperature", "1.0",
                 "--max-new-tokens", "12", "--batch-size", "4", "--limit", "6", "--seed", "3", *extra])


def test_cli_output_and_resume_after_torn_write(tiny_model_dir, toy_splits, tmp_path, monkeypatch):
    full = tmp_path / "full.jsonl"
    cli(tiny_model_dir, toy_splits["test"], full)
    recs = [json.loads(l) for l in full.read_text().splitlines()]
    assert len(recs) == 12 and [(r["problem_index"], r["sample_idx"]) for r in recs] == [(i, j) for i in range(6) for j in range(2)]
    r = recs[3]
    assert r["id"] == f"{r['problem_id']}/1" and r["seed"] == sample_seed(3, 1, 1) and r["model"] == str(tiny_model_dir)
    assert r["prompt"] == format_prompt(r["question"]) and r["finish_reason"] in ("eos", "stop", "length")
    for k in ("answer", "reference_solution", "completion", "n_tokens"):
        assert k in r
    meta = json.loads((tmp_path / "full.jsonl.meta.json").read_text())
    assert meta["stage"] == "sample" and meta["status"] == "done" and meta["stats"]["n_samples"] == 12 and meta["parent"] == str(toy_splits["test"])
    assert not list(tmp_path.glob("full.jsonl.part*"))

    # killed after the first batch: its records are flushed, then a torn half line from the batch in flight
    out = tmp_path / "killed.jsonl"
    real = Sampler.generate_batches

    def dies(self, *a, **k):
        it = real(self, *a, **k)
        yield next(it)
        raise KeyboardInterrupt

    monkeypatch.setattr(Sampler, "generate_batches", dies)
    with pytest.raises(KeyboardInterrupt):
        cli(tiny_model_dir, toy_splits["test"], out)
    monkeypatch.setattr(Sampler, "generate_batches", real)
    part = tmp_path / "killed.jsonl.part0"
    assert len(part.read_text().splitlines()) == 4 and not out.exists()
    assert json.loads((tmp_path / "killed.jsonl.meta.json").read_text())["status"] == "running"
    with open(part, "a") as f:
        f.write('{"id": "t-test-000005/0", "problem_id": "t-te')
    n_generated = []

    def spy(self, prompts, *a, **k):
        n_generated.append(len(prompts))
        return real(self, prompts, *a, **k)

    monkeypatch.setattr(Sampler, "generate_batches", spy)
    cli(tiny_model_dir, toy_splits["test"], out, "--resume")
    assert n_generated == [8]                                    # only the unfinished rows
    assert out.read_bytes() == full.read_bytes()                 # same file as the uninterrupted run
    cli(tiny_model_dir, toy_splits["test"], out, "--resume")    # finished: nothing to do, file unchanged
    assert n_generated == [8, 0] and out.read_bytes() == full.read_bytes()
    cli(tiny_model_dir, toy_splits["test"], out, "--resume", "--k", "3")  # growing k: only the new samples
    assert n_generated == [8, 0, 6]
    cli(tiny_model_dir, toy_splits["test"], full, "--k", "3")
    assert out.read_bytes() == full.read_bytes()
    with pytest.raises(SystemExit, match="--seed 3"):
        sample.main(["--model", str(tiny_model_dir), "--data", str(toy_splits["test"]), "-o", str(out), "--k", "2",
                     "--limit", "6", "--seed", "4", "--resume"])


def test_bad_input_names_file_line_field(tmp_path):
    p = tmp_path / "bad.jsonl"
    good = {"id": "a", "question": "q?", "answer": "1"}
    for lines, msg in [([good, {"id": "b", "question": "q2"}], "bad.jsonl:2: missing field 'answer'"),
                       ([good, {"id": "b", "question": 3, "answer": "1"}], "bad.jsonl:2: field 'question' must be str"),
                       ([good, good], "bad.jsonl:2: duplicate id 'a'"),
                       ([{"id": "a", "question": "  ", "answer": "1"}], "bad.jsonl:1: field 'question' is empty")]:
        write_jsonl(p, lines)
        with pytest.raises(DataError, match=msg):
            load_problems(p)
    p.write_text(json.dumps(good) + "\n{not json\n")
    out = subprocess.run([sys.executable, "sample.py", "--model", "toy", "--data", str(p), "-o", str(tmp_path / "o.jsonl")],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode != 0 and "error: " in out.stderr and "bad.jsonl:2: invalid JSON" in out.stderr
