"""Tests for verifier.py (the rule + sympy MathVerifier). Run: python -m pytest tests/test_verifier.py -q"""
import json, math, subprocess, sys, time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import verifier as V  # noqa: E402
from verifier import DIMENSIONS, Profile, answers_match, extract_answer, is_near_miss, profile  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

TOY = """Question: A shop sells 23 boxes of pens. Each box holds 17 pens. The shop then receives 46 more pens. How many pens does the shop have now?
Answer: The shop sells 23 * 17 = 391 pens.
Then it has 391 + 46 = 437 pens.
The answer is: 437"""
TOY_Q = TOY.splitlines()[0]
SLIP = TOY.replace("= 391", "= 381").replace("391 + 46 = 437", "381 + 46 = 427").replace(": 437", ": 427")
COPY = TOY.replace("The answer is: 437", "The answer is: 473")


# ----------------------------------------------------------------------------- extract_answer
@pytest.mark.parametrize("text, want", [
    ("so 2 + 3 = 5.\nThe answer is: 5", "5"),
    ("The answer is: 3\nwait, recheck.\nThe answer is: 4", "4"),            # last occurrence
    ("Janet sells 9 eggs.\n#### 18", "18"),
    ("#### 1,000", "1,000"),
    (r"Thus $x = \boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
    (r"first \boxed{1} then \boxed{\{1, \frac{2}{3}\}}", r"\{1, \frac{2}{3}\}"),  # last box, nested braces
    (r"The answer is: $\boxed{7}$.", "7"),
    ("The answer is: 18 dollars.", "18 dollars"),
    ("no final answer here, 2 + 2 = 4", None),
    ("", None),
])
def test_extract_answer(text, want):
    assert extract_answer(text) == want


# ----------------------------------------------------------------------------- answers_match
EQUIVALENT = [
    ("1/2", "0.5"), ("1/2", r"\frac{1}{2}"), (r"\frac{1}{2}", r"\dfrac12"), ("0.5", r"\tfrac{1}{2}"),
    ("1,000", "1000"), ("1,234,567", "1234567"), (r"10,\!000", "10000"), ("x = 5", "5"), ("$18.00", "18"),
    (r"\$18", "18"), ("18 dollars", "18"), (r"5\text{ cm}", "5"), ("5 cm", "5"), (r"10\text{ inches}", "10"),
    (r"864 \mbox{ inches}^2", "864"),
    (r"\{1,2\}", r"\{2,1\}"), ("(1,2)", "( 1 , 2 )"), (r"2\sqrt{2}", r"\sqrt{8}"), (r"2\sqrt2", r"\sqrt{8}"),
    (r"50\%", "50"), ("50%", "0.5"), (r"30^\circ", "30"), (r"30^{\circ}", "30"), (r"2\pi", r"\pi \cdot 2"),
    (r"\frac{\pi}{2}", r"\frac{1}{2}\pi"), ("[1,2)", r"\left[ 1, 2 \right)"), (r"\text{Monday}", "monday"),
    ("(C)", r"\text{(C)}"), ("x^2 - 1", "(x-1)(x+1)"), ("p - q", "-q + p"), ("6+9i", "9i+6"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \pi/2)"), ("2, -3", "-3, 2"), (r"137 \frac{1}{2}", "137.5"),
    (r"1 \pm \sqrt{19}", r"1 - \sqrt{19}, 1 + \sqrt{19}"), (r"\boxed{4}", "4"),
    (r"\begin{pmatrix} 1 \\ -2 \end{pmatrix}", r"\begin{pmatrix}1\\-2\end{pmatrix}"), ("x = 2 or x = 3", r"\{3, 2\}"),
    (r"(-\infty, 2) \cup (3, \infty)", r"(3,\infty)\cup(-\infty,2)"), (r"\sin^2 x + \cos^2 x", "1"),
]
DIFFERENT = [
    ("5", "50"), ("1/2", "2"), ("(1,2)", "(2,1)"), ("[1,2)", "(1,2)"), ("-5", "5"), (r"\sqrt{2}", "1.42"),
    ("x^2", "x^3"), (r"\{1,2\}", r"\{1,3\}"), ("Monday", "Tuesday"), ("50%", "5"), (r"2\pi", "6.29"),
    ("(1,2)", r"\{1,2\}"), ("3.14", "3.15"), ("0.3", r"\frac{1}{3}"), ("18", "18.5"), ("(C)", "(D)"),
    ("1,2", "1,2,3"), ("x+1", "y+1"), (r"30^\circ", "60"), ("1000", "100"), ("1,000", "1,001"), ("0", ""),
    (r"\frac{3}{4}", "0.8"), ("(x+1)^2", "x^2+1"), ("east", "west"),
]


@pytest.mark.parametrize("a, b", EQUIVALENT)
def test_equivalent_both_directions(a, b):
    assert answers_match(a, b) and answers_match(b, a)


@pytest.mark.parametrize("a, b", DIFFERENT)
def test_different_both_directions(a, b):
    assert not answers_match(a, b) and not answers_match(b, a)


def test_answers_match_none_numbers_and_rounded_reference():
    assert not answers_match("5", None) and not answers_match(None, "5")
    assert answers_match(18, "18.0")
    # a rounded reference accepts the exact value; an approximate candidate is not an exact answer
    assert answers_match("0.33", r"\frac{1}{3}") and not answers_match(r"\frac{1}{3}", "0.33")
    assert not answers_match("0.34", r"\frac{1}{3}")


# ----------------------------------------------------------------------------- profile dimensions
def test_correct_solution_is_clean():
    p = profile(TOY, "437", TOY_Q)
    assert p.correct and p.pred == "437"
    assert all(getattr(p, d) == 0 for d in DIMENSIONS) and p.wrongness == 0 and p.absurdity == 0
    assert p.details["n_equations"] == 2 and p.details["first_wrong_step"] is None


def test_answer_mismatch_and_numeric_distance():
    near, far, nan = profile(SLIP, "437"), profile(TOY.replace(": 437", ": 43700"), "437"), profile("I give up.", "437")
    assert near.answer_mismatch == far.answer_mismatch == nan.answer_mismatch == 1.0
    assert 0 < near.numeric_distance <= V.NEAR_MISS_DIST < far.numeric_distance <= 1
    assert near.numeric_distance < profile(TOY.replace(": 437", ": 300"), "437").numeric_distance
    assert nan.numeric_distance == 1.0 and nan.pred is None
    text = profile(r"The answer is: \text{west}", r"\text{east}")
    assert text.numeric_distance == 1.0 and not text.correct


def test_arithmetic_slip_and_first_wrong_step():
    p = profile(SLIP, "437", TOY_Q)
    assert p.arithmetic > 0 and p.details["n_wrong_equations"] == 1
    assert p.details["first_wrong_step"] == 1 and "23 * 17 = 381" in p.details["wrong_equations"][0]
    assert p.logical == 0  # 427 is the result of the last (propagated) step


@pytest.mark.parametrize("text, wrong", [
    ("She makes 9 * 2 = $<<9*2=19>>19 a day.\n#### 19", True),          # GSM8K calculator note
    ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n#### 9", False),    # chained a - b - c = d
    ("He buys 3 x 4 = 12 apples.\nThe answer is: 12", False),           # x as times
    ("He buys 3 x 4 = 13 apples.\nThe answer is: 13", True),
    ("It costs $1,200 + $300 = $1,500 in total.\nThe answer is: 1500", False),
    ("The tip is 20% * 50 = 10 dollars.\nThe answer is: 10", False),
    ("Each gets 12 ÷ 4 = 3 cookies.\nThe answer is: 3", False),
    ("Each gets (12 + 4) / 4 = 5 cookies.\nThe answer is: 5", True),    # parentheses
    ("He has 5 + 3 = 9 apples.\nThe answer is: 9", True),               # "= c" followed by units
    ("Half of 10 = 5, so she keeps 5.\nThe answer is: 5", False),       # a bare left side is not checked
    ("So 10 / 3 = 3.33 each.\nThe answer is: 3.33", False),             # rounding
])
def test_arithmetic(text, wrong):
    assert (profile(text, extract_answer(text)).arithmetic > 0) == wrong


@pytest.mark.parametrize("text, wrong", [
    (r"We get $\frac{3}{4} = 0.8$, so the answer is $\boxed{0.8}$.", True),
    (r"We get $\frac{3}{4} = 0.75$, so the answer is $\boxed{0.75}$.", False),
    (r"Note $\sqrt{8} = 2\sqrt{2}$, so the answer is $\boxed{2\sqrt{2}}$.", False),
    (r"Factor: $x^2 - 1 = (x-1)(x+1)$, so $\boxed{2}$.", False),
    (r"Expand: $(x+1)^2 = x^2+1$, so $\boxed{2}$.", True),
    (r"Solve $2x + 3 = 7$, so $x = \boxed{2}$.", False),                # an equation, not an identity
    (r"\[\sin 30^\circ = \frac{1}{2}\] so $\boxed{\frac12}$", False),
])
def test_symbolic(text, wrong):
    assert (profile(text, extract_answer(text)).symbolic > 0) == wrong


def test_logical():
    copy = profile(COPY, "437", TOY_Q)   # right steps, wrong final copy
    assert copy.logical == 1.0 and {"final_not_last_result", "final_number_unsupported"} <= set(copy.details["reasons"])
    inter = profile(TOY.replace(": 437", ": 391"), "437", TOY_Q)  # copies an intermediate result
    assert 0 < inter.logical < 1 and "final_not_last_result" in inter.details["reasons"]
    assert profile(TOY, "437", TOY_Q).logical == 0


def test_format():
    assert profile(TOY, "437", TOY_Q).format == 0
    trunc = profile("The shop sells 23 * 17 = 391 pens and then it", "437", TOY_Q)
    assert trunc.format == 1.0 and trunc.details["truncated"] and "no_answer" in trunc.details["reasons"]
    assert profile(TOY, "437", TOY_Q, truncated=True).format > 0
    loop = profile("We add the pens again to count.\n" * 30 + "The answer is: 437", "437", TOY_Q)
    assert loop.format > 0 and "repetition" in loop.details["reasons"] and loop.correct
    neg = profile(TOY.replace(": 437", ": -437"), "437", TOY_Q)
    assert neg.format == 1.0 and "negative_count" in neg.details["reasons"]
    frac = profile("The answer is: 2.5", "3", "How many people came to the party?")
    assert frac.format > 0 and "non_integer_count" in frac.details["reasons"]
    assert profile("The answer is: 2.5", "3", "How many hours did it take?").format == 0
    big = profile(TOY.replace(": 437", ": 4370000"), "437", TOY_Q)
    assert big.format == 1.0 and "magnitude" in big.details["reasons"]


# ----------------------------------------------------------------------------- aggregation, near miss
def test_aggregation_bounds_and_order():
    inputs = [(TOY, "437"), (SLIP, "437"), (COPY, "437"), ("", "5"), ("x" * 5000, "5"), ("1+1=3\n" * 50, "2"),
              ("The answer is: -1e9", "5", "How many?"), (r"$\frac{3}{4} = 0.8$ $2+2=5$ \boxed{(1,2)}", "(2,1)")]
    cases = [profile(*c) for c in inputs]
    for p, c in zip(cases, inputs):
        for d in DIMENSIONS + ("wrongness", "absurdity"):
            assert 0.0 <= getattr(p, d) <= 1.0, (d, p)
        assert p.correct == answers_match(c[1], p.pred) and p.answer_mismatch == (not p.correct)
    right_but_slipped = profile(TOY.replace("= 391 pens", "= 390 pens"), "437", TOY_Q)
    assert right_but_slipped.correct and 0 < right_but_slipped.wrongness < 0.2
    assert cases[1].wrongness > right_but_slipped.wrongness
    assert cases[3].absurdity > cases[1].absurdity  # garbage beats a near miss


def test_is_near_miss():
    slip, copy = profile(SLIP, "437", TOY_Q), profile(COPY, "437", TOY_Q)
    assert is_near_miss(slip) and is_near_miss(copy)
    assert not is_near_miss(profile(TOY, "437", TOY_Q))                          # correct
    assert not is_near_miss(profile(TOY.replace(": 437", ": 5"), "437", TOY_Q))  # far and unsupported
    assert not is_near_miss(profile("I do not know", "437", TOY_Q))             # no answer
    d = json.loads(json.dumps(slip.to_dict()))                                  # JSON round trip
    assert is_near_miss(d) == is_near_miss(slip) and set(d) >= set(DIMENSIONS) | {"details", "pred", "correct"}


# ----------------------------------------------------------------------------- hostile inputs
@pytest.fixture(scope="module")
def warm():
    import sympy  # noqa: F401  one-time import cost is not a per-input cost
    profile(r"$\sqrt{8} = 2\sqrt{2}$ The answer is: 1", "1")


HOSTILE = [
    "The answer is: 9^9^9^9", r"$9^{9^{9^9}} = 1$ The answer is: 1", "<<9^9^9^9=1>>", r"$100000! = 5$ " * 50,
    "(" * 50_000 + "1 = 1", "1+" * 50_000 + "1=5", r"\frac{" * 20_000, r"\sqrt{" * 20_000, r"\[" * 20_000,
    "$" * 100_000, "[asy]" * 20_000, r"\begin{align}" * 8000, "<<" + "1+" * 100 + "1=2>> " * 2000,
    r"$(x+1)^{200} = x^{200}+1$ " * 30, r"$(a+b+c+d)^{12} = a^{12} + 1$ " * 30, r"$e^{e^{e^{e^{10}}}} = 1$ " * 10,
    "The answer is: " + "(" * 3000 + "1" + ")" * 3000, "#### " + "1" * 100_000, r"\boxed{" * 30_000,
    "x = " + "9" * 5000 + "^" + "9" * 5000, "The answer is: 2^{100000}",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_returns_quickly(warm, text):
    t0 = time.perf_counter()
    p = profile(text, r"e^{e^{e^{e^{11}}}}", "How many?")
    m = answers_match(text[-2000:], "9^{9^{9^9}}")
    assert time.perf_counter() - t0 < 1.0
    assert isinstance(p, Profile) and isinstance(m, bool) and 0 <= p.wrongness <= 1


def test_hostile_answers_match(warm):
    for a, b in [("9^9^9^9", "9^9^9^9 + 1"), ("10^{10^{10}}", "10^{10^{10}}+1"), ("100000!", "100001!"),
                 ("1" * 5000, "1" * 5000 + "1"), ("(x+y+z+w)^{12}", "(w+x+y+z)^{12}+1"), (r"e^{e^{e^{e^{10}}}}", "1")]:
        t0 = time.perf_counter()
        assert not answers_match(a, b)
        assert time.perf_counter() - t0 < 1.0


# ----------------------------------------------------------------------------- CLI
def _cli(tmp_path, lines, *args, subprocess_run=False):
    """Run the CLI on `lines`; in-process by default (the CLI's torch import via common.py is paid once),
    as a real subprocess when asked (the process pool needs one)."""
    src = tmp_path / "samples.jsonl"
    src.write_text("".join(l if isinstance(l, str) else json.dumps(l) + "\n" for l in lines))
    out = tmp_path / "scored.jsonl"
    argv = [str(src), "-o", str(out), *args]
    if subprocess_run:
        return subprocess.run([sys.executable, str(ROOT / "verifier.py"), *argv], capture_output=True, text=True,
                              timeout=300), out
    import contextlib, io, types
    buf, code = io.StringIO(), 0
    with contextlib.redirect_stdout(buf):
        try:
            V.main(argv)
        except SystemExit as e:
            code, err = 1, str(e.code)
        else:
            err = ""
    return types.SimpleNamespace(returncode=code, stdout=buf.getvalue(), stderr=err), out


def test_cli_scores_and_summarises(tmp_path):
    recs = [{"completion": TOY, "answer": "437", "question": TOY_Q, "finish_reason": "eos"},
            {"completion": SLIP, "answer": 437, "id": 7},
            {"completion": "The shop sells 23 * 17 = 391 pens and", "answer": "437", "finish_reason": "length"}]
    r, out = _cli(tmp_path, recs)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [x.get("id") for x in rows] == [None, 7, None] and all(set(DIMENSIONS) <= set(x["profile"]) for x in rows)
    assert [x["profile"]["correct"] for x in rows] == [True, False, False]
    assert rows[2]["profile"]["details"]["truncated"] and "accuracy 0.3333" in r.stdout and "near-miss 1" in r.stdout
    r2, out2 = _cli(tmp_path, recs, "--workers", "2", subprocess_run=True)
    assert r2.returncode == 0 and out2.read_text() == out.read_text()
    r3, _ = _cli(tmp_path, [{"solution": TOY, "answer": "437"}], "--field", "solution")
    assert r3.returncode == 0 and "accuracy 1.0000" in r3.stdout


@pytest.mark.parametrize("bad, msg", [
    ({"completion": "The answer is: 5"}, "samples.jsonl:2: missing field 'answer'"),
    ("{not json\n", "samples.jsonl:2: invalid JSON"),
    ({"completion": 5, "answer": "5"}, "samples.jsonl:2: field 'completion'"),
])
def test_cli_bad_input(tmp_path, bad, msg):
    r, out = _cli(tmp_path, [{"completion": TOY, "answer": "437"}, bad])
    assert r.returncode != 0 and msg in r.stderr
    assert not out.exists() and not Path(str(out) + ".tmp").exists()


def _main(argv):
    """verifier.main in-process (the CLI's import of common/torch is paid once): (exit message or None)."""
    try:
        V.main([str(a) for a in argv])
    except SystemExit as e:
        return str(e.code)
    return None


@pytest.mark.parametrize("content, msg", [
    (b'{"completion": "The answer is: 5", "answer": "5"}\n{"completion": "\xff\xfe", "answer": "5"}\n',
     "in.jsonl:2: not valid UTF-8"),
    (b"", "in.jsonl: no records"),
    (b"\n\n", "in.jsonl: no records"),
    (b'{"completion": "The answer is: 5", "answer": true}\n', "in.jsonl:1: field 'answer'"),
    (b'{"completion": "The answer is: 5", "answer": NaN}\n', "in.jsonl:1: field 'answer'"),
    (b'{"completion": "The answer is: 5", "answer": "5", "question": 3}\n', "in.jsonl:1: field 'question'"),
    (b'[1, 2]\n', "in.jsonl:1: expected a JSON object"),
])
def test_cli_bad_files_stop_with_file_line_before_writing(tmp_path, content, msg):
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    out = tmp_path / "o" / "scored.jsonl"
    err = _main([src, "-o", out])
    assert err is not None and err.startswith("error: ") and msg in err
    assert not out.parent.exists()  # nothing written, not even the folder


def test_cli_creates_the_output_folder_and_meta(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"completion": SLIP, "answer": "437", "model": "m1"}) + "\n")
    out = tmp_path / "new" / "deeper" / "scored.jsonl"
    assert _main([src, "--out", out]) is None
    row = json.loads(out.read_text())
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert "_line" not in row and row["profile"]["details"]["first_wrong_end"] is not None
    assert meta["stage"] == "verify" and meta["model"] == "m1" and meta["parent"] == str(src)
    assert meta["stats"]["n"] == 1 and meta["stats"]["first_error_located"] == 1
    assert "error" in _main([src, "-o", tmp_path])  # a folder is not an output file name


# ----------------------------------------------------------------------------- real data (skipped when absent)
def _rows(rel, n):
    path = DATA / rel
    if not path.is_file(): pytest.skip(f"{path} not available")
    with open(path) as f:
        return [json.loads(next(f)) for _ in range(n)]


def test_gsm8k_references_are_consistent():
    rows = _rows("gsm8k/test.jsonl", 200)
    ps = [profile(r["answer"], r["answer"].split("####")[-1].strip(), r["question"]) for r in rows]
    assert all(p.correct for p in ps)
    assert sum(p.arithmetic > 0 for p in ps) <= 2 and sum(p.details["n_equations"] > 0 for p in ps) >= 190


def test_math500_references_are_consistent():
    rows = _rows("math/math500_test.jsonl", 100)
    assert sum(profile(r["solution"], r["answer"], r["problem"]).correct for r in rows) >= 99
