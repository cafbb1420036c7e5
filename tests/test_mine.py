"""mine.py on hand-made scored records (plus one case scored by the real verifier): chosen is a clean correct
sample, near misses beat absurd / truncated / far-off negatives, the reference fallback is flagged, the cap holds,
weights average 1, output is deterministic, bad input fails cleanly with no output."""
import json
import random
import subprocess
import sys

import pytest

import mine
from common import format_prompt, format_response, read_jsonl, write_json, write_jsonl
from verifier import is_near_miss, profile

Q = "Mia has 7 boxes. Each of the boxes holds 36 pens. She gives away 58 pens. How many pens does Mia have left?"
REF = "Mia has 7 * 36 = 252 pens.\nAfter giving away 58, Mia has 252 - 58 = 194 pens.\nThe answer is: 194"


def prof(correct=False, nd=0.0, absurd=0.0, wrong=None, n_wrong=0, pred="194"):
    """A verifier profile dict (the fields mine.py and verifier.is_near_miss read)."""
    wrong = (0.0 if correct else 0.6 + 0.2 * nd + 0.1 * (n_wrong > 0)) if wrong is None else wrong
    return {"answer_mismatch": 0.0 if correct else 1.0, "numeric_distance": nd, "arithmetic": 0.4 * (n_wrong > 0),
            "symbolic": 0.0, "logical": 0.0, "format": 0.0, "wrongness": wrong, "absurdity": absurd,
            "correct": correct, "pred": pred, "details": {"n_wrong_equations": n_wrong}}


def rec(pid, idx, completion, p, finish="eos", ref=REF):
    return {"id": f"{pid}/{idx}", "problem_id": pid, "sample_idx": idx, "seed": idx, "question": Q,
            "prompt": format_prompt(Q), "completion": completion, "answer": "194", "reference_solution": ref,
            "finish_reason": finish, "n_tokens": 40, "model": "out/sft", "profile": p}


def scored_records():
    a = [rec("A", 0, " clean correct", prof(True)),
         rec("A", 1, " correct but a slipped step", prof(True, wrong=0.04, n_wrong=1)),
         rec("A", 2, " near miss: 193", prof(nd=0.02, absurd=0.1, n_wrong=1, pred="193")),
         rec("A", 3, " absurd garbage 9999999", prof(nd=1.0, absurd=0.9, pred="9999999")),
         rec("A", 4, " truncated near miss 19", prof(nd=0.05, absurd=0.1, n_wrong=1, pred="19"), finish="length"),
         rec("A", 5, " near miss: 193", prof(nd=0.02, absurd=0.1, n_wrong=1, pred="193")),          # duplicate text
         rec("A", 6, " far off, several slips: 500", prof(nd=0.8, absurd=0.2, n_wrong=3, pred="500")),  # not a near miss
         rec("A", 7, " near miss: 180", prof(nd=0.13, absurd=0.2, n_wrong=1, pred="180"))]
    b = [rec("B", i, f" wrong {i}", prof(nd=0.1 * i, absurd=0.1, n_wrong=1, pred=str(190 + i))) for i in range(3)]
    c = [rec("C", i, f" right {i}", prof(True)) for i in range(2)]
    d = [rec("D", i, f" slip {i}", prof(nd=0.01 * (i + 1), absurd=0.05, n_wrong=1, pred=str(195 + i))) for i in range(6)]
    d.append(rec("D", 6, " correct", prof(True)))
    return a + b + c + d


def run(tmp_path, recs=None, *args, name="pairs.jsonl"):
    src = tmp_path / "scored.jsonl"
    if recs is not None:
        write_jsonl(src, recs)
    out = tmp_path / name
    mine.main([str(src), "-o", str(out), *map(str, args)])
    return read_jsonl(out)


def by_problem(pairs):
    out = {}
    for p in pairs:
        out.setdefault(p["problem_id"], []).append(p)
    return out


