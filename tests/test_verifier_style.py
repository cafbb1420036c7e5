"""The verifier's five modules stay readable: one statement per line (no `a; b`, no `if x: y`) and at most
500 lines each (one statement per line made the modules ~150 lines longer: sympy moved from mathexpr.py into
symbolic.py, the step checks from verifier.py and answers.py into steps.py). Run: python -m pytest tests/test_verifier_style.py -q"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("mathexpr.py", "symbolic.py", "answers.py", "steps.py", "verifier.py")
MAX_LINES = dict.fromkeys(MODULES, 500)


def crowded_lines(source):
    """Line numbers where a statement shares its line with another (`a; b`) or with the header of the
    compound statement holding it (`if x: y`, `else: y`, `try: y`, `except E: y`, `class E(Exception): pass`)."""
    lines, out = source.splitlines(), set()
    for node in ast.walk(ast.parse(source)):
        for name in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(node, name, None)
            if not isinstance(block, list) or not block:
                continue
            out |= {b.lineno for a, b in zip(block, block[1:]) if a.end_lineno == b.lineno}  # a; b
            first = block[0]
            if name in ("body", "handlers") and isinstance(node, (ast.stmt, ast.excepthandler)):
                if first.lineno == node.lineno:
                    out.add(first.lineno)
            elif name in ("orelse", "finalbody"):
                if lines[first.lineno - 1].lstrip().startswith(("else:", "finally:")):
                    out.add(first.lineno)
    return sorted(out)


@pytest.mark.parametrize("name", MODULES)
def test_one_statement_per_line(name):
    source = (ROOT / name).read_text(encoding="utf-8")
    bad = crowded_lines(source)
    assert not bad, f"{name}: more than one statement on lines {bad[:20]} ({len(bad)} in all)"


@pytest.mark.parametrize("name", MODULES)
def test_about_500_lines(name):
    n = len((ROOT / name).read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES[name], f"{name}: {n} lines"


def test_the_checker_sees_crowded_lines():
    assert crowded_lines("a = 1; b = 2\nif a: b = 3\nfor i in x: pass\ntry: f()\nexcept E: pass\n") == [1, 2, 3, 4, 5]
    assert crowded_lines("if a:\n    b = 1\nelse:\n    b = 2\nx = [i for i in y]\n") == []
