"""train_dpo.py: the loss against float64, weighting semantics, accumulation / DDP equivalence, masking,
the reference cache, exact resume and bad-input errors. Tiny random Qwen2 on the toy tokenizer, CPU."""
import json
import math
import os
import re
import shutil
import sys

import pytest
import torch
from safetensors.torch import load_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # also run as a script: the DDP test's torchrun entry point (see the bottom)
from conftest import torchrun  # noqa: E402
from common import IGNORE, DataError, format_prompt, format_response, load_model, read_jsonl, sequence_logps, write_json, write_jsonl
import train_dpo
from train_dpo import PairBatch, compute_ref_logps, concat_batch, dpo_micro_loss, load_pairs, preference_loss

WEIGHTS = [0.3, 1.7, 0.8, 1.2, 0.05, 2.0, 1.0, 0.6, 1.4, 0.9, 1.1, 0.5]


def make_pairs(path, splits, model_dir, weights=WEIGHTS):
    recs = read_jsonl(splits["train"])[:len(weights)]
    out = []
    for r, w in zip(recs, weights):
        bad = r["solution"].rsplit(r["answer"], 1)[0] + str(int(r["answer"]) + 7)  # a slipped final answer
        out.append({"id": r["id"], "problem_id": r["id"], "prompt": format_prompt(r["question"]),
                    "chosen": format_response(r["solution"]), "rejected": format_response(bad), "weight": w})
    write_jsonl(path, out)
    write_json(str(path) + ".meta.json", {"stage": "mine", "model": str(model_dir)})
    return path


@pytest.fixture()
def pairs(tmp_path, toy_splits, tiny_model_dir):
    return make_pairs(tmp_path / "pairs.jsonl", toy_splits, tiny_model_dir)


def train(pairs_path, out_dir, *extra):
    args = ["--pairs", str(pairs_path), "--out-dir", str(out_dir), "--batch-size", "4", "--micro-batch-size", "2",
            "--max-steps", "2", "--lr", "1e-3", "--warmup", "1", *map(str, extra)]
    train_dpo.main(args)
    return load_file(f"{out_dir}/model.safetensors")


def sgd(groups, lr, betas=None, fused=None):
    """Stand-in for AdamW in equivalence tests. Adam's first step is ~lr * sign(g): it hides gradient-scale bugs
    and turns fp32 noise in ~zero gradients into lr-sized differences. SGD keeps the update linear in g."""
    return torch.optim.SGD(groups, lr=lr)


def max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_preference_loss_matches_float64():
    g = torch.Generator().manual_seed(0)
    pi_c, pi_r, ref_c, ref_r = (torch.randn(9, generator=g) * 20 - 40 for _ in range(4))
    beta = 0.3
    losses, rc, rr = preference_loss(pi_c, pi_r, ref_c, ref_r, beta)
    for i in range(9):
        h = (float(pi_c[i]) - float(pi_r[i])) - (float(ref_c[i]) - float(ref_r[i]))
        assert losses[i].item() == pytest.approx(math.log1p(math.exp(-beta * h)), rel=1e-5, abs=1e-6)
        assert rc[i].item() == pytest.approx(beta * (float(pi_c[i]) - float(ref_c[i])), rel=1e-5)
        assert rr[i].item() == pytest.approx(beta * (float(pi_r[i]) - float(ref_r[i])), rel=1e-5)
    z = torch.zeros(3, requires_grad=True)
    l0, rc0, _ = preference_loss(z, z, z, z, 0.1)   # policy == reference: loss log 2, rewards 0
    assert torch.allclose(l0, torch.full((3,), math.log(2)))
    assert not rc0.requires_grad  # rewards are detached metrics


def test_weighting_none_is_vanilla_dpo(tmp_path, pairs, toy_splits, tiny_model_dir):
    ones = make_pairs(tmp_path / "ones.jsonl", toy_splits, tiny_model_dir, weights=[1.0] * len(WEIGHTS))
    a = train(pairs, tmp_path / "none", "--weighting", "none")
    b = train(ones, tmp_path / "ones", "--weighting", "verifier")
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = train(pairs, tmp_path / "w", "--weighting", "verifier")
    assert max_diff(a, c) > 1e-6  # ... and the weights do change training
    meta = json.loads((tmp_path / "w" / "hardneg_meta.json").read_text())
    assert (meta["stage"], meta["weighting"], meta["beta"], meta["parent"]) == ("dpo", "verifier", 0.1, str(tiny_model_dir))


