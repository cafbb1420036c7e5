"""evaluate.py: metric aggregation on hand-made profiles (accuracy, near-miss rate, the common near-miss slice,
per-dimension counts, maj@k), the table, labels, and an end-to-end run on the tiny model."""
import json

import pytest
import torch

import evaluate
import verifier
from evaluate import aggregate, format_table, majority, model_labels


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny shapes, one intra-op thread


def prof(correct, pred="12", nd=0.0, absurdity=0.0, wrongness=None, **dims):
    d = {k: 0.0 for k in verifier.DIMENSIONS}
    d.update(dims, numeric_distance=nd, correct=correct, pred=pred, absurdity=absurdity, details={},
             wrongness=(0.0 if correct else 0.7) if wrongness is None else wrongness)
    if not correct:
        d["answer_mismatch"] = 1.0
    return d


def rec(p, samples=None, finish="stop"):
    return {"profile": p, "finish_reason": finish, **({"samples": samples} if samples else {})}


def test_aggregate_hand_made():
    near = prof(False, "11", nd=0.1, absurdity=0.1, wrongness=0.6)            # close answer: a near miss
    far = prof(False, "900", nd=0.9, absurdity=0.2, wrongness=0.9, arithmetic=0.4)
    absurd = prof(False, "-5e9", nd=1.0, absurdity=0.8, wrongness=1.0, format=1.0)
    ok = prof(True)
    assert verifier.is_near_miss(near) and not verifier.is_near_miss(far) and not verifier.is_near_miss(absurd)
    per_model = {"A": [rec(ok), rec(near), rec(far), rec(ok)],
                 "B": [rec(near), rec(ok), rec(absurd, finish="length"), rec(ok)],
                 "C": [rec(ok), rec(ok), rec(ok), rec(far)]}
    m, common = aggregate(per_model)
    assert common == [0, 1]                       # problems where ANY model gave a near miss, same slice for all
    assert m["A"]["acc"] == m["B"]["acc"] == 0.5 and m["C"]["acc"] == 0.75
    assert m["A"]["near_miss"] == m["B"]["near_miss"] == 0.25 and m["C"]["near_miss"] == 0.0
    assert m["A"]["slice_acc"] == m["B"]["slice_acc"] == 0.5 and m["C"]["slice_acc"] == 1.0
    assert m["A"]["slice_n"] == 2 and m["A"]["n_wrong"] == 2 and m["A"]["n_near_miss"] == 1
    assert m["A"]["wrongness"] == pytest.approx(0.75) and m["A"]["absurdity"] == pytest.approx(0.15)
    assert m["B"]["absurdity"] == pytest.approx(0.45) and m["B"]["truncated"] == 0.25
    assert m["A"]["dims"]["arithmetic"] == 1 and m["A"]["dims"]["format"] == 0 and m["A"]["dims"]["answer_mismatch"] == 2
    assert m["B"]["dims"]["format"] == 1 and m["C"]["dims"]["numeric_distance"] == 1
    assert m["C"]["wrongness"] == pytest.approx(0.9)
    perfect, _ = aggregate({"D": [rec(ok)] * 3})
    assert perfect["D"]["wrongness"] is None and perfect["D"]["slice_acc"] is None and perfect["D"]["acc"] == 1.0


def test_majority_and_k_metrics():
    half, half2, three, none = prof(False, "1/2"), prof(False, "0.5"), prof(True, "3"), prof(False, None)
    assert majority([three, half, none, half2])["pred"] == "1/2"        # 1/2 == 0.5: one group of two
    assert majority([three, half])["pred"] == "3"                       # tie: the group seen first
    assert majority([none, none]) is None
    m, _ = aggregate({"A": [rec(three, samples=[three, half, half2]), rec(three, samples=[three, three, none]),
                            rec(half, samples=[none, none, none])]})
    assert m["A"]["maj@3"] == pytest.approx(1 / 3) and m["A"]["pass@3"] == pytest.approx(2 / 3)
    assert m["A"]["mean@3"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3, abs=1e-4)


