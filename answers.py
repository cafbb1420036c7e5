"""
answers: a solution's final answer and its equivalence to the reference, the way a careful human grader
reads them. extract() finds the answer (marker sentences, \\boxed, GSM8K '####', closing sentences),
canon() strips cosmetics (LaTeX wrappers, units, text, thousands separators, 'x ='), answers_match()
compares structures (scalars, tuples, intervals, sets, matrices, several answers) with mathexpr's
exact / numeric / sympy checks. Rules and examples: docs/verifier.md.

    from answers import answers_match, extract_answer
    answers_match(r"\frac{1}{2}", "0.5")                 # True
    extract_answer("... The final answer is 9. I hope it is correct.")   # '9'
"""
import math, re
from fractions import Fraction

ANSWER_SECONDS = 1.0  # default deadline of one answers_match() call

from mathexpr import (MAX_ANSWER, Budget, Inexact, Undecided, approx, free_vars, parse, same,
                      sympy_same)

_ANS_IS = re.compile(r"\bthe (?:final )?answer is\s*:?[ \t]*([^\n]*)", re.I)
_HASH = re.compile(r"####[ \t]*([^\n]*)")
_REPL = [(r"\dfrac", r"\frac"), (r"\tfrac", r"\frac"), ("~", " "), ("{,}", ""), (r"\$", ""), ("$", ""),
         ("^{\\circ}", ""), (r"^\circ", ""), (r"\circ", ""), ("°", ""), (r"\degree", ""), (r"\%", "%"),
         ("\\displaystyle", "")]
_SPACING = re.compile(r",\\!\s*(?=\d)|(?<!\\)\\[,;:! ]")  # LaTeX spacing; "10,\!000" keeps its comma
_LR = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)[lr]?(?![a-zA-Z])")
_TEXTCMD = re.compile(r"\\(?:text|textbf|textit|textrm|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")
_UNIT_WORD = re.compile(r"[a-zA-Z]{2,}\.?(?:\^\{?[23]\}?)?|\^\{?[23]\}?")
_VAR_EQ = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*(?:=|\\in\b)\s*")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?")
_WORDY = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}")


def _brace(s, j):
    """Content of the {...} group opening at s[j] (nested braces), or None."""
    depth = 0
    for k in range(j, min(len(s), j + 5000)):
        depth += (s[k] == "{") - (s[k] == "}")
        if depth == 0: return s[j + 1:k]
    return None


def _last_boxed(s):
    i = max(s.rfind(r"\boxed"), s.rfind(r"\fbox"))
    if i < 0: return None, -1
    j = i + (6 if s.startswith(r"\boxed", i) else 5)
    while j < len(s) and s[j] == " ": j += 1
    if j < len(s) and s[j] == "{": return _brace(s, j), i
    m = re.match(r"[^\s$]+", s[j:j + 100])  # \boxed 5
    return (m.group(0), i) if m else (None, -1)


def _clean_pred(s):
    if s and (r"\boxed" in s or r"\fbox" in s): s = _last_boxed(s)[0] or s
    s = (s or "").strip().rstrip(".").strip()
    if len(s) > 1 and s[0] == s[-1] == "$": s = s.strip("$").strip().rstrip(".").strip()
    return s[:1000] or None


def extract(solution):
    """(answer, start, end of its marker). Priority: 'The answer is:' (last) > '####' (last) > last \\boxed."""
    for rx in (_ANS_IS, _HASH):
        last = None
        for last in rx.finditer(solution): pass
        if last is not None and (a := _clean_pred(last.group(1))): return a, last.start(), last.end()
    b, pos = _last_boxed(solution)
    return _clean_pred(b), pos, pos + len(b or "") + 8


def extract_answer(solution):
    """Final answer of a solution ('The answer is: X' / '#### X' / last \\boxed{X}), or None."""
    return extract(solution or "")[0]


def canon(s):
    """Cosmetics of one answer: \\boxed, $, \\left, spacing, degrees, \\text and unit words ('18 dollars',
    '5\\text{ cm}^2'), a leading 'x =' and a trailing period."""
    s = s.strip()[:MAX_ANSWER]
    if r"\boxed" in s or r"\fbox" in s: s = _last_boxed(s)[0] or s
    s = _SPACING.sub(lambda m: "," if m.group()[0] == "," else " ", s)
    for a, b in _REPL: s = s.replace(a, b)
    s = _VAR_EQ.sub("", _TEXTCMD.sub(r" \1 ", _LR.sub("", s)).strip().rstrip(".").strip())
    parts = s.split()
    while len(parts) > 1 and _UNIT_WORD.fullmatch(parts[-1]) and parts[-1].lower() not in ("or", "and"): parts.pop()
    return " ".join(parts) if len(parts) < len(s.split()) and parts[-1][-1] in "0123456789}).%" else s


def _split_top(s):
    """Top-level comma split; also whether the first bracket closes exactly at the end."""
    out, depth, cur, closes_at = [], 0, [], None
    for k, ch in enumerate(s):
        depth += (ch in "([{") - (ch in ")]}")
        if depth == 0 and closes_at is None and ch in ")]}": closes_at = k
        if ch == "," and depth == 0: out.append("".join(cur).strip()); cur = []
        else: cur.append(ch)
    return out + ["".join(cur).strip()], closes_at == len(s) - 1


