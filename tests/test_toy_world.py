"""The toy world's flawed teacher (data/toy/prepare.py): each flaw kind is what it says, the verifier tells
the kinds apart, val/test stay clean, and the rates are the ones asked for."""
import importlib.util
import json
import re
from collections import Counter

import pytest

from conftest import REPO, toy_prepare
from records import write_jsonl
from verifier import profile

OPS = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}


def wrong_equations(sol):
    return [e for e in re.findall(r"(\d+) ([-+*]) (\d+) = (\d+)", sol) if OPS[e[1]](int(e[0]), int(e[2])) != int(e[3])]


def test_flaw_rates_and_clean_default():
    prep = toy_prepare()
    recs = prep.make_split(4000, 5, "f", noise_rate=0.2, bias_rate=0.6)
    kinds = Counter(r["flaw"] for r in recs)
    loose = [r for r in recs if "loose" in r["question"]]
    bias = sum(r["flaw"] == "bias" for r in loose) / len(loose)
    assert 0.55 < bias < 0.65                          # the blind spot is the mode of its template
    for k in prep.NOISE_KINDS:                         # each random flaw ~ 0.2 / 4 of the non-bias problems
        assert 0.03 < kinds[k] / len(recs) < 0.07, kinds
    assert all("flaw" not in r for r in prep.make_split(50, 5, "c"))  # val/test (no rates): no flaw field


def test_each_flaw_is_what_it_says():
    prep = toy_prepare()
    recs = prep.make_split(3000, 9, "f", noise_rate=0.5, bias_rate=0.6)
    seen = Counter()
    for r in recs:
        sol, flaw = r["solution"], r["flaw"]
        p = profile(" " + sol, r["answer"], question=r["question"], truncated=False).to_dict()
        seen[flaw] += 1
        if flaw is None:
            assert p["correct"] and not wrong_equations(sol), sol
        elif flaw == "slip":                         # one wrong equation, carried on: a near miss
            assert len(wrong_equations(sol)) == 1 and not p["correct"] and p["arithmetic"] > 0, sol
        elif flaw == "bias":                         # a skipped step: true arithmetic, wrong answer
            assert "loose" in r["question"] and "loose" not in sol and not wrong_equations(sol) and not p["correct"]
        elif flaw == "wrong_op":                     # true arithmetic with the wrong operation
            assert not wrong_equations(sol) and not p["correct"], sol
        elif flaw == "unfollowed":                   # the final answer is not the last result
            last = re.findall(r"= (\d+)", sol)[-1]
            assert not sol.endswith(f"The answer is: {last}") and not p["correct"] and p["logical"] > 0, sol
        elif flaw == "format":                       # repetition, no final answer
            assert "The answer is" not in sol and p["pred"] is None and p["format"] > 0, sol
    assert set(seen) == {None, "bias", *prep.NOISE_KINDS}


def test_a_loop_is_no_conclusion():
    from answers import extract_answer
    loop = "Tom has 5 * 5 = 25 apples.\n" + "After giving away 6, Tom has 25 - 6 = 19 apples.\n" * 3
    assert extract_answer(loop) is None                      # the model looped: its last number concluded nothing
    assert extract_answer("Tom has 5 * 5 = 25 apples.\nSo Tom has 25 - 6 = 19 apples.") == "19"   # a closing sentence
    assert extract_answer(loop + "The answer is: 19") == "19"  # an explicit answer still counts


def toy_nouns():
    spec = importlib.util.spec_from_file_location("toy_nouns", REPO / "data" / "toy" / "nouns.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_nouns_diagnostic_on_a_fabricated_run(tmp_path):
    nouns, prep = toy_nouns(), toy_prepare()
    assert set(nouns.ITEMS) == set(prep.ITEMS)          # the same world
    test = prep.make_split(20, 3, "t")
    run = tmp_path / "run"
    write_jsonl(run / "data" / "test.jsonl", test)
    item = lambda q: next(it for it in prep.ITEMS if f" {it}" in q)  # noqa: E731
    other = lambda q: next(it for it in prep.ITEMS if it != item(q))  # noqa: E731
    # arm "copies" names the question's item; arm "miscopies" names another item in half of its answers
    preds = {"copies": [{"problem_id": r["id"], "completion": " " + r["solution"]} for r in test],
             "miscopies": [{"problem_id": r["id"], "completion": " " + (r["solution"].replace(item(r["question"]),
                            other(r["question"])) if i % 2 else r["solution"])} for i, r in enumerate(test)]}
    (run / "eval_test").mkdir()
    (run / "eval_test" / "results.json").write_text(json.dumps({"predictions": preds}))
    rows = [{"rejected_token": t} for t in (" cookies", " coo", "After", " +", "7", "12")] + [{"margin": 0.0}]
    (run / "diag_pairs.json").write_text(json.dumps({"rows": rows}))
    arms, pairs = nouns.run_rows(run)
    assert arms == {"copies": 0.0, "miscopies": 0.5}
    assert pairs["diag_pairs"] == {"noun": 2 / 6, "word": 2 / 6, "digit": 2 / 6}  # rows that never diverge skipped
    text = nouns.main([str(run), "--out", str(tmp_path / "n.md")])
    assert "miscopies 50.0%" in text and (tmp_path / "n.md").read_text() == text
    write_jsonl(run / "data" / "val.jsonl", test)
    with pytest.raises(SystemExit, match="eval_val/results.json"):   # --split val reads eval_val/ (absent here)
        nouns.main([str(run), "--split", "val"])
    bad = [dict(r, id="x" + r["id"]) for r in test]
    write_jsonl(run / "data" / "test.jsonl", bad)
    with pytest.raises(SystemExit, match="results.json: problem 't-"):
        nouns.main([str(run)])
