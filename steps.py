"""
steps: a solution's steps as the verifier reads them. The math blocks and numbers of a text, and _Checker,
which re-computes every stated equality: GSM8K <<notes>> and plain-text chains 'a op b = c' exactly with
Fractions ('arithmetic'), LaTeX math with mathexpr's exact / numeric checks and symbolic.py's bounded sympy
('symbolic'). verifier.py turns what it finds into the dimensions and the first error's location.
Rules and examples: docs/verifier.md.
"""
import re
from collections import namedtuple
from fractions import Fraction
from functools import cached_property

from mathexpr import to_ascii, Inexact, Undecided, approx, exact, free_vars, parse, same
from symbolic import sympy_same, wrong_identity
from answers import _REPL, _SPACING, _LR, _brace, answer_value, decimals

MAX_EQUATIONS = 200       # checked equalities per solution


# ----------------------------------------------------------------------------- math and numbers in a text
_MATH_OPEN = re.compile(r"\$\$|\$|\\\[|\\\(|\\begin\{(align|equation|eqnarray|gather)\*?\}")
_DOLLAR_CLOSE = re.compile(r"\$(?<![\s\\]\$)(?!\d)")  # closes inline math: no space before, no digit after ('$' first)
_ASY_OPEN = re.compile(r"\[asy\]")
# a blank line or 4 words: not inline math ((?=...): the characters a match starts with, tested fast everywhere)
_PROSE = re.compile(r"(?=[\na-zA-Z])(?:\n[ \t]*\n|(?:(?<![\\a-zA-Z{])[a-zA-Z]{3,}[ \t,.]+){4})")
_CLOSE = {"$$": "$$", "$": "$", r"\[": r"\]", r"\(": r"\)", "[asy]": "[/asy]"}
_CLOSERS = frozenset(_CLOSE.values())
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_TEX_FRACTION = re.compile(r"\\[dt]?frac\{(\d{1,9})\}\{(\d{1,9})\}")
_SLASH_FRACTION = re.compile(r"(?=\d)\b(\d{1,9})/(\d{1,9})\b")  # (?=\d): a digit first, tested fast everywhere


def _blocks(text, opener):
    """(start, end, body) of delimited blocks in linear time: a closing delimiter found missing once is
    never searched for again (a lazy regex is quadratic on '\\[' * 10000)."""
    out, i, dead = [], 0, set()
    while m := opener.search(text, i):
        close = _CLOSE.get(m.group()) or r"\end{" + m.group(1)
        if close == "$":  # TeX's rule against money: "$5 and $7" is prose, "$5 + 7 = 12$" is math
            if m.end() == len(text) or text[m.end()].isspace():
                i = m.end()
                continue
            c = None if close in dead else _DOLLAR_CLOSE.search(text, m.end())
            j = c.start() if c else -1
            if j > 0 and _PROSE.search(text, m.end(), j):  # "$3.5 each. Then the total ... = $": money in prose
                i = m.end()
                continue
        else:
            j = -1 if close in dead else text.find(close, m.end())
        if j < 0:
            dead.add(close)
            i = m.end()
            continue
        i = j + len(close) if close in _CLOSERS else text.find("}", j) + 1
        out.append((m.start(), i, text[m.end():j]))
    return out


def _unbox(s):
    for _ in range(5):
        i = s.find(r"\boxed")
        j = s.find("{", i)
        if i < 0 or j < 0 or s[i + 6:j].strip() or (inner := _brace(s, j)) is None:
            break
        s = s[:i] + inner + s[j + len(inner) + 2:]
    return s


def _close(x, y):
    return abs(x - y) <= 1e-6 * max(1.0, abs(x), abs(y))


def _numbers(text):
    """The numbers written in a text and the values of its plain fractions: a bag (callers only ask whether
    a value is among them), each kind found only where it can be."""
    fr = (_TEX_FRACTION.findall(text) if "frac" in text else []) + \
        (_SLASH_FRACTION.findall(text) if "/" in text else [])
    nums = " ".join(_NUMBER.findall(text)).replace(",", "").split()  # each match starts with a digit: one token each
    return list(map(float, nums)) + [int(a) / int(b) for a, b in fr if int(b)]


