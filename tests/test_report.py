"""report.py: the paired bootstrap and the exact sign test on hand-checkable cases, the first-change labels, and the
whole report on small results.json files fabricated here (assertions are relations, not stored outputs)."""
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import report
from report import change_table, first_change, paired_bootstrap, sign_test


def test_bootstrap_identical_and_constant():
    a = np.array([1, 0, 1, 1, 0] * 20)
    assert paired_bootstrap(a, a, 2000, 0) == (0.0, 0.0, 0.0)
    assert paired_bootstrap(np.ones(50), np.zeros(50), 2000, 0) == (1.0, 1.0, 1.0)
    assert paired_bootstrap(a, a.copy(), 100, 3, clusters=np.arange(100) % 7) == (0.0, 0.0, 0.0)


def test_bootstrap_superset_positive_and_seeded():
    rng = np.random.default_rng(1)
    b = rng.random(400) < 0.6
    a = b | (rng.random(400) < 0.1)           # right wherever b is, and on some more
    d, lo, hi = paired_bootstrap(a, b, 4000, 0)
    assert d == pytest.approx((a.astype(int) - b).mean()) and 0 < lo < d < hi
    assert paired_bootstrap(a, b, 4000, 0) == (d, lo, hi)              # same seed, same CI
    assert paired_bootstrap(a, b, 4000, 1) == pytest.approx((d, lo, hi), abs=0.006)   # another seed: about the same
    # width ~ 2 * 1.96 * sd / sqrt(N) for a mean of N iid differences
    sd = np.std(a.astype(float) - b, ddof=1)
    assert hi - lo == pytest.approx(2 * 1.96 * sd / math.sqrt(400), rel=0.15)
    lo2, hi2 = paired_bootstrap(b, a, 4000, 0)[1:]
    assert lo2 < 0 and hi2 < 0
    x, y = rng.random(400), rng.random(400) * 0.9    # continuous scores: 400 kinds of cluster, the index-drawing path
    d, lo, hi = paired_bootstrap(x, y, 4000, 0)
    assert lo < d < hi and hi - lo == pytest.approx(2 * 1.96 * np.std(x - y, ddof=1) / math.sqrt(400), rel=0.15)


def test_bootstrap_clusters():
    """Two seeds that agree on every problem carry no more information than one: resampling problems as clusters
    gives exactly the one-seed CI, treating the 2N (seed, problem) units as independent gives a narrower one."""
    rng = np.random.default_rng(2)
    a, b = rng.random(300) < 0.7, rng.random(300) < 0.6
    one = paired_bootstrap(a, b, 3000, 5)
    two = paired_bootstrap(np.r_[a, a], np.r_[b, b], 3000, 5, clusters=np.r_[np.arange(300), np.arange(300)])
    assert two == pytest.approx(one)
    naive = paired_bootstrap(np.r_[a, a], np.r_[b, b], 3000, 5)
    assert naive[2] - naive[1] < 0.8 * (one[2] - one[1])
    assert paired_bootstrap(a, b, 3000, 5, clusters=np.arange(300)) == one   # singleton clusters = plain bootstrap


def test_sign_test_exact():
    a = np.array([1, 1, 0, 0, 1])
    assert sign_test(a, a) == (0, 0, 1.0)
    assert sign_test(np.ones(5), np.zeros(5)) == (5, 0, pytest.approx(2 / 32))
    a = np.r_[np.ones(8), np.zeros(2), np.ones(7)]
    b = np.r_[np.zeros(8), np.ones(2), np.ones(7)]                         # 8 vs 2 discordant, 7 ties ignored
    assert sign_test(a, b) == (8, 2, pytest.approx(2 * (1 + 10 + 45) / 1024))
    assert sign_test(b, a)[2] == sign_test(a, b)[2]
    assert sign_test(np.r_[np.ones(1000), np.zeros(1000)], np.r_[np.zeros(1000), np.ones(1000)])[2] == 1.0
    # large n: exact tail vs the normal approximation with continuity correction
    n, k = 5000, 2400
    z = (k + 0.5 - n / 2) / math.sqrt(n / 4)
    p = sign_test(np.r_[np.ones(k), np.zeros(n - k)], np.r_[np.zeros(k), np.ones(n - k)])[2]
    assert p == pytest.approx(math.erfc(-z / math.sqrt(2)), rel=0.05)