def _grads(model, batch, ref, w, beta=0.5):
    """Gradient of the step objective over `batch` with weights w (one micro-batch = the whole step)."""
    model.zero_grad()
    batch = [dict(p, w=x) for p, x in zip(batch, w)]
    pb = PairBatch.of(batch, 0, "cpu", ref, sum(w), 1.0)
    loss, _ = dpo_micro_loss(lambda x, m, y: sequence_logps(model, x, m, y), pb, beta)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()]).clone()


def test_weights_shape_the_gradient(pairs, tiny_model_dir, toy_tok):
    model = load_model(str(tiny_model_dir))[0]
    P = load_pairs(pairs, toy_tok, 512)[:3]
    ref = compute_ref_logps(model, P, 4, toy_tok.pad_token_id, "cpu", torch.no_grad()) - 1.0  # move off pi == ref
    ref[:, 1] += 2.0
    torch.manual_seed(0)
    with torch.no_grad():  # a policy != reference, so the per-pair gradients are not all alike
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    g1, g2, g3 = (_grads(model, [P[i]], ref[i:i + 1], [1.0]) for i in range(3))
    # zero weight: that pair contributes nothing
    assert torch.allclose(_grads(model, P, ref, [0.0, 1.0, 1.0]), _grads(model, P[1:], ref[1:], [1.0, 1.0]), atol=1e-6)
    # the weighted objective is the weight-averaged per-pair objective; doubling w_1 doubles its share
    # (batched vs one-at-a-time forwards differ by fp32 summation order: ~1e-5 on gradients of ~0.1)
    assert torch.allclose(_grads(model, P, ref, [1.0, 1.0, 1.0]), (g1 + g2 + g3) / 3, atol=3e-5)
    assert torch.allclose(_grads(model, P, ref, [2.0, 1.0, 1.0]), (2 * g1 + g2 + g3) / 4, atol=3e-5)
    assert not torch.allclose(_grads(model, P, ref, [2.0, 1.0, 1.0]), (g1 + g2 + g3) / 3, atol=3e-5)
    # all-ones weights == eric-mitchell's vanilla DPO: mean of the per-pair losses
    x, m, y = concat_batch(P, toy_tok.pad_token_id, "cpu")
    lp = sequence_logps(model, x, m, y)[0]
    vanilla = preference_loss(lp[:3], lp[3:], ref[:, 0], ref[:, 1], 0.5)[0].mean()
    pb = PairBatch.of([dict(p, w=1.0) for p in P], toy_tok.pad_token_id, "cpu", ref, 3.0, 1.0)
    ours = dpo_micro_loss(lambda *a: sequence_logps(model, *a), pb, 0.5)[0]
    assert torch.allclose(ours, vanilla, atol=1e-7)


@pytest.mark.parametrize("extra", [[], ["--weighted-nll"]])
def test_accumulation_equivalence(tmp_path, pairs, tiny_model_dir, monkeypatch, extra):
    # micro 1 x accum 4 == micro 4 x accum 1: the normalisers are over the whole step, not per micro-batch
    monkeypatch.setattr(torch.optim, "AdamW", sgd)
    common = ["--batch-size", "4", "--max-steps", "1", "--sft-alpha", "0.5", "--lr", "1.0", "--grad-clip", "0", *extra]
    a = train(pairs, tmp_path / "a", *common, "--micro-batch-size", "1")
    b = train(pairs, tmp_path / "b", *common, "--micro-batch-size", "4")
    assert max_diff(a, b) < 1e-6
    assert max_diff(a, load_file(tiny_model_dir / "model.safetensors")) > 1e-3  # and the step did move the weights