def test_hard_negatives_and_chosen(tmp_path):
    pairs = by_problem(run(tmp_path, scored_records()))
    a = pairs["A"]
    assert [p["rejected_sample_idx"] for p in a] == [2, 7]  # near misses, closest first; absurd/truncated/far/dup out
    assert all(p["chosen_sample_idx"] == 0 and p["chosen_source"] == "sample" for p in a)  # not the slipped one
    assert all(p["hard"] and p["rejected_profile"]["pred"] in ("193", "180") for p in a)
    assert a[0]["weight"] > a[1]["weight"]  # the closer near miss weighs more
    assert all(p["chosen"] != p["rejected"] for ps in pairs.values() for p in ps)
    # no correct sample -> the reference solution, flagged, with its own (correct) profile
    b = pairs["B"]
    assert all(p["chosen_source"] == "reference" and p["chosen"] == format_response(REF) for p in b)
    assert all(p["chosen_sample_idx"] is None and p["chosen_profile"]["correct"] for p in b)
    assert "C" not in pairs  # nothing wrong: nothing to learn from
    assert len(pairs["D"]) == 4  # default cap
    p = a[0]
    assert p["prompt"] == format_prompt(Q) and p["answer"] == "194" and p["id"] == "A/c0-r2"


def test_negatives_all_and_keep_absurd(tmp_path):
    recs = scored_records()
    a = by_problem(run(tmp_path, recs, "--negatives", "all"))["A"]
    assert [p["rejected_sample_idx"] for p in a] == [2, 7, 6]  # the non-near-miss ranks after the near misses
    assert [p["hard"] for p in a] == [True, True, False]
    a = by_problem(run(tmp_path, recs, "--negatives", "all", "--keep-absurd", "--max-pairs-per-problem", "10"))["A"]
    assert [p["rejected_sample_idx"] for p in a] == [2, 4, 7, 6, 3]  # the absurd one last, lightest
    assert a[-1]["weight"] == min(p["weight"] for p in a)