def test_first_change_labels():
    assert first_change("a = 42 pens", "a = 44 pens") == ("result digit +2", "42 -> 44")
    assert first_change("The answer is: 23", "The answer is: 21") == ("answer digit -2", "23 -> 21")
    assert first_change("has 7 * 6 = 42", "has 7 * 8 = 56") == ("operand digit +2", "6 -> 8")
    assert first_change("Mia has 3", "Mia had 3")[0] == "'has' -> 'had'"
    assert first_change("same", "same") is None
    n, tab = change_table([("= 42", True, "= 44", False), ("= 12", True, "= 14", False), ("= 9", False, "= 8", True),
                           ("x", True, "x", True)])
    assert n == 3 and tab[0][:4] == ("result digit +2", 2, 2, 0) and tab[1][:4] == ("result digit -1", 1, 0, 1)


# -----------------------------------------------------------------------------
# end to end on fabricated runs

def completion(n):
    return f" Mia has 3 * 4 = 12 pens.\nShe finds more: 12 + 5 = {n} pens.\nThe answer is: {n}"


def write_results(run, arms, n):
    """run/eval_test/results.json for arms {name: bool per problem}; the near-miss slice = the even problems."""
    preds = {m: [{"problem_id": f"p{i}", "answer": "17", "completion": completion(17 if ok else 19), "finish_reason": "eos",
                  "n_tokens": 30, "profile": {"correct": bool(ok), "pred": "17" if ok else "19"}} for i, ok in enumerate(v)]
             for m, v in arms.items()}
    (run / "eval_test").mkdir(parents=True)
    (run / "eval_test" / "results.json").write_text(json.dumps(
        {"models": {m: str(run / m) for m in arms}, "predictions": preds,
         "near_miss_slice": {"problem_ids": [f"p{i}" for i in range(0, n, 2)]}}))
    return run / "eval_test" / "results.json"


def fabricate(run, seed, n=120, history=True):
    """A run dir with results.json (arms: sft+, sft, better, worse, same) and history.json for 'better'.
    better: right on a superset of sft+'s problems; worse: on a subset; same: identical answers."""
    rng = np.random.default_rng(seed)
    base = rng.random(n) < 0.6
    arms = {"sft+": base, "sft": base & (rng.random(n) < 0.9), "better": base | (rng.random(n) < 0.3),
            "worse": base & (rng.random(n) < 0.7), "same": base}
    ev = write_results(run, arms, n)
    for m in arms:
        (run / m).mkdir()
    if history:
        (run / "better" / "history.json").write_text(json.dumps(
            [{"step": s, "loss": 0.6, "acc": 0.5, "r_c": -0.01 * s, "r_r": -0.05 * s, "nll": 0.2, "lr": 1e-5} for s in range(1, 6)]))
    return ev, arms


