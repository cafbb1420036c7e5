"""answers.py: extraction and equivalence, one test per class of real model output, both directions
(equal pairs must match, different pairs must not). Fixtures written here, not copied from any dataset.
Run: python -m pytest tests/test_verifier_answers.py -q"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from answers import answers_match, canon, extract, extract_answer, form_ok  # noqa: E402

# (class, reference, equal rendering, a different answer in the same rendering)
CLASSES = [
    ("decimal comma", "3.5", "3{,}5", "3{,}6"),
    ("thousands {,}", "10000", "10{,}000", "10{,}001"),
    ("thousands \\,", "10000", r"10\,000", r"10\,100"),
    ("thousands \\!", "10000", r"10,\!000", r"11,\!000"),
    ("thousands comma", "1234567", "1,234,567", "1,234,568"),
    ("thousands space", "400000", "400 000", "400 001"),
    ("unit word", "5", "5 cm", "6 cm"),
    ("unit \\text", "5", r"5 \text{cm}^2", r"4 \text{cm}^2"),
    ("unit \\mathrm", "5", r"5\mathrm{cm}", r"5.5\mathrm{cm}"),
    ("currency \\$", "18", r"\$18.00", r"\$18.50"),
    ("currency word", "12", "12 dollars", "13 dollars"),
    ("multiplier is not a unit", "12", "12", "12 dozen"),
    ("\\dfrac", r"\frac{1}{2}", r"\dfrac{1}{2}", r"\dfrac{1}{3}"),
    ("\\cfrac", r"\frac{1}{2}", r"\cfrac{1}{2}", r"\cfrac{2}{1}"),
    ("\\tfrac no braces", r"\frac{8\pi}{5}", r"\tfrac{8\pi}5", r"\tfrac{8\pi}6"),
    ("inequality as interval", r"(3, \infty)", "x > 3", "x < 3"),
    ("non-strict inequality", r"(-\infty, 5]", r"x \le 5", "x < 5"),
    ("double inequality", "(3,5)", "3 < x < 5", r"3 \le x \le 5"),
    ("flipped relation", "x > 3", "3 < x", "3 > x"),
    ("relation spelling", r"x \le 5", "x <= 5", "x >= 5"),
    ("relation \\geq", r"x \geq 2", r"2 \le x", r"2 \ge x"),
    ("union of inequalities", r"(-\infty, 2) \cup (3, \infty)", "x < 2 or x > 3", "x < 2 or x > 4"),
    ("membership", "[2, 5)", r"x \in [2, 5)", r"x \in [2, 5]"),
    ("variable prefix", "11", "x = 11", "x = 12"),
    ("tuple prefix", "(3,2)", "(p,q) = (3,2)", "(p,q) = (2,3)"),
    ("function prefix", "x^2", "f(x) = x^2", "f(x) = x^3"),
    ("last side of a chain", "5", "x = 2 + 3 = 5", "x = 2 + 3 = 6"),
    ("pmatrix vs bmatrix", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"\begin{bmatrix}1&2\\3&4\end{bmatrix}",
     r"\begin{bmatrix}1&3\\2&4\end{bmatrix}"),
    ("array matrix", r"\begin{pmatrix} 1 \\ -2 \end{pmatrix}", r"\left(\begin{array}{c}1\\-2\end{array}\right)",
     r"\left(\begin{array}{c}-2\\1\end{array}\right)"),
    ("\\pm", r"1 \pm \sqrt{2}", r"1 + \sqrt{2}, 1 - \sqrt{2}", r"1 + \sqrt{2}, 2 - \sqrt{2}"),
    ("set vs list", r"\{2, 3\}", "3, 2", "3, 4"),
    ("choice letter", r"\text{(C)}", "C", "D"),
    ("bold choice", "(C)", r"\textbf{(C)}", r"\textbf{(B)}"),
    ("empty set", r"\emptyset", r"\varnothing", r"\{0\}"),
    ("infinity word", r"\infty", "infinity", "-infinity"),
    ("percent word", r"50\%", "50 percent", "5 percent"),
    ("number word", "5", "five", "six"),
    ("unicode minus", "-3", "−3", "3"),
    ("leading point", "0.5", ".5", ".05"),
    ("equal forms", r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}", r"\frac{1}{3}\sqrt{2}"),
    ("one answer boxed twice", r"\frac{639}{40}", r"15\frac{39}{40}, \frac{639}{40}", r"15\frac{39}{40}, \frac{641}{40}"),
]


@pytest.mark.parametrize("cls, ref, same, other", CLASSES, ids=[c[0] for c in CLASSES])
def test_class_both_directions(cls, ref, same, other):
    assert answers_match(ref, same) and answers_match(same, ref), f"{cls}: equal forms must match"
    assert not answers_match(ref, other) and not answers_match(other, ref), f"{cls}: different answers must not"


EXTRACT = [
    ("hope sentence", "Final Answer: The final answer is 9. I hope it is correct.", "9"),
    ("hope sentence, inline math", r"Final Answer: The final answer is \(\frac{7}{25}\). I hope it is correct.",
     r"\frac{7}{25}"),
    ("display math on the next line", "Final Answer: The final answer is\n\\[\n\\begin{pmatrix}0&1\\\\1&0\\end{pmatrix}.\n\\]\n"
     "I hope it is correct.", r"\begin{pmatrix}0&1\\1&0\end{pmatrix}"),
    ("bold", "Adding them, the answer is **6**.", "6"),
    ("bold marker", "**Final Answer:** 42", "42"),
    ("decimal is not a sentence end", "The answer is 3.5 cm.", "3.5 cm"),
    ("marker then box", r"The final answer is: $\boxed{59}$", "59"),
    ("adjacent boxes are a set", r"So $x = \boxed{2}$ or $x = \boxed{-3}$.", "2, -3"),
    ("distant boxes: the last", r"First $\boxed{1}$. Then we redo everything carefully and get $\boxed{4}$.", "4"),
    ("closing sentence, plain number", "Each box has 4.\n\nTherefore, the length of the red rope is 20 centimeters.", "20"),
    ("closing sentence, inline math", r"So, \(AB = 10\) units.", "10"),
    ("closing sentence, money", r"Thus, Charlie will make a total of \(\$440\) for the day.", r"\$440"),
    ("closing sentence, bold beats numbers", "The 291st digit of 1/37 is **7**.", "7"),
    ("closing sentence skips bare letters", r"It is about \(1/3\). This is based on \(C\), given \(A\) and \(B\).", "1/3"),
    ("closing sentence, escaped dollar", r"So the total is $\$1{,}200$.", r"\$1{,}200"),
    ("GSM8K marker", "3 + 4 = 7\n#### 7", "7"),
    ("toy marker", "The shop sells 23 * 17 = 391 pens.\nThe answer is: 391", "391"),
    ("unfinished text has no answer", "The shop sells 23 * 17 = 391 pens and then", None),
    ("no sentence end, no answer", "no final answer here, 2 + 2 = 4", None),
]


@pytest.mark.parametrize("cls, text, want", EXTRACT, ids=[c[0] for c in EXTRACT])
def test_extract_class(cls, text, want):
    assert extract_answer(text) == want


def test_extract_positions_point_at_the_answer():
    text = "We add: 3 + 4 = 7.\n\nThe answer is: 7"
    ans, start, end = extract(text)
    assert ans == "7" and text[start:end].startswith("The answer is") and end == len(text)
    assert extract("") == (None, -1, -1)


def test_extracted_answers_match_their_reference():
    """Extraction + normalisation end to end: a grader reads these all as the reference."""
    for text, ref in [("Final Answer: The final answer is $12,441,600$. I hope it is correct.", "12441600"),
                      ("Therefore, there are **12,441,600** ways.", "12441600"),
                      (r"Therefore, $\cos \angle RPS = -\frac{24}{25}$.", r"-\frac{24}{25}"),
                      ("So, Elvis is 54 miles east of his house.", "54")]:
        assert answers_match(ref, extract_answer(text)), text
        assert not answers_match(str(int(ref) + 1) if ref.isdigit() else "0", extract_answer(text))


def test_canon_keeps_what_matters():
    assert canon("x = 11") == "11" and canon("12 dozen") == "12 dozen" and canon("x > 3") == r"(3,\infty)"
    assert canon("x = 2 or x = 3") != "3"  # a list of answers is not a chain


# (class, question, reference, candidate in the asked form, same value in a form the question rules out)
FORMS = [
    ("common fraction, not a decimal", "A jar holds 7 cups shared by 2 people. How much does each get? "
     "Express your answer as a common fraction.", r"\frac{7}{2}", r"\frac{7}{2}", "3.5"),
    ("common fraction in terms of pi", "What is the area between the circles? Express your answer as a common "
     r"fraction in terms of $\pi$.", r"\frac{5}{4}\pi", r"\frac{5\pi}{4}", r"1.25\pi"),
    ("simplest radical form", r"Find the diagonal. Express your answer in simplest radical form.", r"3\sqrt{2}",
     r"\sqrt{18}", "4.2426"),
    ("simplify means simplified", r"Simplify \[\frac{\cos x}{\sin x} + 0.\]", r"\cot x", r"\frac{\cos x}{\sin x}",
     r"\frac{1}{\sin x \cos x} - \frac{\sin x}{\cos x}"),
]


@pytest.mark.parametrize("cls, question, ref, asked, ruled_out", FORMS, ids=[c[0] for c in FORMS])
def test_form_the_question_asks_for(cls, question, ref, asked, ruled_out):
    assert form_ok(question, ref, asked), f"{cls}: the asked form is accepted"
    assert not form_ok(question, ref, ruled_out), f"{cls}: an equal value in a form the question rules out"
    assert form_ok("What is the value?", ref, ruled_out), f"{cls}: no form asked, any equal form will do"