def _structure(s):
    """('scalar', s) | ('seq', open, close, items): ordered | ('set' | 'list', items): unordered."""
    s = canon(s)
    if m := re.fullmatch(r"\\begin\{[pbv]?matrix\}(.*)\\end\{[pbv]?matrix\}", s, re.S):
        rows = [("seq", "(", ")", [_structure(c) for c in r.split("&")]) for r in m.group(1).split(r"\\")]
        return rows[0] if len(rows) == 1 else ("seq", "(", ")", rows)
    if r"\cup" in s: return ("set", [_structure(p) for p in s.split(r"\cup")])
    if s.startswith(r"\{") and s.endswith(r"\}"):
        items = [_structure(x) for x in _split_top(s[2:-2].replace(r"\{", "{").replace(r"\}", "}"))[0] if x]
        return items[0] if len(items) == 1 else ("set", items)
    if len(s) > 2 and s[0] in "([" and s[-1] in ")]":
        items, whole = _split_top(s)
        if whole and len(items := _split_top(s[1:-1])[0]) >= 2:
            return ("seq", s[0], s[-1], [_structure(x) for x in items])
    if _THOUSANDS.fullmatch(s): s = s.replace(",", "")
    items = _split_top(s)[0]
    if len(items) < 2: items = [x for x in re.split(r"\s+(?:or|and)\s+", s) if x]
    if len(items) >= 2: return ("list", [_structure(x) for x in items])
    if s.count(r"\pm") == 1: return ("list", [("scalar", s.replace(r"\pm", c)) for c in "+-"])
    return ("scalar", s)


def compact(s):
    return re.sub(r"\s+", "", s).lower()


def decimals(s):  # digits after the point if s is a plain decimal literal, else None
    m = re.fullmatch(r"-?\d*\.(\d+)", s)
    return len(m.group(1)) if m else None


def _scalar_eq(a, b, budget):
    if a == b or compact(a) == compact(b): return True
    pa, pb = a.endswith("%"), b.endswith("%")
    a, b = a.rstrip("%").strip(), b.rstrip("%").strip()
    na, nb = parse(a), parse(b)
    if na is None or nb is None or _WORDY.search(a) or _WORDY.search(b):  # text answers
        ka, kb = (re.sub(r"[^a-z0-9]", "", _TEXTCMD.sub(r"\1", x).lower()) for x in (a, b))
        return bool(ka) and ka == kb
    # a reference decimal with >= 2 places ("to the nearest hundredth") accepts the exact value it
    # rounds to: reference 0.33 ~ candidate 1/3 (not the other way round: 1.41 is not \sqrt2)
    da = decimals(a)
    tol = Fraction(1, 2 * 10 ** da) if da and da >= 2 and decimals(b) is None else 0
    options = [(na, nb)]  # percent: '50%' matches '50', and 0.5 (the percent side over 100)
    if pa != pb: options.append((("%", na), nb) if pa else (na, ("%", nb)))
    for x, y in options:
        r = same(x, y, tol, budget)
        if r or (r is None and sympy_same(x, y, budget)): return True
    return False


def _struct_eq(A, B, budget):
    if A[0] == "scalar" or B[0] == "scalar": return A[0] == B[0] and _scalar_eq(A[1], B[1], budget)
    ia, ib, kinds = A[-1], B[-1], {A[0], B[0]}
    if len(ia) != len(ib) or len(ia) > 30 or kinds == {"set", "seq"}: return False
    if kinds == {"seq"} and A[1:3] != B[1:3]: return False  # [1,2) != (1,2)
    if "seq" in kinds: return all(_struct_eq(x, y, budget) for x, y in zip(ia, ib))  # a tuple, in order
    free = list(ib)  # unordered: greedy multiset matching
    for x in ia:
        k = next((k for k, y in enumerate(free) if _struct_eq(x, y, budget)), None)
        if k is None: return False
        free.pop(k)
    return True


def answers_match(reference, candidate, budget=None):
    """Mathematical equivalence of a candidate final answer to the reference (rules: docs/verifier.md).
    budget: a mathexpr.Budget shared with the caller's other checks (default: a fresh 1 s one)."""
    if reference is None or candidate is None: return False
    reference, candidate = str(reference).strip(), str(candidate).strip()
    if reference == candidate: return bool(reference)
    if max(len(reference), len(candidate)) > MAX_ANSWER: return compact(reference) == compact(candidate)
    try:
        return _struct_eq(_structure(reference), _structure(candidate), budget or Budget(ANSWER_SECONDS))
    except (RecursionError, ValueError, Undecided):
        return compact(reference) == compact(candidate)


def answer_value(s):
    """(real value, had_percent) of a scalar numeric answer, else (None, False)."""
    s = canon(s or "")
    if _THOUSANDS.fullmatch(s): s = s.replace(",", "")
    n = parse(s.rstrip("%").strip())
    try:
        v = None if n is None or free_vars(n) else approx(n, {})
    except (Undecided, Inexact, ZeroDivisionError, OverflowError, ValueError, TypeError):
        v = None
    ok = v is not None and abs(v.imag) < 1e-12 and math.isfinite(v.real)
    return (v.real, s.endswith("%")) if ok else (None, False)