def _first_stated(text, pv, pred, ans_pos, question):
    """(start, end) of the first place before the answer where the (wrong) final value is written: a number
    equal to it, unless the question holds that value (then it is a restatement), else the answer's own
    text; None if it is only in the answer itself."""
    head = text[:ans_pos] if ans_pos > 0 else ""
    if pv is not None and not any(_close(x, abs(pv)) for x in _numbers(question or "")):
        for m in _NUMBER.finditer(head):
            if _close(float(m.group().replace(",", "")), abs(pv)):
                return m.start(), m.end()
    k = head.find(pred) if len(pred) >= 2 else -1
    return (k, k + len(pred)) if k >= 0 else None


# ----------------------------------------------------------------------------- equalities
_NOTE = re.compile(r"<<([^<>=\n]{1,300})=([^<>\n]{1,80})>>")
_TIMES = re.compile(r"([\d)])([ \t]*[xX×][ \t]*)(?=[\d($])")  # a digit first: the regex engine skips fast to one
_RUN = re.compile(r"[\d$(.\-][\d \t.,$%+\-*/()^=]*")
_SUBRUN = re.compile(r",[ \t]+|;|\.[ \t]+|\.$")
_EQ_LINE = re.compile(r"^[^\n=]*=.*", re.M)  # a line holding an '=' (linear: no '=' before the first one)
_OPWORD = re.compile(r"\b(?:of|times|by|plus|minus|over|per|and|than|half|twice|double|triple|x)[ \t]*$|[\w^/_.]$"
                     r"|[-+*/^×][ \t]*\$?$")  # text before an equation that makes its left side partial (lower case)
_LATEX_MODE = re.compile(r"\\[a-zA-Z]{2,}|\\\(|\\\[|\$[a-zA-Z\\]")
# a unit word between a number and an operator or '=' ("2 bags + 4 bags = 6 bags", "$3/pound x 4 pounds")
_UNIT_GAP = re.compile(r"(\d)([ \t]*/[ \t]*[a-zA-Z]{2,}|[ \t]+(?!x[ \t])[a-zA-Z]{2,}(?:[ \t]+[a-zA-Z]{2,}){0,2})"
                       r"(?=[ \t]*(?:[-+*/×=]|x[ \t]))")
# a unit after a number in LaTeX math, before an operator / '=' / the end: "14 \text{ hours} + 20 \text{ hours}"
# (not inside a fraction: "\frac{8 \text{ in}}{1 \text{ ft}} = 1" is a conversion, left unchecked)
_TEXT_UNIT = re.compile(r"(?<=[\d}])\s*\\(?:text|mbox|mathrm)\s*\{[^{}]*\}(?:\^\{?\d\}?)?"
                        r"(?=\s*(?:[-+=)]|\\times|\\cdot|\\div|$))")
_CHUNK = re.compile(r"\\\\|;|,(?!\d{3}(?!\d))|\\(?:q?quad|implies|Rightarrow|Longrightarrow|iff|therefore|because|"
                    r"rightarrow|Leftrightarrow|hspace\{[^}]*\})(?![a-zA-Z])")
_REL = re.compile(r"(=|\\approx|\\neq?|\\leq?|\\geq?|\\lt|\\gt|<|>|\\equiv|\\sim|\\simeq|\\cong|\\to|\\mapsto|"
                  r"\\in|\\notin|\\subseteq?|\\propto|\\mid)(?![a-zA-Z])")
_ALIGN = [(re.compile(r"\\\\\s*&?\s*="), "="),                           # "\\ &= ..." continues the chain
          (re.compile(r"\\\\\s*&?\s*(?:\\q?quad\s*)?(?=[-+])"), " "),  # "\\ &+ ..." continues the expression
          (re.compile(r"([\^_])(\d)(?=\d)"), lambda m: f"{m[1]}{{{m[2]}}}")]   # 3^25^2 is 3^2 5^2 (then '&' -> ' ')