def test_prompt_tokens_are_masked(pairs, toy_tok, tiny_model_dir):
    P = load_pairs(pairs, toy_tok, 512)[:2]
    x, m, y = concat_batch(P, toy_tok.pad_token_id, "cpu")
    assert x.shape[0] == 4  # chosen rows then rejected rows, one forward
    for row, (ids, lab) in enumerate([p["c"] for p in P] + [p["r"] for p in P]):
        n_prompt = len(toy_tok(read_jsonl(pairs)[row % 2]["prompt"], add_special_tokens=False)["input_ids"])
        assert (y[row, :n_prompt] == IGNORE).all() and (y[row, n_prompt:len(ids)] != IGNORE).all()
        assert (y[row, len(ids):] == IGNORE).all() and y[row, len(ids) - 1] == toy_tok.eos_token_id
    model = load_model(str(tiny_model_dir))[0]
    lp, nt = sequence_logps(model, x, m, y)
    with torch.no_grad():  # direct: full log-softmax, sum over the response (+ EOS) positions only
        logp = torch.log_softmax(model(input_ids=x, attention_mask=m).logits.double(), -1)
    for row in range(4):
        pos = [t for t in range(1, x.shape[1]) if y[row, t] != IGNORE]
        assert nt[row] == len(pos)
        assert lp[row].item() == pytest.approx(sum(logp[row, t - 1, x[row, t]].item() for t in pos), abs=1e-4)


def test_cached_vs_on_the_fly_reference(tmp_path, pairs, capsys, monkeypatch):
    monkeypatch.setattr(torch.optim, "AdamW", sgd)
    a = train(pairs, tmp_path / "cached")
    assert len(list(tmp_path.glob("pairs.jsonl.ref.*.safetensors"))) == 1
    b = train(pairs, tmp_path / "fly", "--ref-on-the-fly")
    c = train(pairs, tmp_path / "again")
    assert "ref logps: loaded" in capsys.readouterr().out
    assert max_diff(a, b) < 1e-6 and max_diff(a, c) == 0


def test_resume_is_exact(tmp_path, pairs):
    full = train(pairs, tmp_path / "full", "--max-steps", "4")
    train(pairs, tmp_path / "part", "--max-steps", "4", "--halt-after", "2")
    assert json.loads((tmp_path / "part" / "hardneg_meta.json").read_text())["step"] == 2
    resumed = train(pairs, tmp_path / "part", "--max-steps", "4", "--resume")
    assert max_diff(full, resumed) == 0


def test_snapshots_are_the_weights_of_their_step(tmp_path, pairs):
    """--snapshot-every 2 of a 4-step run: step 2's snapshot is what a run halted at step 2 saved, step 4's the final
    checkpoint; the snapshots carry no train state and do not change the run."""
    full = train(pairs, tmp_path / "full", "--max-steps", "4")
    snap = train(pairs, tmp_path / "run", "--max-steps", "4", "--snapshot-every", "2")
    half = train(pairs, tmp_path / "half", "--max-steps", "4", "--halt-after", "2")
    assert max_diff(full, snap) == 0
    assert max_diff(load_file(f"{tmp_path}/run_step2/model.safetensors"), half) == 0
    assert max_diff(load_file(f"{tmp_path}/run_step4/model.safetensors"), snap) == 0
    assert sorted(p.name for p in tmp_path.glob("run_step*")) == ["run_step2", "run_step4"]
    assert not (tmp_path / "run_step2" / "train_state.safetensors").exists()
    assert json.loads((tmp_path / "run_step2" / "hardneg_meta.json").read_text())["step"] == 2


