"""The real-model path at the real vocabulary: the Qwen2.5 tokenizer (EOS, special tokens, padding both ways, the
stop rule on 'The answer is:' vs '####' vs \\boxed{}), the chunked lm_head at 151,936 tokens, and the whole recipe
shrunken (SMOKE=1 bash run_real.sh). Everything but the first test needs ../shared/data and skips without it."""
import importlib.util
import json
import os
import subprocess

import pytest
import torch

from conftest import REPO, SHARED
from common import IGNORE, collate, encode_pair, format_prompt, format_response, load_tokenizer, sequence_logps

TOKENIZER = SHARED / "qwen2.5_tokenizer"
BASE_CONFIG = SHARED / "qwen2.5_configs" / "Qwen2.5-0.5B" / "config.json"
needs_shared = pytest.mark.skipif(not TOKENIZER.exists() or not BASE_CONFIG.exists(), reason="../shared/data absent")


def test_math_answer_kept_on_one_line():
    """The sampler stops at the newline ending 'The answer is: ...': an answer broken over lines (one exists in
    MATH test) must become one line in the prepared data, or every solution to that problem would be cut."""
    spec = importlib.util.spec_from_file_location("prep_math", REPO / "data" / "math" / "prepare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = mod.convert({"problem": "Area?", "solution": r"It is $\boxed{90\text{ square" + "\n" + r"units}}$."}, 0, "test")
    assert r["answer"] == r"90\text{ square units}"
    assert r["solution"].endswith("\nThe answer is: " + r["answer"]) and r["solution"].count("\n") == 2


def tiny_real_vocab_model(seed=0):
    """The Qwen2.5 base config cut to 2 layers / hidden 64, real 151,936 vocabulary (as SMOKE=1 run_real.sh)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = json.loads(BASE_CONFIG.read_text())
    cfg.update(num_hidden_layers=2, hidden_size=64, intermediate_size=192, num_attention_heads=4, num_key_value_heads=2,
               max_window_layers=2)
    cfg.pop("layer_types", None)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(**cfg))
    model.config._attn_implementation = "sdpa"
    return model


@pytest.fixture(scope="module")
def real_tok():
    return load_tokenizer(str(TOKENIZER))


@needs_shared
def test_real_tokenizer_conventions(real_tok):
    tok = real_tok
    # base Qwen2.5: EOS = pad = <|endoftext|> (151643), no BOS added; ids above 151,664 are embedding padding
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 151643 and tok.pad_token_id == tok.eos_token_id
    assert len(tok) == 151665
    ids, labels = encode_pair(tok, format_prompt("What is 2 + 3?"), format_response("2 + 3 = 5\nThe answer is: 5"))
    p = tok(format_prompt("What is 2 + 3?"), add_special_tokens=False)["input_ids"]
    assert ids[:len(p)] == p and ids[-1] == tok.eos_token_id and ids.count(tok.eos_token_id) == 1
    assert labels[:len(p)] == [IGNORE] * len(p) and labels[len(p):] == ids[len(p):]
    assert tok.decode(ids[len(p):-1]) == " 2 + 3 = 5\nThe answer is: 5"
    # special-token text inside a (garbage) completion round-trips as that one special token, not as characters
    assert tok("a<|im_start|>b", add_special_tokens=False)["input_ids"].count(151644) == 1


@needs_shared
def test_chunked_head_matches_full_logits_at_real_vocab(real_tok):
    """common.sequence_logps (labelled rows only, lm_head in chunks under checkpointing) == the full fp32 logits
    at V = 151,936, values and gradients, whatever the chunk size."""
    model = tiny_real_vocab_model().double()
    tok = real_tok
    seqs = [encode_pair(tok, format_prompt(q), format_response(s)) for q, s in
            [("What is 2 + 3?", "2 + 3 = 5\nThe answer is: 5"), ("Half of 48?", "48 / 2 = 24\nThe answer is: 24")]]
    x, m, y = collate(seqs, tok.pad_token_id)
    logits = model(input_ids=x, attention_mask=m).logits[:, :-1]                    # (B, T-1, V) float64
    tgt = y[:, 1:]
    full = (logits.log_softmax(-1).gather(2, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (tgt != IGNORE)).sum(-1)
    g_full = torch.autograd.grad(full.sum(), model.model.embed_tokens.weight)[0]
    for chunk in (5, 1024):
        lp, n = sequence_logps(model, x, m, y, chunk=chunk)
        assert n.tolist() == (tgt != IGNORE).sum(-1).tolist()
        assert torch.allclose(lp.double(), full, rtol=1e-5), (chunk, lp, full)
        g = torch.autograd.grad(lp.sum(), model.model.embed_tokens.weight)[0]
        assert torch.allclose(g.double(), g_full, atol=1e-5 * g_full.abs().max().item())


@pytest.mark.slow
@needs_shared
def test_trained_real_vocab_model_stops_right(real_tok):
    """Overfit a real-vocabulary model on three solutions of different prompt lengths (the sampler left-pads them
    in one batch, training right-pads them), then decode greedily with engine.Sampler: it must write each
    solution exactly and stop at EOS, or after the 'The answer is: N' line when the solution goes on ('####'),
    never at a '\\boxed{}' or at a '####' line."""
    from engine import Sampler
    import verifier
    tok = real_tok
    data = [("What is 2 + 3?", "2 + 3 = 5\nThe answer is: 5"),
            ("Tom has 4 apples and buys 6 more. How many apples does he have now?",
             "4 + 6 = 10\nThe answer is: 10\n#### 10"),
            ("Simplify $\\frac{14}{2}$.", "$\\frac{14}{2} = \\boxed{7}$\nThe answer is: 7")]
    seqs = [encode_pair(tok, format_prompt(q), format_response(s)) for q, s in data]
    x, m, y = collate(seqs, tok.pad_token_id)
    model = tiny_real_vocab_model(seed=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    n_tok = (y[:, 1:] != IGNORE).sum()
    for step in range(300):   # ~100 steps (0.5 s of CPU each: the 151,936-row head dominates)
        lp, _ = sequence_logps(model, x, m, y, chunk=16)
        loss = -lp.sum() / n_tok
        loss.backward()
        opt.step()
        opt.zero_grad()
        if loss.item() < 0.02:
            break
    assert loss.item() < 0.02, f"did not memorise in {step + 1} steps: loss {loss.item():.4f}"
    print(f"memorised in {step + 1} steps")
    model.eval()
    sampler = Sampler(model, tok, "cpu")
    assert tok.eos_token_id in sampler.eos_ids
    prompts = [format_prompt(q) for q, _ in data]
    out = sampler.generate(prompts, [0, 1, 2], max_new_tokens=40, temperature=0.0, batch_size=3)
    assert [o["finish_reason"] for o in out] == ["eos", "stop", "eos"]
    assert out[0]["completion"] == format_response(data[0][1])
    assert out[1]["completion"] == " 4 + 6 = 10\nThe answer is: 10"            # the '#### 10' line is never written
    assert out[2]["completion"] == format_response(data[2][1])
    for o, (q, s) in zip(out, data):
        assert verifier.profile(o["completion"], verifier.extract_answer(s), question=q).correct
    # without the answer-line stop the second one goes on to its '####' line and EOS
    full = sampler.generate(prompts[1:2], [1], max_new_tokens=40, temperature=0.0, stop_at_answer=False)[0]
    assert full["finish_reason"] == "eos" and full["completion"] == format_response(data[1][1])


@pytest.mark.slow
@needs_shared
def test_real_smoke_pipeline(tmp_path):
    """SMOKE=1 bash run_real.sh: every stage of the real recipe, real vocabulary and tokenizer, real data."""
    run = tmp_path / "run"
    env = {**os.environ, "SMOKE": "1", "RUN": str(run), "SHARED": str(SHARED), "THREADS": "1", "OMP_NUM_THREADS": "1"}
    # ~2.5 min of CPU time; the limit is generous because a shared machine stretches the wall time many-fold
    res = subprocess.run(["bash", "run_real.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "NOTE (SMOKE): the model is untrained" in res.stdout
    cfg = json.loads((run / "model_config" / "config.json").read_text())
    assert cfg["vocab_size"] == 151936 and cfg["num_hidden_layers"] == 2 and cfg["eos_token_id"] == 151643
    for ck in ("sft", "dpo_verifier", "dpo_none", "dpo_sftplus"):
        meta = json.loads((run / ck / "hardneg_meta.json").read_text())
        assert meta["step"] > 0
        assert json.loads((run / ck / "config.json").read_text())["vocab_size"] == 151936
        assert (run / ck / "tokenizer_config.json").exists()
    assert json.loads((run / "dpo_none" / "hardneg_meta.json").read_text())["weighting"] == "none"
    probs = [json.loads(line) for line in (run / "sft_train.jsonl").read_text().splitlines()]
    assert len(probs) == 64 and sum(p["id"].startswith("gsm8k-train") for p in probs) == 32
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 64 * 2 and all(s["prompt"] == format_prompt(s["question"]) for s in samples)
    scored = [json.loads(line) for line in (run / "scored.jsonl").read_text().splitlines()]
    assert len(scored) == len(samples) and all("wrongness" in s["profile"] for s in scored)
    pairs = [json.loads(line) for line in (run / "pairs.jsonl").read_text().splitlines()]
    assert pairs and abs(sum(p["weight"] for p in pairs) / len(pairs) - 1) < 1e-6
    for ev, data in (("eval_gsm8k", "gsm8k/test.jsonl"), ("eval_math500", "math/math500.jsonl")):
        r = json.loads((run / ev / "results.json").read_text())
        assert set(r["metrics"]) == {"sft", "sft+", "dpo", "wdpo"} and r["n_problems"] == 16 and r["data"].endswith(data)
    stages = [line.split("\t")[0] for line in (run / "timings.tsv").read_text().splitlines()]
    assert stages == ["prepare", "sft", "sample", "verify", "mine", "dpo_verifier", "dpo_none", "dpo_sftplus", "eval_gsm8k",
                      "eval_math500"]
    assert json.loads((run / "dpo_sftplus" / "hardneg_meta.json").read_text())["loss"] == "sft"
    assert (run / "data" / "gsm8k" / "test.jsonl").exists()   # the smoke run prepares into its own folder
