"""engine.py: the plain reference decode loop (HF forward, no cache, one row at a time) == the fast Sampler token for
token, greedy and seeded, with every stop rule firing; reference greedy == model.generate; over-long prompts are
refused (engine, problems.py, both stage scripts: FILE:LINE, no tokenising of a 10 MB question, nothing written)."""
import json
import time

import pytest
import torch

from conftest import tiny_qwen2
from common import DataError, format_prompt, format_response, write_jsonl
from engine import Sampler, reference_generate
from problems import encode_prompts, load_problems

# solutions that end at EOS, and ones that go on after the answer line (the "stop" rule cuts them)
PROBLEMS = [("Mia has 7 boxes of 3 pens. How many pens?", "Mia has 7 * 3 = 21 pens.\nThe answer is: 21\nMore words"),
            ("Leo has 4 bags of 12 apples. How many apples?", "Leo has 4 * 12 = 48 apples.\nThe answer is: 48"),
            ("Ava sells 9 cards and buys 5 more. How many?", "Ava has 9 + 5 = 14 cards.\nThe answer is: 14\nok\n")]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny shapes, one intra-op thread


@pytest.fixture(scope="module")
def taught(toy_tok):
    """A tiny Qwen2 overfit on PROBLEMS for a few seconds, so that greedy and sampled decoding reach EOS, the answer
    line and newlines (a random model only ever runs to the budget)."""
    tok = toy_tok
    model = tiny_qwen2(tok, seed=1)
    seqs = [tok(format_prompt(q) + format_response(s), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            for q, s in PROBLEMS]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(120):
        for ids in seqs:
            x = torch.tensor([ids])
            loss = model(input_ids=x, labels=x).loss
            loss.backward()
        opt.step()
        opt.zero_grad()
    model.config._attn_implementation = "sdpa"
    return model.eval(), tok


def prompts_of(tok, extra=()):
    return [format_prompt(q) for q, _ in PROBLEMS] + [format_prompt(q) for q in extra]


def test_reference_equals_sampler_greedy_and_seeded(taught):
    model, tok = taught
    prompts = prompts_of(tok, ["Zoe has 5 jars.", "x"])                     # + unseen prompts, other lengths
    prompts = [p for p in prompts for _ in range(2)]                        # 2 rows per prompt: shared prefill
    seeds = list(range(100, 100 + len(prompts)))
    s = Sampler(model, tok)
    reasons = set()
    for kw in (dict(temperature=0.0), dict(temperature=1.0), dict(temperature=1.3, top_p=0.9),
               dict(temperature=0.0, stop_at_answer=False), dict(temperature=1.0, max_new_tokens=7)):
        kw = {"max_new_tokens": 40, **kw}
        ref = reference_generate(model, tok, prompts, seeds, **kw)
        for bs, ce in ((10, 8), (3, 1)):
            s.check_every = ce
            assert s.generate(prompts, seeds, batch_size=bs, **kw) == ref, (kw, bs)
        reasons |= {r["finish_reason"] for r in ref}
    assert reasons == {"eos", "stop", "length"}                             # every stop rule was compared
    greedy = reference_generate(model, tok, prompts[:1], [0], max_new_tokens=40)[0]
    assert greedy["finish_reason"] == "stop" and greedy["completion"] == " " + PROBLEMS[0][1].split("\nMore")[0]


def test_reference_greedy_equals_model_generate(taught):
    model, tok = taught
    prompts = prompts_of(tok, ["Zoe has 5 jars of 8 beads.", "Tom"])
    ref = reference_generate(model, tok, prompts, [0] * len(prompts), max_new_tokens=30, stop_at_answer=False)
    for p, r in zip(prompts, ref):
        x = torch.tensor([tok(p, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=30, do_sample=False,
                                 pad_token_id=tok.pad_token_id)[0, x.shape[1]:].tolist()
        assert r["token_ids"] + ([tok.eos_token_id] if r["finish_reason"] == "eos" else []) == out


# ---------------------------------------------------------------- over-long prompts (issue 12): refused, stated rule

def test_engine_and_encode_prompts_refuse_over_long(taught, tmp_path):
    model, tok = taught
    s = Sampler(model, tok)
    limit = s.max_prompt_tokens(100)
    assert limit == model.config.max_position_embeddings - 100
    ok = [tok.eos_token_id] * limit
    assert len(s.generate([ok], [0], max_new_tokens=100, temperature=0, batch_size=1)) == 1   # the bound itself fits
    with pytest.raises(ValueError, match=f"{limit + 1} tokens exceeds {limit}"):
        s.generate([ok + ok[:1]], [0], max_new_tokens=100)
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [{"question": "Mia has 7 boxes.", "answer": 7}, {"question": "Tom " * 200, "answer": 1}])
    probs = load_problems(path)
    n = len(tok(format_prompt("Tom " * 200), add_special_tokens=False)["input_ids"])
    assert len(encode_prompts(probs[:1], tok, 512, 100, s.max_token_bytes, path)[0]) < limit
    with pytest.raises(DataError, match=rf"p.jsonl:2: prompt of {n} tokens exceeds the {n - 1} tokens a prompt may "
                                        rf"hold \(the model's {n + 99} positions minus --max-new-tokens 100\)"):
        encode_prompts(probs, tok, n + 99, 100, s.max_token_bytes, path)
    assert len(encode_prompts(probs, tok, n + 100, 100, s.max_token_bytes, path)[1]) == n   # exactly the limit: kept
    with pytest.raises(DataError, match="--max-new-tokens 512 leaves no room for a prompt: the model has 512"):
        encode_prompts(probs, tok, 512, 512, s.max_token_bytes, path)


HUGE = "Tom has 3 pens and 4 more. " * 400_000                                # 10.8 MB


def huge(tmp_path):
    p = tmp_path / "huge.jsonl"
    write_jsonl(p, [{"id": "a", "question": "Mia has 7 boxes.", "answer": "7"}, {"id": "b", "question": HUGE, "answer": "7"}])
    return p


@pytest.mark.parametrize("stage", ["sample", "evaluate"])
def test_cli_refuses_huge_question_and_writes_nothing(tiny_model_dir, tmp_path, stage):
    """In-process (a subprocess pays torch's import, minutes on a loaded box); the `error: ` prefix and the exit
    status come from the same DataError handler test_sample.py's subprocess test checks."""
    import evaluate
    import sample
    data, out = huge(tmp_path), tmp_path / "out"
    args = ["--data", str(data), "--max-new-tokens", "64", "--threads", "1"]
    msg = rf"{data}:2: prompt of {len(format_prompt(HUGE))} characters \(over 448 tokens\) exceeds the 448 tokens"
    with pytest.raises(DataError, match=msg):
        if stage == "sample":
            sample.main(args + ["--model", str(tiny_model_dir), "-o", str(out / "s.jsonl")])
        else:
            evaluate.main(args + ["--models", str(tiny_model_dir), "--out-dir", str(out)])
    assert not out.exists()                                                 # no running meta, no part file, no dir


def test_huge_question_refused_without_tokenising(toy_tok, tmp_path):
    probs = load_problems(huge(tmp_path))
    t0 = time.time()
    with pytest.raises(DataError, match=f"huge.jsonl:2: prompt of {len(format_prompt(HUGE))} characters"):
        encode_prompts(probs, toy_tok, 512, 64, 13, "huge.jsonl")             # 13: the toy vocabulary's longest token
    assert time.time() - t0 < 1                                             # tokenising it takes 20-30 s


def test_evaluate_warns_when_fewer_problems_than_limit(tiny_model_dir, toy_splits, tmp_path, capsys):
    import evaluate
    out = tmp_path / "eval"
    evaluate.main(["--models", str(tiny_model_dir), "--data", str(toy_splits["test"]), "--limit", "500",
                   "--max-new-tokens", "8", "--batch-size", "16", "--out-dir", str(out)])
    msg = f"--limit 500 but {toy_splits['test']} holds only 16 problems"
    assert f"warning: {msg}" in capsys.readouterr().out
    assert msg in (out / "results.md").read_text()
    res = json.loads((out / "results.json").read_text())
    assert res["n_problems"] == 16 and msg in res["warnings"][0]
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md"]   # no temporary files left
    evaluate.main(["--models", str(tiny_model_dir), "--data", str(toy_splits["test"]), "--limit", "16",
                   "--max-new-tokens", "8", "--batch-size", "16", "--out-dir", str(out)])
    assert "warning" not in (out / "results.md").read_text() and json.loads((out / "results.json").read_text())["warnings"] == []