def test_cap_weights_and_determinism(tmp_path):
    recs = scored_records()
    pairs = run(tmp_path, recs, "--max-pairs-per-problem", "2")
    assert max(len(v) for v in by_problem(pairs).values()) == 2
    assert [p["rejected_sample_idx"] for p in by_problem(pairs)["D"]] == [0, 1]  # hardest (closest) first
    ws = [p["weight"] for p in pairs]
    assert sum(ws) / len(ws) == pytest.approx(1.0, abs=1e-5)
    # weight = hardness ** 2 x failure_rate ** 4 / mean (defaults), hardness = (1 - absurdity) * (1 - numeric_distance),
    # failure_rate = this wrong answer's share of the problem's samples; floored at --min-weight 0.001 (rare slips)
    share = {(p["problem_id"], p["rejected_profile"]["pred"]):
             sum(r["problem_id"] == p["problem_id"] and not r["profile"]["correct"]
                 and r["profile"]["pred"] == p["rejected_profile"]["pred"] for r in recs)
             / sum(r["problem_id"] == p["problem_id"] for r in recs) for p in pairs}
    assert [p["failure_rate"] for p in pairs] == pytest.approx([share[p["problem_id"], p["rejected_profile"]["pred"]] for p in pairs])
    h = [max(((1 - p["rejected_profile"]["absurdity"]) * (1 - p["rejected_profile"]["numeric_distance"])) ** 2
             * p["failure_rate"] ** 4, 0.001) for p in pairs]
    assert 0 < sum(x == 0.001 for x in h) < len(h)   # the floor is exercised, not everywhere
    assert all(w == pytest.approx(x / (sum(h) / len(h)), rel=1e-4) for w, x in zip(ws, h))
    first = (tmp_path / "pairs.jsonl").read_bytes()
    random.Random(0).shuffle(recs)  # input order must not matter
    run(tmp_path, recs, "--max-pairs-per-problem", "2", name="again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == first
    meta = json.loads((tmp_path / "pairs.jsonl.meta.json").read_text())
    assert meta["stage"] == "mine" and meta["model"] == "out/sft" and meta["parent"].endswith("scored.jsonl")
    assert meta["summary"]["pairs"] == len(pairs) and meta["args"]["max_pairs_per_problem"] == 2


def test_weight_power_sharpens_weights_of_the_same_pairs(tmp_path):
    recs = scored_records()
    off = ("--failure-power", "0", "--min-weight", "0.05")   # hardness alone
    base = run(tmp_path, recs, "--negatives", "all", "--keep-absurd", "--weight-power", "1", *off)
    sharp = run(tmp_path, recs, "--negatives", "all", "--keep-absurd", *off, name="sharp.jsonl")   # default power 2
    strip = lambda ps: [{k: v for k, v in p.items() if k != "weight"} for p in ps]
    assert strip(base) == strip(sharp)  # selection and order do not depend on the weights
    h = [max(p["hardness"] ** 2, 0.05) for p in sharp]  # raw weight = max(hardness ** 2, --min-weight)
    ws = [p["weight"] for p in sharp]
    assert all(w == pytest.approx(x / (sum(h) / len(h)), rel=1e-4) for w, x in zip(ws, h))
    cv = lambda ws: (sum((w - 1) ** 2 for w in ws) / len(ws)) ** 0.5  # weights have mean 1
    assert cv(ws) > cv([p["weight"] for p in base])
    with pytest.raises(SystemExit, match="--weight-power"):
        run(tmp_path, recs, "--weight-power", "0", name="bad.jsonl")


def test_failure_power_weights_systematic_errors_over_rare_slips(tmp_path):
    # two problems with equally hard negatives: E is wrong in 3 of its 4 samples (the model's mode), F in 1 of 4
    recs = [rec(pid, i, f" {pid} {'wrong' if wrong else 'right'} {i}",
                prof(nd=0.05, n_wrong=1, pred="193") if wrong else prof(True))
            for pid, n_wrong in (("E", 3), ("F", 1)) for i, wrong in enumerate([True] * n_wrong + [False] * (4 - n_wrong))]
    off = by_problem(run(tmp_path, recs, "--max-pairs-per-problem", "1", "--failure-power", "0"))
    on = by_problem(run(tmp_path, recs, "--max-pairs-per-problem", "1", "--failure-power", "2", "--failure-kind", "any",
                        name="on.jsonl"))
    assert [p["id"] for p in off["E"] + off["F"]] == [p["id"] for p in on["E"] + on["F"]]  # same pairs
    assert off["E"][0]["weight"] == off["F"][0]["weight"] == 1.0       # power 0: hardness alone (equal here)
    assert on["E"][0]["failure_rate"] == 0.75 and on["F"][0]["failure_rate"] == 0.25
    assert on["E"][0]["weight"] / on["F"][0]["weight"] == pytest.approx(9.0, rel=1e-4)   # (0.75 / 0.25) ** 2
    with pytest.raises(SystemExit, match="--failure-power"):
        run(tmp_path, recs, "--failure-power", "-1", name="bad.jsonl")


def test_same_answer_failure_rate_counts_this_error_only(tmp_path):
    # G: three wrong samples, two of them the same wrong answer 193 (a recurring error) and one 180 (a slip)
    profs = [prof(nd=0.05, n_wrong=1, pred="193"), prof(nd=0.05, n_wrong=1, pred="193"),
             prof(nd=0.05, n_wrong=1, pred="180"), prof(True)]
    recs = [rec("G", i, f" text {i}", p) for i, p in enumerate(profs)]
    got = run(tmp_path, recs, "--max-pairs-per-problem", "3", "--failure-power", "1", "--failure-kind", "same-answer")
    rate = {p["rejected_profile"]["pred"]: p["failure_rate"] for p in got}
    assert rate == {"193": 0.5, "180": 0.25}
    w = {p["rejected_profile"]["pred"]: p["weight"] for p in got}
    assert w["193"] == pytest.approx(2 * w["180"], rel=1e-4)   # equal hardness: the recurring error weighs twice
    anyk = run(tmp_path, recs, "--max-pairs-per-problem", "3", "--failure-power", "1", "--failure-kind", "any",
               name="any.jsonl")
    assert {p["failure_rate"] for p in anyk} == {0.75}
    # answers compared without cosmetics: '$193' is the same error as '193'
    recs2 = recs + [rec("G", 4, " text 4", prof(nd=0.05, n_wrong=1, pred="$193"))]
    got2 = run(tmp_path, recs2, "--max-pairs-per-problem", "4", "--failure-kind", "same-answer", name="cos.jsonl")
    assert {p["rejected_profile"]["pred"]: p["failure_rate"] for p in got2} == {"193": 0.6, "$193": 0.6, "180": 0.2}
    # a --rejected-from negative (the greedy answer) is one more draw: it counts itself, so a greedy error that no
    # sample repeats has rate 1/5, not 0; one with no extracted answer has no error to recur (rate 0)
    greedy = tmp_path / "greedy.jsonl"
    for pred, want in (("180", 2 / 5), ("170", 1 / 5), (None, 0.0)):
        write_jsonl(greedy, [rec("G", 0, f" greedy {pred}", prof(nd=0.05, n_wrong=1, pred=pred))])
        g = run(tmp_path, recs, "--rejected-from", greedy, "--negatives", "all", "--keep-absurd", name="g.jsonl")
        assert [p["failure_rate"] for p in g] == [pytest.approx(want)], pred


def test_min_failure_rate_keeps_recurring_errors_before_ranking(tmp_path):
    # H: the slip 180 is the hardest negative (closest), 193 recurs in 2 of the 4 samples
    profs = [prof(nd=0.10, n_wrong=1, pred="193"), prof(nd=0.10, n_wrong=1, pred="193"),
             prof(nd=0.01, n_wrong=1, pred="180"), prof(True)]
    recs = [rec("H", i, f" text {i}", p) for i, p in enumerate(profs)]
    top = run(tmp_path, recs, "--max-pairs-per-problem", "1", "--negatives", "all")
    assert [p["rejected_profile"]["pred"] for p in top] == ["180"]
    # the filter acts before the ranking and the cap: the hardest *recurring* negative is kept, not no pair
    kept = run(tmp_path, recs, "--max-pairs-per-problem", "1", "--negatives", "all", "--min-failure-rate", "0.5",
               name="f.jsonl")
    assert [(p["rejected_profile"]["pred"], p["failure_rate"]) for p in kept] == [("193", 0.5)]
    meta = json.loads((tmp_path / "f.jsonl.meta.json").read_text())
    assert meta["summary"]["skip_rare"] == 1
    # the random ablation draws among the kept negatives only, whatever the seed
    for seed in range(5):
        r = run(tmp_path, recs, "--max-pairs-per-problem", "1", "--negatives", "random", "--min-failure-rate", "0.5",
                "--seed", seed, name="r.jsonl")
        assert [p["rejected_profile"]["pred"] for p in r] == ["193"]
    # a problem whose errors are all one-off: no pair at all (mine.py stops when nothing is left anywhere)
    with pytest.raises(SystemExit, match="no pairs.*lower --min-failure-rate"):
        run(tmp_path, recs, "--negatives", "all", "--min-failure-rate", "0.75", name="none.jsonl")
    with pytest.raises(SystemExit, match="--min-failure-rate"):
        run(tmp_path, recs, "--min-failure-rate", "1.5", name="bad.jsonl")
    # a --rejected-from negative counts itself: the greedy 193 is (2 + 1) / 5 = 0.6, the greedy 180 (1 + 1) / 5 = 0.4
    greedy = tmp_path / "greedy.jsonl"
    for pred, kept in (("193", True), ("180", False)):
        write_jsonl(greedy, [rec("H", 0, f" greedy {pred}", prof(nd=0.05, n_wrong=1, pred=pred))])
        args = ("--rejected-from", greedy, "--negatives", "all", "--min-failure-rate", "0.5")
        if kept:
            assert [p["failure_rate"] for p in run(tmp_path, recs, *args, name="g.jsonl")] == [pytest.approx(0.6)]
        else:
            with pytest.raises(SystemExit, match="lower --min-failure-rate"):
                run(tmp_path, recs, *args, name="g.jsonl")
    # --failure-kind any: the rate is the problem's share of wrong samples (3 of 4 here), the same for every negative
    anyk = run(tmp_path, recs, "--max-pairs-per-problem", "3", "--negatives", "all", "--failure-kind", "any",
               "--min-failure-rate", "0.75", name="any.jsonl")
    assert sorted(p["rejected_profile"]["pred"] for p in anyk) == ["180", "193", "193"]


def test_model_from_scored_meta_and_no_reference(tmp_path):
    recs = [{k: v for k, v in r.items() if k != "model"} for r in scored_records()]
    write_jsonl(tmp_path / "scored.jsonl", recs)
    write_json(tmp_path / "scored.jsonl.meta.json", {"stage": "verify", "model": "out/sft_b"})
    pairs = run(tmp_path, None, "--no-reference")
    assert json.loads((tmp_path / "pairs.jsonl.meta.json").read_text())["model"] == "out/sft_b"
    assert "B" not in by_problem(pairs)


@pytest.mark.parametrize("case,msg", [
    ("no_profile", "scored.jsonl:2: missing field 'profile'"),
    ("profile_lacks", "scored.jsonl:3: field 'profile' lacks 'absurdity'"),
    ("empty", "scored.jsonl: no scored records"),
    ("duplicate", "scored.jsonl:2: duplicate sample A/0"),
    ("string_in_profile", r"scored.jsonl:3: field 'profile.numeric_distance' must be a number in \[0, 1\], got \"abc\""),
    ("nan_absurdity", r"scored.jsonl:2: field 'profile.absurdity' must be a number in \[0, 1\], got NaN"),
    ("inf_wrongness", r"scored.jsonl:4: field 'profile.wrongness' must be a number in \[0, 1\], got Infinity"),
    ("out_of_range", r"scored.jsonl:4: field 'profile.arithmetic' must be a number in \[0, 1\], got 7"),
    ("bool_correct", "scored.jsonl:1: field 'profile.correct' must be true/false, got int"),
    ("details_list", "scored.jsonl:3: field 'profile.details' must be an object, got list"),
    ("bool_idx", "scored.jsonl:2: field 'sample_idx' must be int, got bool"),
    ("not_utf8", "scored.jsonl:3: not valid UTF-8 \\(byte 0xff"),
])
def test_bad_input_fails_without_output(tmp_path, case, msg):
    recs = scored_records()
    if case == "no_profile":
        del recs[1]["profile"]
    elif case == "profile_lacks":
        del recs[2]["profile"]["absurdity"]
    elif case == "empty":
        recs = []
    elif case == "duplicate":
        recs[1]["sample_idx"] = 0
    elif case == "string_in_profile":
        recs[2]["profile"]["numeric_distance"] = "abc"
    elif case == "nan_absurdity":
        recs[1]["profile"]["absurdity"] = float("nan")
    elif case == "inf_wrongness":
        recs[3]["profile"]["wrongness"] = float("inf")
    elif case == "out_of_range":
        recs[3]["profile"]["arithmetic"] = 7
    elif case == "bool_correct":
        recs[0]["profile"]["correct"] = 1
    elif case == "details_list":
        recs[2]["profile"]["details"] = [1]
    elif case == "bool_idx":
        recs[1]["sample_idx"] = True
    write_jsonl(tmp_path / "scored.jsonl", recs)
    if case == "not_utf8":
        lines = (tmp_path / "scored.jsonl").read_bytes().split(b"\n")
        lines[2] = lines[2].replace(b"near miss", b"near \xff miss")
        (tmp_path / "scored.jsonl").write_bytes(b"\n".join(lines))
    with pytest.raises(SystemExit, match=f"error: .*{msg}"):
        run(tmp_path, None)
    assert not (tmp_path / "pairs.jsonl").exists() and not (tmp_path / "pairs.jsonl.meta.json").exists()


def test_cli_exit_code(tmp_path):
    write_jsonl(tmp_path / "scored.jsonl", [{"problem_id": "A", "sample_idx": 0}])
    r = subprocess.run([sys.executable, "mine.py", str(tmp_path / "scored.jsonl"), "-o", str(tmp_path / "p.jsonl")],
                       cwd=mine.__file__.rsplit("/", 1)[0], capture_output=True, text=True)
    assert r.returncode != 0 and "scored.jsonl:1: missing field 'completion'" in r.stderr
    assert not (tmp_path / "p.jsonl").exists()


def test_with_the_real_verifier(tmp_path):
    """Profiles from verifier.profile, not by hand: a one-slip solution beats a garbage one."""
    texts = {0: REF,
             1: "Mia has 7 * 36 = 252 pens.\nAfter giving away 58, Mia has 252 - 58 = 184 pens.\nThe answer is: 184",
             2: "Mia has 7 * 36 = 999999 pens pens pens pens.\nThe answer is: 999999",
             3: "Mia has 7 * 36 = 252 pens.\nAfter giving away 58, Mia has 252 - 58 = 194 pens.\nThe answer"}
    recs = []
    for i, t in texts.items():
        finish = "length" if i == 3 else "eos"
        p = profile(" " + t, "194", question=Q, truncated=finish == "length").to_dict()
        recs.append(rec("R", i, " " + t, p, finish=finish))
    assert recs[0]["profile"]["correct"] and is_near_miss(recs[1]["profile"]) and not is_near_miss(recs[2]["profile"])
    pairs = run(tmp_path, recs, "--negatives", "all")  # garbage (absurdity ~0.87) and truncated: not negatives
    assert [p["rejected_sample_idx"] for p in pairs] == [1]
    assert pairs[0]["chosen_sample_idx"] == 0 and pairs[0]["hard"] and pairs[0]["chosen_profile"]["correct"]
    pairs = run(tmp_path, recs, "--negatives", "all", "--keep-absurd")
    assert pairs[0]["rejected_sample_idx"] == 1 and sorted(p["rejected_sample_idx"] for p in pairs) == [1, 2, 3]
    assert pairs[0]["weight"] == max(p["weight"] for p in pairs) and not any(p["hard"] for p in pairs[1:])


def test_first_error_scope_ends_rejected_at_the_slip(tmp_path):
    """The rejected side of the loss stops right after the first wrong equation's result."""
    from mine import first_error_end
    from verifier import profile
    text = " Mia has 7 * 6 = 43 pens.\nAfter giving away 19, Mia has 43 - 19 = 24 pens.\nThe answer is: 24"
    upto = first_error_end(text, profile(text, "23").to_dict())
    assert text[:upto] == " Mia has 7 * 6 = 43"
    slip2 = " Mia has 7 * 6 = 42 pens.\nAfter giving away 19, Mia has 42 - 19 = 13 pens.\nThe answer is: 13"
    assert slip2[:first_error_end(slip2, profile(slip2, "23").to_dict())].endswith("42 - 19 = 13")
    miscopy = " Mia has 7 * 6 = 42 pens.\nAfter giving away 19, Mia has 42 - 19 = 23 pens.\nThe answer is: 32"
    assert first_error_end(miscopy, profile(miscopy, "23").to_dict()) is None  # no wrong step: whole text
    # before-value: a wrong value computed right on a wrong path is left out; a slipped result stays in
    path = " Mia packs 7 * 6 = 42 pens.\nAfter selling 4, there are 42 - 4 = 38 pens left.\nThe answer is: 38"
    p = profile(path, "41").to_dict()
    assert p["details"]["first_wrong_reason"] == "wrong_value_first_stated"
    assert path[:first_error_end(path, p)].endswith("42 - 4 = 38")
    assert path[:first_error_end(path, p, keep_true_results=False)].endswith("42 - 4 = ")
    slip = profile(text, "23").to_dict()
    assert first_error_end(text, slip, keep_true_results=False) == first_error_end(text, slip)


def test_divergence_scope_is_a_token_level_pair(tmp_path, toy_tok):
    """--rejected-scope divergence: the rejected side's loss ends with the token where it leaves chosen, so the
    pair's margin holds that one token (the shared prefix cancels) and nothing the rejected text says after it."""
    from common import encode_pair, encode_rejected, IGNORE
    from mine import divergence_end
    chosen = " Mia has 7 * 6 = 42 pens.\nThe answer is: 42"
    rejected = " Mia has 7 * 6 = 48 pens.\nThe answer is: 48"
    upto = divergence_end(chosen, rejected)
    assert rejected[:upto] == " Mia has 7 * 6 = 48" and chosen[:upto - 1] == rejected[:upto - 1]
    assert divergence_end(chosen, chosen) is None and divergence_end(chosen, chosen + " more") is None
    assert divergence_end("abc", "xbc") == 1                                     # differs at the first character
    recs = scored_records()
    pairs = run(tmp_path, recs, "--negatives", "all", "--keep-absurd", "--rejected-scope", "divergence")
    assert pairs and all(p["rejected_upto"] == divergence_end(p["chosen"], p["rejected"]) for p in pairs)
    tok = toy_tok
    for p in pairs:
        if p["rejected_upto"] is None:
            continue
        ids_r, lab_r = encode_rejected(tok, p["prompt"], p["rejected"], p["rejected_upto"])
        ids_c, _ = encode_pair(tok, p["prompt"], p["chosen"])
        offs = tok(p["rejected"], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        n_prompt = len(ids_r) - len(offs) - 1
        scored = [j - n_prompt for j, y in enumerate(lab_r) if y != IGNORE]
        first_diff = next(j for j in range(len(ids_r)) if ids_r[j] != ids_c[j]) - n_prompt
        assert first_diff <= scored[-1]                            # the tokens where rejected leaves chosen count...
        assert offs[scored[-1]][0] < p["rejected_upto"] <= offs[scored[-1]][1]   # ...and none after the one
        assert scored == list(range(scored[-1] + 1))                             # holding the first new character


def test_random_negatives_rejected_from_and_heldout(tmp_path):
    recs = scored_records()
    hard = run(tmp_path, recs, "--negatives", "all", "--keep-absurd", "--max-pairs-per-problem", "1")
    rnd = [run(tmp_path, recs, "--negatives", "random", "--max-pairs-per-problem", "1", "--seed", s, name=f"r{s}.jsonl")
           for s in (0, 1, 2, 3)]
    assert {p["problem_id"] for p in rnd[0]} == {p["problem_id"] for p in hard}      # same problems, one pair each
    assert rnd[0] == run(tmp_path, recs, "--negatives", "random", "--max-pairs-per-problem", "1", "--seed", 0, name="again.jsonl")
    picks = {p["rejected_sample_idx"] for r in rnd for p in r if p["problem_id"] == "A"}
    assert len(picks) > 1 and by_problem(hard)["A"][0]["rejected_sample_idx"] == 2   # random varies; hard = closest
    # rejected from another file (the model's greedy answers): chosen still from the samples
    greedy = [rec("A", 0, " greedy slip 190", prof(nd=0.02, n_wrong=1, pred="190")), rec("B", 0, " right", prof(True))]
    write_jsonl(tmp_path / "greedy.jsonl", greedy)
    g = run(tmp_path, recs, "--rejected-from", tmp_path / "greedy.jsonl", "--negatives", "all", name="g.jsonl")
    assert [(p["problem_id"], p["rejected"]) for p in g] == [("A", " greedy slip 190")] and g[0]["id"].endswith("-g0")
    # held-out problems: whole problems leave the training file, the same ones for every mining rule
    tr = run(tmp_path, recs, "--negatives", "all", "--heldout-frac", "0.5", "--heldout-out", tmp_path / "h.jsonl", name="t.jsonl")
    ho = read_jsonl(tmp_path / "h.jsonl")
    assert ho and tr and not ({p["problem_id"] for p in tr} & {p["problem_id"] for p in ho})
    run(tmp_path, recs, "--negatives", "random", "--heldout-frac", "0.5", "--heldout-out", tmp_path / "h2.jsonl", name="t2.jsonl")
    assert {p["problem_id"] for p in read_jsonl(tmp_path / "h2.jsonl")} == {p["problem_id"] for p in ho}
    for frac in ("1", "-0.1"):   # nothing left to train on / not a fraction: a clear error, no traceback
        with pytest.raises(SystemExit, match="error: --heldout-frac"):
            run(tmp_path, recs, "--heldout-frac", frac, "--heldout-out", tmp_path / "h3.jsonl", name="t3.jsonl")


def test_flawed_reference_is_no_chosen(tmp_path):
    bad_ref = "Mia has 7 * 36 = 252 pens.\nAfter giving away 58, Mia has 252 - 58 = 190 pens.\nThe answer is: 190"
    recs = [rec("X", i, f" wrong {i}", prof(nd=0.1, n_wrong=1, pred="190"), ref=bad_ref) for i in range(2)]
    recs += [rec("Y", i, f" wrong {i}", prof(nd=0.1, n_wrong=1, pred="190")) for i in range(2)]
    pairs = run(tmp_path, recs, "--negatives", "all")
    assert {p["problem_id"] for p in pairs} == {"Y"}          # X's only chosen would be its flawed reference
    meta = json.loads((tmp_path / "pairs.jsonl.meta.json").read_text())
    assert meta["summary"]["reference_not_verified"] == 1