def test_report_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # the optional dependency is absent: the report goes on
    ev, arms = fabricate(tmp_path / "s0", 0)
    (tmp_path / "s0" / "diag_better.json").write_text(json.dumps(
        {"model": "s0/better", "ref": "s0/sft", "pairs": "held.jsonl", "summary": {"n": 8, "reward_acc": 0.75}}))
    rep = report.main(["--evals", str(ev), "--resamples", "2000"])
    assert "matplotlib not installed: no PNGs" in capsys.readouterr().out
    A = rep["arms"]
    for m, v in arms.items():
        assert A[m]["acc"] == [pytest.approx(v.mean())]
    assert A["better"]["all"]["boot"][1] > 0 and A["better"]["all"]["sign"][1] == 0
    assert A["worse"]["all"]["boot"][2] < 0 and A["worse"]["all"]["sign"][0] == 0
    assert A["same"]["all"]["boot"] == (0.0, 0.0, 0.0) and A["same"]["all"]["sign"] == (0, 0, 1.0)
    assert A["better"]["slice"]["n"] == 60
    assert A["better"]["slice"]["boot"][0] == pytest.approx(arms["better"][::2].mean() - arms["sft+"][::2].mean())
    ch = A["better"]["changes"]
    assert ch["n_changed"] == sum(A["better"]["all"]["sign"][:2])          # every discordant answer changed
    assert ch["top"] == [("result digit -2", ch["n_changed"], 0, ch["n_changed"], "19 -> 17")]  # 12 + 5 = 19 -> 17
    md = (tmp_path / "s0" / "summary.md").read_text()
    assert "120 problems x 1 seed(s)" in md and "2000 resamples" in md and "no PNGs" in md
    assert "| diag_better" not in md and "| better | 0 | s0/better | s0/sft | held.jsonl | yes | 8 |" in md
    assert json.loads((tmp_path / "s0" / "report.json").read_text())["baseline"] == "sft+"
    rep2 = report.main(["--evals", str(ev), "--resamples", "200", "--changes-vs", "sft", "--out", str(tmp_path / "x.md")])
    assert "changes" not in rep2["arms"]["sft"] and rep2["arms"]["sft+"]["changes"]["vs"] == "sft"
    assert rep2["arms"]["sft+"]["changes"]["n_changed"] == int((arms["sft+"] != arms["sft"]).sum())  # sft: subset of sft+


