"""verifier.py on prose and inline-math steps: every arithmetic claim re-computed, right ones never
flagged, wrong ones flagged with the first error's character span and paragraph; mine.py cuts there.
Fixtures written here. Run: python -m pytest tests/test_verifier_steps.py -q"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from verifier import profile  # noqa: E402

# (class, right step, the same step with a slip); each is checked inside a GSM8K-style solution
STEPS = [
    ("plain text", "So she has 18 - 6 = 12 left.", "So she has 18 - 6 = 13 left."),
    ("inline math", r"They take back \(1/3 \times 18 = 6\) flamingos.", r"They take back \(1/3 \times 18 = 7\) flamingos."),
    ("escaped dollars in math", r"Total: \(\$320 + \$120 = \$440\).", r"Total: \(\$320 + \$120 = \$450\)."),
    ("chain in display math", r"\[x = 5050 - 77 \times 65 = 5050 - 5005 = 45\]", r"\[x = 5050 - 77 \times 65 = 5050 - 5005 = 55\]"),
    ("unit words", "Together: 2 bags + 4 bags = 6 bags.", "Together: 2 bags + 4 bags = 7 bags."),
    ("price per unit", "Cost = $194/meter × 490 meters = $95,060.", "Cost = $194/meter × 490 meters = $94,860."),
    ("\\text units", r"\[14 \text{ hours (meditation)} + 20 \text{ hours (yoga)} = 34 \text{ hours}\]",
     r"\[14 \text{ hours (meditation)} + 20 \text{ hours (yoga)} = 36 \text{ hours}\]"),
    ("money is not math", "She pays $3.5 * 4000 = $14,000 in total.", "She pays $3.5 * 4000 = $14,500 in total."),
    ("calculator note", "He buys 3 * 4 = <<3*4=12>>12 pens.", "He buys 3 * 4 = <<3*4=13>>13 pens."),
]


def _solution(step):
    return f"First, we read the problem.\n\n{step}\n\nThat is all we need.\n\nThe answer is: 1"


@pytest.mark.parametrize("cls, good, bad", STEPS, ids=[s[0] for s in STEPS])
def test_step_claims_both_directions(cls, good, bad):
    g = profile(_solution(good), "1")
    assert g.details["n_wrong_equations"] == 0 and g.details["first_wrong_start"] is None, g.details
    assert g.details["n_equations"] >= 1, f"{cls}: the claim was not checked at all"
    text = _solution(bad)
    p = profile(text, "1")
    d = p.details
    assert d["n_wrong_equations"] >= 1 and max(p.arithmetic, p.symbolic) > 0, d
    assert d["first_wrong_paragraph"] == 1 and d["first_wrong_reason"] == "wrong_equation"
    s, e = d["first_wrong_start"], d["first_wrong_end"]
    assert text.index(bad) <= s < e <= text.index(bad) + len(bad)  # the span lies in the slipped step


def test_unit_conversion_is_not_an_equality():
    p = profile(r"\[1 \text{ square foot} = 144 \text{ square inches}\] The answer is: 144", "144")
    assert p.details["n_wrong_equations"] == 0


def test_first_error_is_the_earliest_and_later_ones_do_not_move_it():
    text = "We have 2 + 2 = 5.\n\nThen 5 * 3 = 15.\n\nFinally, 15 - 1 = 13.\n\nThe answer is: 13"
    d = profile(text, "14").details
    assert d["n_wrong_equations"] == 2 and d["first_wrong_paragraph"] == 0
    assert text[d["first_wrong_start"]:d["first_wrong_end"]] == "2 + 2 = 5"


def test_wrong_answer_without_a_wrong_equation_is_located_where_its_value_first_appears():
    text = "There are 12 apples.\n\nShe eats 3, so 9 are left.\n\nHe adds 5: 9 + 5 = 14.\n\nThe answer is: 14"
    right = profile(text, "14").details
    assert right["first_wrong_start"] is None  # right answer, right steps: no error anywhere
    d = profile(text, "16").details  # the reference says otherwise: 14 is wrong, first written in paragraph 2
    assert d["first_wrong_reason"] == "wrong_value_first_stated" and d["first_wrong_paragraph"] == 2
    assert text[d["first_wrong_start"]:d["first_wrong_end"]] == "14"


def test_mine_cuts_gsm8k_style_text_at_the_span():
    from mine import first_error_end
    text = ("On Saturday they take back \\(1/3 \\times 18 = 7\\) flamingos.\n\n"
            "So there are \\(18 - 7 = 11\\) pink ones.\n\nThe answer is: 11")
    upto = first_error_end(text, profile(text, "12").to_dict())
    assert upto is not None and text[:upto].endswith("= 7\\)")
    clean = "So there are 18 - 6 = 12 pink ones.\n\nThe answer is: 12"
    assert first_error_end(clean, profile(clean, "12").to_dict()) is None