@pytest.mark.slow
def test_ddp_two_processes_match_single(tmp_path, pairs, monkeypatch):
    """torchrun --nproc_per_node 2 (gloo): micro 2 x accum 1 x world 2 == micro 2 x accum 2 x world 1."""
    d = tmp_path / "ddp_data"
    d.mkdir()
    ddp_pairs = shutil.copy(pairs, d / "pairs.jsonl")  # own cache: the ranks compute the reference together
    shutil.copy(str(pairs) + ".meta.json", d / "pairs.jsonl.meta.json")
    args = ["--pairs", ddp_pairs, "--batch-size", "4", "--micro-batch-size", "2", "--max-steps", "2", "--lr", "0.5",
            "--warmup", "1", "--grad-clip", "0", "--sft-alpha", "0.5", "--threads", "1"]
    r = torchrun(["tests/test_dpo.py", *args, "--out-dir", tmp_path / "ddp"], env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    monkeypatch.setattr(torch.optim, "AdamW", sgd)
    single = train(pairs, tmp_path / "single", *args[2:], "--micro-batch-size", "2")
    assert max_diff(load_file(tmp_path / "ddp" / "model.safetensors"), single) < 1e-6


@pytest.mark.parametrize("case,msg", [
    ("missing", r"pairs.jsonl:2: missing field 'rejected'"),
    ("empty", r"pairs.jsonl: no pairs"),
    ("nan", r"pairs.jsonl:3: weight must be a finite number in \[0, 1e\+06\], got nan"),
    ("inf", r"pairs.jsonl:3: weight must be a finite number in \[0, 1e\+06\], got inf"),
    ("negative", r"pairs.jsonl:3: weight must be a finite number in \[0, 1e\+06\], got -1"),
    ("huge", r"pairs.jsonl:3: weight must be a finite number in \[0, 1e\+06\], got 1e\+39"),  # float32 overflow
    ("bool", r"pairs.jsonl:3: field 'weight' must be int/float, got bool"),
    ("equal", r"pairs.jsonl:3: chosen and rejected are the same text"),
    ("all_long", r"every pair is longer than --max-len 20"),
])
def test_bad_pairs_give_clear_errors(tmp_path, pairs, case, msg):
    lines = pairs.read_text().splitlines()
    bad = {"nan": "NaN", "inf": "Infinity", "negative": "-1", "huge": "1e39", "bool": "true"}
    if case == "missing":
        lines[1] = json.dumps({k: v for k, v in json.loads(lines[1]).items() if k != "rejected"})
    elif case == "empty":
        lines = []
    elif case in bad:
        lines[2] = lines[2].replace('"weight": 0.8', f'"weight": {bad[case]}')
    elif case == "equal":
        r = json.loads(lines[2])
        lines[2] = json.dumps(dict(r, rejected=r["chosen"]))
    pairs.write_text("\n".join(lines) + "\n")
    extra = ["--max-len", "20"] if case == "all_long" else []
    with pytest.raises(SystemExit, match=msg):
        train(pairs, tmp_path / "out", *extra)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("pairs.jsonl.ref.*"))  # nothing written


def test_long_pairs_are_skipped_and_counted(tmp_path, pairs, capsys):
    recs = read_jsonl(pairs)
    recs[3]["rejected"] += " and so on" * 100
    write_jsonl(pairs, recs)
    train(pairs, tmp_path / "out")
    assert f"skipped 1/{len(recs)} pairs longer than --max-len 512" in capsys.readouterr().out
    # --weighting none needs no weight field; no --model and no meta -> a clear error
    write_jsonl(pairs, [{k: v for k, v in r.items() if k != "weight"} for r in recs])
    os.remove(str(pairs) + ".meta.json")
    with pytest.raises(SystemExit, match="no --model given"):
        train(pairs, tmp_path / "out2", "--weighting", "none")


if __name__ == "__main__":  # the DDP test's ranks: train_dpo.py with SGD in place of AdamW
    torch.optim.AdamW = sgd
    train_dpo.main(sys.argv[1:])


def test_rejected_upto_masks_after_the_slip(toy_tok, tmp_path):
    from common import encode_rejected
    prompt, text = "Question: q\nAnswer:", " Mia has 7 * 6 = 43 pens.\nThe answer is: 43"
    ids, lab = encode_rejected(toy_tok, prompt, text, len(" Mia has 7 * 6 = 43"))
    kept = [i for i, l in zip(ids, lab) if l != -100]
    assert toy_tok.decode(kept) == " Mia has 7 * 6 = 43" and lab[-1] == -100  # no EOS either
    assert encode_rejected(toy_tok, prompt, text, None)[1][-1] == toy_tok.eos_token_id
    bad = tmp_path / "p.jsonl"
    bad.write_text(json.dumps({"prompt": prompt, "chosen": " x", "rejected": text, "weight": 1.0, "rejected_upto": 999}) + "\n")
    with pytest.raises(DataError, match=r"p.jsonl:1: field 'rejected_upto'"):
        load_pairs(bad, toy_tok, 512)