def test_report_own_control(tmp_path, monkeypatch):
    """--control ARM=CONTROL: that arm is paired with its own control; every other arm still with --baseline."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    ev, arms = fabricate(tmp_path / "s0", 0)
    rep = report.main(["--evals", str(ev), "--resamples", "500", "--control", "better=worse"])
    A = rep["arms"]
    assert A["better"]["vs"] == "worse" and A["same"]["vs"] == "sft+" and rep["control"] == {"better": "worse"}
    assert A["better"]["all"]["boot"][0] == pytest.approx(arms["better"].mean() - arms["worse"].mean())
    assert A["worse"]["all"]["boot"][0] == pytest.approx(arms["worse"].mean() - arms["sft+"].mean())
    md = (tmp_path / "s0" / "summary.md").read_text()
    assert "`better` is judged against its own control `worse`" in md and " vs worse |" in md
    with pytest.raises(SystemExit, match="both sides must be arms"):
        report.main(["--evals", str(ev), "--control", "better=nope"])


def test_report_multi_seed_and_pngs(tmp_path):
    fab = [fabricate(tmp_path / f"s{s}", s, history=s == 0) for s in range(3)]
    evs = [ev for ev, _ in fab]
    out = tmp_path / "all" / "summary.md"
    rep = report.main(["--evals", *map(str, evs), "--out", str(out), "--resamples", "1000"])
    assert rep["seeds"] == 3 and len(rep["arms"]["better"]["all"]["per_seed"]) == 3
    assert rep["arms"]["better"]["all"]["n"] == 360
    A = rep["arms"]
    assert A["better"]["acc"] == pytest.approx([arms["better"].mean() for _, arms in fab])
    assert A["better"]["all"]["boot"][0] == pytest.approx(np.mean(A["better"]["all"]["per_seed"]))  # equal-size seeds
    assert A["better"]["all"]["boot"][1] > 0 and A["worse"]["all"]["boot"][2] < 0
    md = out.read_text()
    assert "120 problems x 3 seed(s)" in md and "clusters" in md
    try:
        import matplotlib  # noqa: F401  (optional dependency: both outcomes are checked)
    except ImportError:
        assert "no PNGs" in md and not list(out.parent.glob("*.png"))
        return
    for png in ("arms_ci.png", "logp_trajectories.png"):
        assert (out.parent / png).stat().st_size > 1000 and f"]({png})" in md


def test_report_val_and_test_in_one_dir_keep_their_files(tmp_path):
    # run.sh writes summary_val.md and summary.md into the same run dir: neither may overwrite the other's JSON/PNGs
    ev, _ = fabricate(tmp_path / "s0", 0)
    run = tmp_path / "s0"
    report.main(["--evals", str(ev), "--out", str(run / "summary_val.md"), "--resamples", "200", "--baseline", "worse"])
    report.main(["--evals", str(ev), "--out", str(run / "summary.md"), "--resamples", "200"])
    assert json.loads((run / "report_val.json").read_text())["baseline"] == "worse"
    assert json.loads((run / "report.json").read_text())["baseline"] == "sft+"
    assert report.companion_suffix(Path("x/notes.md")) == "_notes"
    pngs = sorted(p.name for p in run.glob("arms_ci*.png"))
    if pngs:  # matplotlib installed
        assert pngs == ["arms_ci.png", "arms_ci_val.png"] and "](arms_ci_val.png)" in (run / "summary_val.md").read_text()


def test_report_bad_input(tmp_path):
    ev, _ = fabricate(tmp_path / "s0", 0)
    with pytest.raises(SystemExit, match="--baseline 'dpo' is not an arm"):
        report.main(["--evals", str(ev), "--baseline", "dpo"])
    with pytest.raises(SystemExit, match="--changes-vs 'x' is not an arm"):
        report.main(["--evals", str(ev), "--changes-vs", "x"])
    r = json.loads(ev.read_text())
    r["predictions"]["worse"] = r["predictions"]["worse"][::-1]
    ev.write_text(json.dumps(r))
    with pytest.raises(SystemExit, match="arm 'worse' lists other problems"):
        report.main(["--evals", str(ev)])
    assert not (tmp_path / "s0" / "summary.md").exists()


def test_goal_check(tmp_path, monkeypatch):
    """The summary's goal block: per seed `wdpo > dpo > sft+ >= sft`, the pooled wdpo CI, the slice, the SFT spread."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    n, evs = 400, []
    for s in range(2):
        rng = np.random.default_rng(s)
        base = rng.random(n) < 0.5
        even = np.arange(n) % 2 == 0                        # the near-miss slice: even problems
        dpo = base | (even & (rng.random(n) < 0.15))
        wdpo = dpo | (even & (rng.random(n) < 0.3))        # its extra gains all on the slice
        if s == 1:
            dpo = base & (rng.random(n) < 0.9)             # seed 1: dpo below sft+, so the order fails there
        evs.append(write_results(tmp_path / f"s{s}", {"sft": base & (rng.random(n) < 0.95), "sft+": base,
                                                      "dpo": dpo, "wdpo": wdpo}, n))
    rep = report.main(["--evals", *map(str, evs), "--out", str(tmp_path / "sum.md"), "--resamples", "500"])
    g = rep["goal"]
    assert g["order_per_seed"] == [True, False]
    assert g["wdpo_ci_above_zero"] and g["largest_gain_on_slice"]
    sft = rep["arms"]["sft"]["acc"]
    assert g["sft_std"] == pytest.approx(np.std(sft, ddof=1))
    md = (tmp_path / "sum.md").read_text()
    assert "## Goal check" in md and "per seed: yes / **no**" in md
    assert json.loads((tmp_path / "report_sum.json").read_text())["goal"]["order_per_seed"] == [True, False]
    # judged against another baseline, or without one of the four arms: no goal block
    rep2 = report.main(["--evals", *map(str, evs), "--baseline", "dpo", "--out", str(tmp_path / "b.md"), "--resamples", "100"])
    assert rep2["goal"] is None and "## Goal check" not in (tmp_path / "b.md").read_text()