_MOD = re.compile(r"\\[pb]?mod|\\equiv|modulo|remainder|\bmod\b|\bbase\b")  # searched in lower case
_FALSE = re.compile(r"[\s,.;]*(?:which |that |this )?(?:is |are )?(?:not true|false|impossible|a contradiction|"
                    r"extraneous|not possible|invalid|not valid)")  # matched in lower case
_FUNC_NOTATION = re.compile(r"[fghpqPQ]\s*\(")
_KEY_NOISE = re.compile(r"[\s$,]")
_COMMA_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_Eq = namedtuple("_Eq", "pos end kind ok val src vars")  # ok None: unchecked (a definition x = 5 keeps val)


def _unit_key(u):  # "\text{ hours (yoga)}" -> "hour"
    w = re.findall(r"[a-zA-Z]+", u.split("{", 1)[1])
    return w[0].lower().rstrip("s") if w else ""


def _drop_units(body):
    """Drop unit texts after numbers when the math block uses one unit throughout; different units
    ("1 \text{ ft} = 12 \text{ in}") are a conversion, not an equality of numbers: kept (unchecked)."""
    units = _TEXT_UNIT.findall(body) if r"\text" in body or r"\mbox" in body or r"\mathrm" in body else ()
    if not units or len({_unit_key(u) for u in units}) > 1:
        return body
    return _TEXT_UNIT.sub(" ", body)


def _tex_digits(body):  # LaTeX 3^25^2 is 3^2 5^2 (the cheap test first: most blocks have no ^ or _)
    return _ALIGN[2][0].sub(_ALIGN[2][1], body) if "^" in body or "_" in body else body


def _balance(p):
    """Drop unmatched brackets at the ends: "(so 3 + 4 = 7)", "= 15.00 (rounded)" -> "15.00"; linear, the
    text may be hostile."""
    p = p.strip()
    if p.endswith("(") and p.count("(") > p.count(")"):  # a remark opens after the result
        p = p.rstrip("( \t")
    d = p.count("(") - p.count(")")
    if d > 0:
        p = p[min(d, len(p) - len(p.lstrip("("))):]
    elif d < 0:
        p = p[:len(p) - min(-d, len(p) - len(p.rstrip(")")))]
    return p.strip()


def _first_literal(n):
    while n[0] not in ("n", "v", "c") and isinstance(n[1], tuple):
        n = n[1]
    return n[1] if n[0] == "n" else None