def test_one_log_line_per_interval_rounded(tmp_path, pairs, capsys):
    train(pairs, tmp_path / "out", "--max-steps", "12")  # default --log-every 10: steps 10 and 12 (the last)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("step ")]
    assert [l.split("|")[0].split()[1] for l in lines] == ["10/12", "12/12"]
    assert not re.search(r"\d\.\d{5,}", "\n".join(lines))  # rounded figures, no 0.0242429800213242


def test_load_model_shows_no_transformers_progress_bar(tiny_model_dir, capfd):
    from transformers.utils import logging as hf_logging
    hf_logging.enable_progress_bar()  # as in a fresh process
    load_model(str(tiny_model_dir))
    assert "Loading weights" not in capfd.readouterr().err


def test_other_objectives_match_their_equations():
    from train_dpo import cdpo_loss, dpop_loss, ipo_loss
    g = torch.Generator().manual_seed(1)
    pi_c, pi_r, ref_c, ref_r = (torch.randn(7, generator=g, dtype=torch.float64) * 5 - 30 for _ in range(4))
    beta, eps, lam = 0.2, 0.1, 50.0
    sp = lambda x: math.log1p(math.exp(-x))  # noqa: E731  -log sigmoid(x)
    for i in range(7):
        h = (float(pi_c[i]) - float(pi_r[i])) - (float(ref_c[i]) - float(ref_r[i]))
        assert ipo_loss(pi_c, pi_r, ref_c, ref_r, beta)[i].item() == pytest.approx((h - 1 / (2 * beta)) ** 2)
        assert cdpo_loss(pi_c, pi_r, ref_c, ref_r, beta, eps)[i].item() == pytest.approx(
            (1 - eps) * sp(beta * h) + eps * sp(-beta * h))
        pen = max(float(ref_c[i]) - float(pi_c[i]), 0.0)
        assert dpop_loss(pi_c, pi_r, ref_c, ref_r, beta, lam)[i].item() == pytest.approx(sp(beta * (h - lam * pen)))
    # eps = 0 is DPO; DPO-Positive equals DPO while the chosen log-prob has not fallen below the reference's
    dpo = preference_loss(pi_c, pi_r, ref_c, ref_r, beta)[0]
    assert torch.allclose(cdpo_loss(pi_c, pi_r, ref_c, ref_r, beta, 0.0), dpo)
    assert torch.allclose(dpop_loss(ref_c + 1, pi_r, ref_c, ref_r, beta, lam), preference_loss(ref_c + 1, pi_r, ref_c, ref_r, beta)[0])


def test_sft_control_and_shuffled_weights(tmp_path, pairs, toy_splits, tiny_model_dir):
    a = train(pairs, tmp_path / "sft", "--loss", "sft", "--weighting", "none")
    b = train(pairs, tmp_path / "sft_w", "--loss", "sft", "--weighting", "verifier")
    assert all(torch.equal(a[k], b[k]) for k in a)   # no pair term: the weights cannot matter
    hist = json.loads((tmp_path / "sft" / "history.json").read_text())
    assert len(hist) == 2 and all(h["loss"] == 0 for h in hist) and hist[0]["nll"] > 0
    # --loss sft == a DPO run whose pair term has no gradient (beta -> 0 is not that); compare with --sft-alpha alone:
    c = train(pairs, tmp_path / "dpo_a", "--weighting", "none", "--sft-alpha", "1")
    assert max_diff(a, c) > 1e-6   # the DPO term moves the model beyond the NLL control
    tok = load_model(str(tiny_model_dir))[1]
    w = [p["w"] for p in load_pairs(pairs, tok, 512, "verifier")]
    s = [p["w"] for p in load_pairs(pairs, tok, 512, "shuffled", 0)]
    assert sorted(w) == sorted(s) and w != s and s == [p["w"] for p in load_pairs(pairs, tok, 512, "shuffled", 0)]
    d = train(pairs, tmp_path / "shuf", "--weighting", "shuffled")
    e = train(pairs, tmp_path / "w", "--weighting", "verifier")
    assert max_diff(d, e) > 1e-6