def test_table_and_labels():
    m, _ = aggregate({"sft": [rec(prof(True)), rec(prof(False, "11", nd=0.1))], "wdpo": [rec(prof(True))] * 2})
    t = format_table(m).splitlines()
    assert len(t) == 4 and t[2].startswith("| sft | 0.500 |") and t[3].startswith("| wdpo | 1.000 |")
    assert "slice acc (n=1)" in t[0] and all(d in t[0] for d in verifier.DIMENSIONS)
    assert model_labels(["out/sft", "out/wdpo"], None) == ["sft", "wdpo"]
    assert model_labels(["run1/sft", "run2/sft"], None) == ["run1/sft", "run2/sft"]
    assert model_labels(["a", "b"], ["x", "y"]) == ["x", "y"]
    with pytest.raises(SystemExit, match="--names"):
        model_labels(["a", "b"], ["x"])


def test_evaluate_end_to_end_tiny_model(tiny_model_dir, toy_splits, tmp_path):
    out = tmp_path / "eval"
    args = ["--models", str(tiny_model_dir), str(tiny_model_dir), "--names", "a", "b", "--data", str(toy_splits["test"]),
            "--limit", "8", "--max-new-tokens", "16", "--batch-size", "8", "--out-dir", str(out)]
    metrics = evaluate.main(args + ["--k", "2", "--temperature", "1.0"])
    assert set(metrics) == {"a", "b"}
    assert {k: v for k, v in metrics["a"].items() if k != "seconds"} == \
        {k: v for k, v in metrics["b"].items() if k != "seconds"}       # same weights, same seeds: same everything
    for k in ("acc", "maj@2", "pass@2", "mean@2", "near_miss", "slice_acc", "wrongness", "dims"):
        assert k in metrics["a"]
    res = json.loads((out / "results.json").read_text())
    assert res["n_problems"] == 8 and len(res["predictions"]["a"]) == 8
    p = res["predictions"]["a"][0]
    assert {"problem_id", "answer", "completion", "finish_reason", "profile", "samples"} <= set(p)
    assert set(verifier.DIMENSIONS) <= set(p["profile"]) and len(p["samples"]) == 2
    md = (out / "results.md").read_text()
    assert "| a |" in md and "| b |" in md and "maj@2" in md
    with pytest.raises(SystemExit, match="--temperature"):
        evaluate.main(args + ["--k", "4", "--temperature", "0"])


def test_evaluate_several_data_files(tiny_model_dir, toy_splits, tmp_path):
    """--data val test in one process (each model loads once) writes, per file, what a run on that file alone writes
    (results.md byte for byte; results.json but for the timings)."""
    common = ["--models", str(tiny_model_dir), str(tiny_model_dir), "--names", "a", "b", "--max-new-tokens", "12",
              "--batch-size", "4", "--threads", "1"]
    both = evaluate.main(common + ["--data", str(toy_splits["val"]), str(toy_splits["test"]), "--limit", "5", "7",
                                   "--out-dir", str(tmp_path / "v"), str(tmp_path / "t")])
    for d, split, limit, m in (("v", "val", "5", both[0]), ("t", "test", "7", both[1])):
        evaluate.main(common + ["--data", str(toy_splits[split]), "--limit", limit, "--out-dir", str(tmp_path / f"{d}1")])
        assert (tmp_path / d / "results.md").read_text() == (tmp_path / f"{d}1" / "results.md").read_text()
        j, j1 = (json.loads((tmp_path / x / "results.json").read_text()) for x in (d, f"{d}1"))
        for x in (j, j1):
            for met in x["metrics"].values():
                met.pop("seconds")
        j1["args"]["out_dir"] = j["args"]["out_dir"]
        assert j == j1 and j["n_problems"] == int(limit) and j["args"]["data"] == str(toy_splits[split])
        assert {k: v for k, v in m["a"].items() if k != "seconds"} == j["metrics"]["a"]
    with pytest.raises(SystemExit, match="one folder per --data file"):
        evaluate.main(common + ["--data", str(toy_splits["val"]), str(toy_splits["test"]), "--out-dir", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="--limit has 3 values for 2 --data files"):
        evaluate.main(common + ["--data", str(toy_splits["val"]), str(toy_splits["test"]), "--limit", "1", "2", "3",
                                "--out-dir", str(tmp_path / "x"), str(tmp_path / "y")])