class _Checker:
    """Re-checks every stated equality: GSM8K <<notes>> and plain-text chains are 'arithmetic' (exact
    Fractions, no sympy); LaTeX math is 'symbolic' (Fraction / floats first, sympy only if undecided)."""

    def __init__(self, text, question, budget):  # budget: the verdict's mathexpr.Budget
        self.eqs, self.seen, self.budget, self.text = [], {}, budget, text
        self.star = "*" in (question or "")  # "a * b = 2a + b" defines an operation: '*' is not times

    @cached_property
    def mod(self):  # modular / base-b work: integer "mismatches" are intended (asked only for a wrong equation)
        low = self.text.lower()  # the substring tests first: the regex scans slowly (no literal prefix)
        return any(w in low for w in ("mod", "equiv", "remainder", "base")) and bool(_MOD.search(low))

    def chain(self, pos, end, parts, kind, skip_first=False):
        if len(self.eqs) >= MAX_EQUATIONS or self.budget.expired():
            return  # out of budget: undecided
        nodes = [None if not p or r"\text" in p or r"\mbox" in p or (k == 0 and skip_first) else parse(p)
                 for k, p in enumerate(parts)]  # (a skipped first side is never compared: not parsed)
        names = [None if n is None else frozenset(free_vars(n)) for n in nodes]  # once per side
        for i in range(skip_first, len(parts) - 1):
            a, b, sa, sb = nodes[i], nodes[i + 1], parts[i], parts[i + 1]
            if a is None or b is None:
                continue
            key = (kind == "s", _KEY_NOISE.sub("", sa + "=" + sb))
            if key in self.seen:  # notes are restated in the text: check once; definitions may recur
                if self.seen[key].ok is None:
                    self.eqs.append(self.seen[key]._replace(pos=pos, end=end))
                continue
            if kind == "s":
                ok, val = self.symbolic(a, b, sa, sb, names[i], names[i + 1])
            elif i == 0 and kind == "p" and (a[0] not in "+-*/^" or sa[0] in "+*/^"):
                continue  # "half of 10 = 5": a bare left side is not the whole expression
            else:
                ok, val = self.arith(a, b, sa + "=" + sb), None
                try:
                    val = float(exact(b, 100, self.budget))
                except Exception:
                    pass
            if ok is False and i + 2 < len(parts):
                try:  # running-total notation "3 * 4 = 12 * 2 = 24" is sloppy, not wrong
                    ok = True if _first_literal(b) == exact(a, 100, self.budget) else ok
                except Exception:
                    pass
            self.seen[key] = eq = _Eq(pos, end, "s" if kind == "s" else "a", ok, val, (sa + " = " + sb)[:120],
                                      names[i])
            if ok is not None or val is not None:
                self.eqs.append(eq)

    def arith(self, lhs, rhs, src):
        try:
            L, R = exact(lhs, 100, self.budget), exact(rhs, 100, self.budget)
            d = rhs[2] if rhs[0] == "n" else None
            return (L == R or (bool(d) and abs(L - R) < Fraction(1, 2 * 10 ** d))   # 10/3 = 3.33 (rounded)
                    or (bool(d) and 0 < abs(L) - abs(R) < Fraction(1, 10 ** d))       # 370/110 = 3.363... (cut)
                    or (d == 0 and L.denominator != 1 and abs(L - R) < (1 if "/" in src else 0.5))  # rounded count
                    or ("%" in src and exact(lhs, 1, self.budget) == exact(rhs, 1, self.budget)))           # "100 - 20% = 80"
        except (Undecided, Inexact, ZeroDivisionError, OverflowError, ValueError):
            return None

    def symbolic(self, a, b, sa, sb, va, vb):
        val = None if vb else answer_value(sb)[0]  # degrees stay degrees: compared with answers
        if va != vb or (va and (sa in va or sb in va)) or (self.star and "*" in sa + sb):
            return None, val  # x = 5, y = 2x + 1, f(2) = 7, a custom a * b: unchecked
        d = [decimals(x) for x in (sa, sb)]
        r = same(a, b, Fraction(49, 100 * 10 ** min(x for x in d if x)) if any(d) else 0)  # \sqrt2 = 1.414
        if r is None:
            r = sympy_same(a, b, self.budget)
        if r is False and r"\circ" in sa + sb:  # \arcsin(\sin 6^\circ) = 6^\circ, or a unit conversion
            r = True if same(parse(sa, True) or a, parse(sb, True) or b) else \
                (None if (r"\circ" in sa) != (r"\circ" in sb) else False)
        if r is False and not va:
            if decimals(sa + ".0") is not None and decimals(sb + ".0") is not None:
                return None, val  # "0 = -12", "90 = 9": literal = literal is a contradiction or a mapping
            try:
                x, y, rint = approx(a, {}), approx(b, {}), sb.lstrip("-").isdigit()
                if (("." in sa + sb and abs(x - y) <= max(5e-3 * abs(y), 0.5 * rint))  # 1000(1.02)^8 = 1172
                        or (rint and a[0] == "/" and abs(x - y) < 1)                # 100 \div 12 = 8 (R 4)
                        or _close(x, 100 * y) or _close(100 * x, y)                 # 0.65 = 65 (%)
                        or (self.mod and x == round(x.real) and y == round(y.real))):  # 2^{10} = 4 (mod 5)
                    r = None
            except Exception:
                r = None
        if r is False and va and (_FUNC_NOTATION.search(sa + sb) or wrong_identity(a, b, self.budget) is not True):
            r = None
        return r, val

    def notes(self, text):
        """GSM8K calculator notes <<a*b=c>>; returns the text with them blanked out."""
        for m in _NOTE.finditer(text):
            self.chain(m.start(), m.end(), [m.group(1).replace(",", ""), m.group(2).replace(",", "")], "n")
        return _NOTE.sub(lambda m: " " * len(m.group()), text)

    def plain(self, text):
        """Plain-text chains 'a op b = c [= d]': x, ×, ÷, $, %, thousands commas, units after c."""
        if "=" not in text:  # (most texts once their LaTeX math is blanked; the rewrites below add no '=')
            return
        text = _TIMES.sub(lambda m: m[1] + "*".center(len(m[2])), to_ascii(text))
        text = _UNIT_GAP.sub(lambda m: m[1] + " " * len(m[2]), text)  # "$194/meter × 490 meters = $94,860"
        for line in _EQ_LINE.finditer(text):  # runs never cross a line break: only lines with an '=' hold one
            for m in _RUN.finditer(text, line.start(), line.end()):
                run, before, off = m.group(), text[max(0, m.start() - 12):m.start()], 0
                if "=" not in run:
                    continue
                skip = bool(_OPWORD.search(before.lower()) or (run[0] == "-" and re.search(r"[\w)][ \t]*$", before)))
                # a run that stops at a variable ("5/5 = (5x)/5", not "5 = 5kg") has a partial last side: not compared
                cut = re.match(r"[a-zA-Z](?![a-zA-Z])", text[m.end():m.end() + 2]) is not None and run[-1].isdigit()
                subs = _SUBRUN.split(run)
                for k, sub in enumerate(subs):  # skip: "3 times 4 + 2 = 14", "x - 3 + 2 = 5"
                    if "=" in sub:
                        parts = [_balance(_COMMA_THOUSANDS.sub("", p.replace("$", "")).strip().rstrip("."))
                                 for p in sub.split("=")]
                        if cut and k == len(subs) - 1:
                            parts.pop()
                        self.chain(m.start() + off, m.start() + off + len(sub.rstrip(" \t.,$")), parts, "p", skip)
                    skip, off = False, off + len(sub) + 1

    def latex(self, text):
        """Equalities in $..$, $$..$$, \\[..\\], \\(..\\), align; returns the text with the math blanked."""
        out, last = [], 0
        for start, end, body in _blocks(text, _MATH_OPEN):
            out += [text[last:start], "_" * (end - start)]  # '_' ends plain-text runs: no "3 + $x$ + 4 = 7" holes
            last = end
            if len(body) > 5000 or "=" not in body or _FALSE.match(text[end:end + 60].lower()):
                continue  # "..., which is false"
            if "\\" in body:  # LaTeX commands: spacing, \left, \boxed, units, \dfrac, aligned rows
                body = _SPACING.sub(lambda m: "," if m.group()[0] == "," else " ", _LR.sub("", _unbox(body)))
                body = _drop_units(body)  # "14 \text{ hours} + 20 \text{ hours} = 34 \text{ hours}"
                for a, b in _REPL[:4]:  # \dfrac, \tfrac, ~, {,}
                    body = body.replace(a, b)
                for rx, b in _ALIGN[:2] if "\\\\" in body else ():  # aligned rows
                    body = rx.sub(b, body)
                body = _tex_digits(body).replace("&", " ")
            else:
                body = _tex_digits(body.replace("~", " ").replace("&", " "))
            for k, chunk in enumerate(_CHUNK.split(body)):
                bits = _REL.split(chunk) if "=" in chunk and len(chunk) <= 600 else [chunk]
                parts, rels, i = bits[0::2], bits[1::2], 0
                while i < len(rels):  # maximal runs of '=' form a chain
                    j = i
                    while j < len(rels) and rels[j] == "=":
                        j += 1
                    if j > i:  # "$(3)$ x $(5) = 64$": the text before the block makes the first left side partial
                        skip = i == 0 and k == 0 and bool(_OPWORD.search(text[max(0, start - 12):start].lower()))
                        self.chain(start, end, [p.strip().rstrip(".,").strip() for p in parts[i:j + 1]], "s", skip)
                    i = j + 1
        return "".join(out) + text[last:]