def test_weighted_nll(tmp_path, pairs, tiny_model_dir, toy_tok):
    # the NLL term under the weights: -sum w_i pi_c,i / sum w_i n_c,i (all-ones weights: the plain token mean)
    model = load_model(str(tiny_model_dir))[0]
    P = load_pairs(pairs, toy_tok, 512)[:3]
    x, m, y = concat_batch(P, toy_tok.pad_token_id, "cpu")
    with torch.no_grad():
        lp = sequence_logps(model, x, m, y)[0]
        ref = torch.stack([lp[:3], lp[3:]], 1)          # policy == reference: the DPO term is log 2 for every pair
        fwd = lambda *a: sequence_logps(model, *a)
        for w in ([1.0, 1.0, 1.0], [3.0, 0.5, 1.0]):
            nc_w = sum(wi * p["nc"] for wi, p in zip(w, P))
            pb = PairBatch.of([dict(p, w=wi) for p, wi in zip(P, w)], toy_tok.pad_token_id, "cpu", ref, sum(w), nc_w)
            got = dpo_micro_loss(fwd, pb, 0.1, 1.0, weighted_nll=True)[0]
            want = math.log(2) - sum(wi * l for wi, l in zip(w, lp[:3].tolist())) / nc_w
            assert got.item() == pytest.approx(want, rel=1e-5)
        plain = dpo_micro_loss(fwd, PairBatch.of([dict(p, w=1.0) for p in P], toy_tok.pad_token_id, "cpu", ref, 3.0,
                                                  sum(p["nc"] for p in P)), 0.1, 1.0)[0]
        assert plain.item() == pytest.approx(math.log(2) - lp[:3].sum().item() / sum(p["nc"] for p in P), rel=1e-5)
    # in training: the weighted control differs from the plain one, and needs an NLL term to weigh
    a = train(pairs, tmp_path / "sft", "--loss", "sft", "--weighting", "verifier")
    b = train(pairs, tmp_path / "wsft", "--loss", "sft", "--weighting", "verifier", "--weighted-nll")
    assert max_diff(a, b) > 1e-6
    assert json.loads((tmp_path / "wsft" / "hardneg_meta.json").read_text())["args"]["weighted_nll"] is True
    with pytest.raises(SystemExit, match="--weighted-nll"):
        train(pairs, tmp_path / "bad", "--weighted-nll")


def test_then_runs_several_trainings_in_one_process(tmp_path, pairs, tiny_model_dir):
    """--then: run.sh's arms in one process; each run writes byte for byte what it writes alone (weights, history;
    the train state and the metadata too, but for the folder it names), and every run's flags are checked before the first trains."""
    runs = [["--loss", "sft", "--weighting", "none"], ["--weighting", "shuffled"], ["--weighting", "verifier"]]
    common = ["--pairs", str(pairs), "--model", str(tiny_model_dir), "--batch-size", "4", "--micro-batch-size", "2",
              "--max-steps", "2", "--lr", "1e-3", "--warmup", "1", "--threads", "1"]
    argv = []
    for i, extra in enumerate(runs):
        argv += (["--then"] if i else []) + common + ["--out-dir", str(tmp_path / f"one{i}")] + extra
    train_dpo.main(argv)
    for i, extra in enumerate(runs):
        train_dpo.main(common + ["--out-dir", str(tmp_path / f"alone{i}")] + extra)
        one, alone = tmp_path / f"one{i}", tmp_path / f"alone{i}"
        for f in ("model.safetensors", "history.json", "train_state.safetensors"):
            assert (one / f).read_bytes() == (alone / f).read_bytes(), f
        meta = (one / "hardneg_meta.json").read_text().replace(f"one{i}", f"alone{i}")
        assert meta == (alone / "hardneg_meta.json").read_text()
    with pytest.raises(SystemExit):   # a bad flag in the second run: nothing trains
        train_dpo.main(common + ["--out-dir", str(tmp_path / "x0"), "--then"] + common + ["--weighting", "bogus"])
    assert not (tmp_path / "x0").exists()
