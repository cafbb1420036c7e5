"""
MathVerifier: rules + sympy, no model. Scores a solution against a reference answer along six error
dimensions (answer_mismatch, numeric_distance, arithmetic, symbolic, logical, format), each in [0, 1],
plus two aggregates (wrongness, absurdity). mine.py and evaluate.py import profile() / is_near_miss().

    python verifier.py samples.jsonl -o scored.jsonl                # solution in "completion", ref in "answer"
    python verifier.py data.jsonl --field solution -o scored.jsonl --workers 2

Model output is untrusted: nothing here eval()s or sympify()s text. A small recursive-descent parser
builds tuple ASTs; numbers are checked exactly with Fraction (fast path), closed forms with complex
floats, and sympy only ever sees ASTs built here, under size bounds and a SIGALRM deadline.
See docs/verifier.md for the rules, formulas and measured rates.
"""
import argparse, cmath, json, math, operator, os, random, re, signal, sys, threading, time
from collections import namedtuple
from dataclasses import dataclass, field, asdict
from fractions import Fraction
from functools import lru_cache

DIMENSIONS = ("answer_mismatch", "numeric_distance", "arithmetic", "symbolic", "logical", "format")
# wrongness = W_ANSWER*answer_mismatch + W_DISTANCE*numeric_distance
#           + W_STEPS*max(arithmetic, symbolic, logical) + W_FORMAT*format           (weights sum to 1)
W_ANSWER, W_DISTANCE, W_STEPS, W_FORMAT = 0.6, 0.2, 0.1, 0.1
# absurdity = A_FORMAT*format + A_MAGNITUDE*[wildly wrong magnitude] + A_ERRORS*mean(arith, symbolic, logical)
A_FORMAT, A_MAGNITUDE, A_ERRORS = 0.6, 0.2, 0.2
DIST_SCALE = 0.5                 # numeric_distance = 1 - exp(-rel / DIST_SCALE), rel = |p - r| / max(|r|, 1)
STEP_DECAY = 0.6                 # arithmetic, symbolic = max(n_wrong / n_checked, 1 - STEP_DECAY**n_wrong)
LOGIC_LAST, LOGIC_UNSUPPORTED = 0.6, 0.4  # final != last computed result; final number derived from nothing
MAGNITUDE_FACTOR = 1000          # |pred| > 1000 |ref| or < |ref| / 1000
REP_FREE, REP_FULL = 0.35, 0.75  # repeated-line / repeated-4-gram fraction, mapped linearly onto [0, 1]
NEAR_MISS_REL = 0.2              # near miss: relative error <= 20%, i.e. numeric_distance <= NEAR_MISS_DIST
NEAR_MISS_DIST = 1 - math.exp(-NEAR_MISS_REL / DIST_SCALE)
NEAR_MISS_MAX_ABSURDITY = 0.3
# safety bounds: any input gets a verdict well within 1 s
MAX_TEXT, MAX_ANSWER, MAX_TOKENS, MAX_DEPTH, MAX_DIGITS = 20_000, 400, 300, 30, 400
MAX_EXP, MAX_BITS, MAX_FACT = 1000, 20_000, 300  # exact powers / factorials beyond these: undecided
MAX_EQUATIONS, MAX_SYMPY_CALLS, SYMPY_SECONDS, MAX_POLY_DEGREE = 200, 3, 0.2, 12


class _Bad(Exception): pass      # unparseable or too big: the caller skips it ("undecided")
class _Inexact(Exception): pass  # not rational: try complex floats, then sympy
class _Timeout(Exception): pass


# ----------------------------------------------------------------------------- parsing
_TOKEN = re.compile(r"\d+(?:\.\d+)?|\.\d+|\\[a-zA-Z]+|\\.?|[a-zA-Z]|\S")  # unknown tokens fail the parse
_NOISE = frozenset(r"\left \right \displaystyle \big \Big \bigl \bigr \Bigl \Bigr \bigg \Bigg \mathrm".split())
_FUNCS = frozenset("sin cos tan sec csc cot log ln exp arcsin arccos arctan".split())
_ATOM_START = frozenset("( { \\frac \\dfrac \\tfrac \\sqrt \\pi \\infty \\binom \\lfloor \\lceil".split()
                        + ["\\" + f for f in _FUNCS])
_LATEX_FIX = [(re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)"), r"\\frac{\1}{\2}"),  # \frac12
              (re.compile(r"\\[dt]?frac\s*(\d)\s*\{"), r"\\frac{\1}{"),       # \frac9{19}
              (re.compile(r"(\\frac\{[^{}]*\})\s*(\d)"), r"\1{\2}"),          # \frac{270}7
              (re.compile(r"\\sqrt\s*(\d)"), r"\\sqrt{\1}"),                  # \sqrt2
              (re.compile(r"(?<![\d.}^_])(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}(?!\s*\\frac)"),  # mixed 4\frac{5}{8}
               lambda m: f"({m[1]}+\\frac{{{m[2]}}}{{{m[3]}}})" if int(m[2]) < int(m[3]) else m[0]),
              (re.compile(r"(?<!\\)\b(sqrt|pi|sin|cos|tan|log|ln)\b"), r"\\\1")]     # plain-text names
_UNI = str.maketrans({"×": "*", "÷": "/", "·": "*", "−": "-", "–": "-", "π": r" \pi ", "√": r"\sqrt "})
_TWO = ("n", Fraction(2), 0)


class _Parser:
    """expr := term (+|- term)*; term := unary (* | / | implicit) ...; unary := -unary | power;
    power := postfix [^ exponent]. Nodes: ('n', Fraction, decimals), ('v', name), ('c', 'pi'|'inf'),
    (op, a, b) for + - * / ^, ('neg', a), ('%', a), ('!', a), ('deg', a), ('root', a, k),
    ('binom', n, k), ('f', name, a)."""

    def __init__(self, toks, rad=False):
        self.t, self.i, self.depth, self.trig = toks, 0, 0, int(rad)

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else None

    def next(self, want=None):
        if self.i >= len(self.t) or (want is not None and self.t[self.i] != want): raise _Bad
        self.i += 1
        return self.t[self.i - 1]

    def expr(self):
        self.depth += 1
        if self.depth > MAX_DEPTH: raise _Bad
        node = self.term()
        while (t := self.peek()) in ("+", "-"):
            self.i += 1
            node = (t, node, self.term())
        self.depth -= 1
        return node

    def term(self):
        node = self.unary()
        while True:
            t = self.peek()
            if t in ("*", r"\cdot", r"\times"): self.i += 1; node = ("*", node, self.unary())
            elif t in ("/", r"\div"): self.i += 1; node = ("/", node, self.unary())
            elif t is not None and (t in _ATOM_START or (len(t) == 1 and t.isalpha())):
                node = ("*", node, self.power())  # implicit: 2x, 2\sqrt2, (x-1)(x+1); never "3 4"
            else: return node

    def unary(self):
        t = self.peek()
        if t in ("-", "+"):
            self.i += 1
            return ("neg", self.unary()) if t == "-" else self.unary()
        return self.power()

    def power(self):
        base = self.postfix()
        if self.peek() != "^": return base
        self.i += 1
        # degrees are a unit (90^\circ - 60^\circ = 30) except inside trig arguments (\sin 30^\circ = 1/2)
        for pat in ([r"\circ"], ["{", r"\circ", "}"]):
            if self.t[self.i:self.i + len(pat)] == pat:
                self.i += len(pat)
                return ("deg", base) if self.trig else base
        return ("^", base, self.exponent())

    def exponent(self):  # right-associative: 2^3^2 = 2^9
        t = self.peek()
        if t in ("-", "+"):
            self.i += 1
            return ("neg", self.exponent()) if t == "-" else self.exponent()
        e = self.postfix()
        return ("^", e, self.exponent()) if self.peek() == "^" and self.next() else e

    def postfix(self):
        node = self.atom()
        while (t := self.peek()) in ("!", "%", r"\%"):
            self.i += 1
            if t == "!" and self.peek() == "!": raise _Bad  # double factorial: unsupported
            node = ("!" if t == "!" else "%", node)
        return node

    def group(self):  # a LaTeX argument: {expr} or one atom
        if self.peek() != "{": return self.atom()
        self.i += 1
        e = self.expr()
        self.next("}")
        return e

    def atom(self):
        t = self.next()
        if t[0].isdigit() or t[0] == ".":
            if len(t) > MAX_DIGITS: raise _Bad
            d = len(t) - t.index(".") - 1 if "." in t else 0
            return ("n", Fraction(int(t.replace(".", "")), 10 ** d), d)
        if t.isalpha():
            if self.peek() != "_": return ("v", t)
            self.i += 1  # subscripted variable: a_1, x_{n+1}
            s = self.next()
            if s == "{":
                parts = []
                while (u := self.next()) != "}": parts.append(u)
                s = "".join(parts)
            return ("v", t + "_" + s)
        if t in ("(", "[", "{", "|"):
            e = self.expr()
            self.next({"(": ")", "[": "]", "{": "}", "|": "|"}[t])
            return ("f", "abs", e) if t == "|" else e
        if t in (r"\frac", r"\dfrac", r"\tfrac"): return ("/", self.group(), self.group())
        if t == r"\binom": return ("binom", self.group(), self.group())
        if t == r"\sqrt":
            k = _TWO
            if self.peek() == "[": self.i += 1; k = self.expr(); self.next("]")
            return ("root", self.group(), k)
        if t in (r"\pi", r"\infty"): return ("c", t[1:3])
        if t in (r"\lfloor", r"\lceil"):
            e = self.expr()
            self.next(t.replace("\\l", "\\r"))
            return ("f", t[2:], e)
        if t[1:] not in _FUNCS: raise _Bad
        name, base, p = t[1:], None, None
        if name == "log" and self.peek() == "_": self.i += 1; base = self.group()
        if self.peek() == "^": self.i += 1; p = self.exponent()  # \sin^2 x
        if p == ("neg", ("n", 1, 0)) and name in ("sin", "cos", "tan"): name, p = "arc" + name, None
        self.trig += 1
        if self.peek() == "(": arg = self.atom()
        else:  # \sin 2x is sin(2x)
            arg = self.power()
            while (u := self.peek()) is not None and len(u) == 1 and u.isalpha(): arg = ("*", arg, self.power())
        self.trig -= 1
        node = ("f", name, arg) if base is None else ("/", ("f", "ln", arg), ("f", "ln", base))
        return node if p is None else ("^", node, p)


@lru_cache(maxsize=8192)
def _parse(s, rad=False):
    """String -> AST, or None if it is not a supported expression. rad: every x^\\circ in radians."""
    if len(s) > MAX_ANSWER * 4: return None
    s = s.translate(_UNI)
    if "\\" in s or "sqrt" in s or "pi" in s:
        for rx, rep in _LATEX_FIX: s = rx.sub(rep, s)
    toks = [t for t in _TOKEN.findall(s) if t not in _NOISE]
    if not toks or len(toks) > MAX_TOKENS: return None
    p = _Parser(toks, rad)
    try:
        node = p.expr()
        return node if p.i == len(toks) else None
    except (_Bad, RecursionError, ValueError):
        return None


# ----------------------------------------------------------------------------- evaluation
_BIN = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _root_exact(v, k):
    if not 2 <= k <= 10 or (v < 0 and k % 2 == 0): raise _Inexact
    out = []
    for x in (abs(v.numerator), v.denominator):
        if x.bit_length() > 2000: raise _Inexact
        r = math.isqrt(x) if k == 2 else round(x ** (1.0 / k))
        r = next((y for y in (r - 1, r, r + 1) if y >= 0 and y ** k == x), None)
        if r is None: raise _Inexact
        out.append(r)
    return Fraction(out[0] if v >= 0 else -out[0], out[1])


def _exact(n, pct=100):
    """Exact rational value; raises _Inexact for pi, sqrt(2), variables, ... and _Bad for 9^9^9^9."""
    op = n[0]
    if op == "n": return n[1]
    if op in _BIN:
        a, b = _exact(n[1], pct), _exact(n[2], pct)
        if op == "/" and b == 0: raise _Bad
        return _BIN[op](a, b)
    if op == "neg": return -_exact(n[1], pct)
    if op == "%": return _exact(n[1], pct) / pct
    if op == "^":
        b, e = _exact(n[1], pct), _exact(n[2], pct)
        if e.denominator != 1: b, e = _root_exact(b, e.denominator), e.numerator
        if abs(e) > MAX_EXP or (b.numerator.bit_length() + b.denominator.bit_length()) * abs(e) > MAX_BITS \
                or (b == 0 and e < 0): raise _Bad  # refuse instead of computing
        return b ** int(e)
    if op == "root":
        k = _exact(n[2], pct)
        if k.denominator != 1: raise _Inexact
        return _root_exact(_exact(n[1], pct), int(k))
    if op in ("!", "binom"):
        a = _exact(n[1], pct)
        b = _exact(n[2], pct) if op == "binom" else a
        if a.denominator != 1 or b.denominator != 1 or not 0 <= b <= a <= MAX_FACT: raise _Bad
        return Fraction(math.factorial(int(a)) if op == "!" else math.comb(int(a), int(b)))
    if op == "f" and n[1] in ("abs", "floor", "ceil"):
        v = _exact(n[2], pct)
        return abs(v) if n[1] == "abs" else Fraction(math.floor(v) if n[1] == "floor" else math.ceil(v))
    raise _Inexact


_CFUN = {"sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "log": cmath.log, "ln": cmath.log, "exp": cmath.exp,
         "arcsin": cmath.asin, "arccos": cmath.acos, "arctan": cmath.atan, "sec": lambda z: 1 / cmath.cos(z),
         "csc": lambda z: 1 / cmath.sin(z), "cot": lambda z: 1 / cmath.tan(z), "abs": abs,
         "floor": lambda z: math.floor(z.real), "ceil": lambda z: math.ceil(z.real)}


def _approx(n, env):
    """Complex float value at a variable assignment: the fast path for sqrt / pi / trig / variables."""
    op = n[0]
    if op == "n": return complex(n[1])
    if op == "v": return env[n[1]]
    if op == "c": return complex(math.pi if n[1] == "pi" else math.inf)
    if op in _BIN: return _BIN[op](_approx(n[1], env), _approx(n[2], env))
    if op == "^":
        a, b = _approx(n[1], env), _approx(n[2], env)
        if abs(b) > 1e4 and abs(a) != 1: raise _Bad
        return a ** b
    if op in ("neg", "%", "deg"): return _approx(n[1], env) * {"neg": -1, "%": 0.01, "deg": math.pi / 180}[op]
    if op == "root":
        a, k = _approx(n[1], env), _approx(n[2], env)
        if a.imag == 0 and a.real < 0 and k == round(k.real) and round(k.real) % 2:  # real odd root
            return -((-a.real) ** (1 / k.real))
        return a ** (1 / k)
    if op == "f": return complex(_CFUN[n[1]](_approx(n[2], env)))
    return complex(_exact(n))  # '!' and binom: bounded integers


def _vars(n, acc=None):
    acc = set() if acc is None else acc
    if n[0] == "v": acc.add(n[1])
    elif n[0] not in ("n", "c"):
        for x in n[1:]:
            if isinstance(x, tuple): _vars(x, acc)
    return acc


_RNG = random.Random(1234)
_POINTS = [[_RNG.uniform(0.6, 1.9) for _ in range(12)] for _ in range(3)]


def _same(a, b, tol=0):
    """True / False / None (undecided). Exact for rationals, else complex floats compared at 3 fixed
    random points (a probabilistic identity test, relative tolerance 1e-9)."""
    try:
        return abs(_exact(a) - _exact(b)) <= tol
    except _Inexact: pass
    except (_Bad, ZeroDivisionError, OverflowError, ValueError): return None
    names = sorted(_vars(a) | _vars(b))
    if len(names) > 12: return None
    try:
        for pt in _POINTS if names else _POINTS[:1]:
            env = dict(zip(names, pt))
            x, y = _approx(a, env), _approx(b, env)
            if x == y: continue
            if cmath.isnan(x) or cmath.isnan(y): return None
            if cmath.isinf(x) or cmath.isinf(y) or abs(x - y) > max(float(tol), 1e-9 * max(1, abs(x), abs(y))):
                return False
        return True
    except (_Bad, _Inexact, ZeroDivisionError, OverflowError, ValueError, TypeError, KeyError):
        return None


# ----------------------------------------------------------------------------- sympy (slow path)
def _to_sympy(n, sp):
    op = n[0]
    if op == "n": return sp.Rational(n[1].numerator, n[1].denominator)
    if op == "v": return sp.Symbol(n[1])
    if op == "c": return sp.pi if n[1] == "pi" else sp.oo
    if op in ("!", "binom"): return sp.Integer(int(_exact(n)))  # bounded by _exact
    a, b = (_to_sympy(x, sp) if isinstance(x, tuple) else x for x in (n[1:] + (None,))[:2])
    if op in _BIN: return _BIN[op](a, b)
    if op == "^":
        if b.is_Number and (abs(b) > MAX_EXP or a.is_Rational and
                            (a.p.bit_length() + a.q.bit_length()) * abs(b) > MAX_BITS): raise _Bad
        return a ** b
    if op == "root": return sp.root(a, b)
    if op in ("neg", "%", "deg"): return a * {"neg": -1, "%": sp.Rational(1, 100), "deg": sp.pi / 180}[op]
    return {"sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "sec": sp.sec, "csc": sp.csc, "cot": sp.cot, "log": sp.log,
            "ln": sp.log, "exp": sp.exp, "arcsin": sp.asin, "arccos": sp.acos, "arctan": sp.atan, "abs": sp.Abs,
            "floor": sp.floor, "ceil": sp.ceiling}[a](b)  # ('f', name, arg)


def _raise_timeout(*_): raise _Timeout


def _sympy_call(fn, budget):
    """fn(sympy) under the per-solution call budget and a SIGALRM deadline (main thread only; the
    size bounds hold everywhere); None on any failure: undecided, never a crash or a hang."""
    if budget[0] <= 0: return None
    budget[0] -= 1
    import sympy  # outside the deadline: an interrupted import would leave sympy half-initialised
    alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGALRM, _raise_timeout) if alarm else None
    try:
        if alarm: signal.setitimer(signal.ITIMER_REAL, SYMPY_SECONDS)
        return fn(sympy)
    except Exception:
        return None
    finally:
        if alarm: signal.setitimer(signal.ITIMER_REAL, 0); signal.signal(signal.SIGALRM, old)


def _sympy_same(a, b, budget):
    def f(sp):
        d = sp.simplify(_to_sympy(a, sp) - _to_sympy(b, sp))
        return True if d == 0 else (False if d.is_zero is False else None)
    return _sympy_call(f, budget)


def _deg(n):  # polynomial degree bound of an AST, None when not a polynomial
    op, sub = n[0], [_deg(x) for x in n[1:3] if isinstance(x, tuple)]
    if op in ("n", "c") or not _vars(n): return 0
    if op == "v": return 1
    if None in sub: return None
    if op in ("+", "-", "neg", "%"): return max(sub)
    if op == "*": return sum(sub)
    if op == "/": return None if _vars(n[2]) else sub[0]
    if op == "^" and n[2][0] == "n" and n[2][1].denominator == 1 and 0 <= n[2][1] <= MAX_POLY_DEGREE:
        return sub[0] * int(n[2][1])
    return None


def _has_sum(n):
    return n[0] in ("+", "-") or any(isinstance(x, tuple) and _has_sum(x) for x in n[1:])


def _is_factored(n):  # (x+1)^2, -2(x-3)(x+1): a product or power with a sum inside
    while n[0] == "neg": n = n[1]
    return n[0] in ("*", "^") and _has_sum(n)


def _wrong_identity(a, b, budget):
    """Same variables on both sides, and they differ. Flag only a botched expansion/factorisation: a
    factored side = an expanded sum, polynomials whose leading terms agree (deg(a - b) < max degree),
    e.g. (x+1)^2 = x^2+1. Equations being solved (2x+3 = 5x-6, x^2 = 4x, x^2+2 = x^2+4x+4) are not
    flagged, nor ones whose variable profile() sees solved for later."""
    da, db = _deg(a), _deg(b)
    if da is None or db is None or max(da, db) > MAX_POLY_DEGREE or len(_vars(a)) > 4: return None
    if not ((_is_factored(a) and b[0] in "+-") or (_is_factored(b) and a[0] in "+-")): return None
    def f(sp):
        syms = [sp.Symbol(s) for s in sorted(_vars(a))]
        pa, pb = sp.Poly(_to_sympy(a, sp), *syms), sp.Poly(_to_sympy(b, sp), *syms)
        d = pa - pb
        return False if d.is_zero else d.total_degree() < max(pa.total_degree(), pb.total_degree())
    return _sympy_call(f, budget)


# ----------------------------------------------------------------------------- answers
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


def _extract(solution):
    """(answer, start, end of its marker). Priority: 'The answer is:' (last) > '####' (last) > last \\boxed."""
    for rx in (_ANS_IS, _HASH):
        last = None
        for last in rx.finditer(solution): pass
        if last is not None and (a := _clean_pred(last.group(1))): return a, last.start(), last.end()
    b, pos = _last_boxed(solution)
    return _clean_pred(b), pos, pos + len(b or "") + 8


def extract_answer(solution):
    """Final answer of a solution ('The answer is: X' / '#### X' / last \\boxed{X}), or None."""
    return _extract(solution or "")[0]


def _canon(s):
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
    s = _canon(s)
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


def _compact(s):
    return re.sub(r"\s+", "", s).lower()


def _decimals(s):  # digits after the point if s is a plain decimal literal, else None
    m = re.fullmatch(r"-?\d*\.(\d+)", s)
    return len(m.group(1)) if m else None


def _scalar_eq(a, b, budget):
    if a == b or _compact(a) == _compact(b): return True
    pa, pb = a.endswith("%"), b.endswith("%")
    a, b = a.rstrip("%").strip(), b.rstrip("%").strip()
    na, nb = _parse(a), _parse(b)
    if na is None or nb is None or _WORDY.search(a) or _WORDY.search(b):  # text answers
        ka, kb = (re.sub(r"[^a-z0-9]", "", _TEXTCMD.sub(r"\1", x).lower()) for x in (a, b))
        return bool(ka) and ka == kb
    # a reference decimal with >= 2 places ("to the nearest hundredth") accepts the exact value it
    # rounds to: reference 0.33 ~ candidate 1/3 (not the other way round: 1.41 is not \sqrt2)
    da = _decimals(a)
    tol = Fraction(1, 2 * 10 ** da) if da and da >= 2 and _decimals(b) is None else 0
    options = [(na, nb)]  # percent: '50%' matches '50', and 0.5 (the percent side over 100)
    if pa != pb: options.append((("%", na), nb) if pa else (na, ("%", nb)))
    for x, y in options:
        r = _same(x, y, tol)
        if r or (r is None and _sympy_same(x, y, budget)): return True
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


def answers_match(reference, candidate, _budget=None):
    """Mathematical equivalence of a candidate final answer to the reference (rules: docs/verifier.md)."""
    if reference is None or candidate is None: return False
    reference, candidate = str(reference).strip(), str(candidate).strip()
    if reference == candidate: return bool(reference)
    if max(len(reference), len(candidate)) > MAX_ANSWER: return _compact(reference) == _compact(candidate)
    try:
        return _struct_eq(_structure(reference), _structure(candidate), _budget or [MAX_SYMPY_CALLS])
    except (RecursionError, ValueError, _Bad):
        return _compact(reference) == _compact(candidate)


def _answer_value(s):
    """(real value, had_percent) of a scalar numeric answer, else (None, False)."""
    s = _canon(s or "")
    if _THOUSANDS.fullmatch(s): s = s.replace(",", "")
    n = _parse(s.rstrip("%").strip())
    try:
        v = None if n is None or _vars(n) else _approx(n, {})
    except (_Bad, _Inexact, ZeroDivisionError, OverflowError, ValueError, TypeError):
        v = None
    ok = v is not None and abs(v.imag) < 1e-12 and math.isfinite(v.real)
    return (v.real, s.endswith("%")) if ok else (None, False)


# ----------------------------------------------------------------------------- step checks
_NOTE = re.compile(r"<<([^<>=\n]{1,300})=([^<>\n]{1,80})>>")
_TIMES = re.compile(r"(?<=[\d)])[ \t]*[xX×][ \t]*(?=[\d($])")
_RUN = re.compile(r"[\d$(.\-][\d \t.,$%+\-*/()^=]*")
_SUBRUN = re.compile(r",[ \t]+|;|\.[ \t]+|\.$")
_OPWORD = re.compile(r"\b(?:of|times|by|plus|minus|over|per|and|than|half|twice|double|triple|x)[ \t]*$|[\w^/_.]$"
                     r"|[-+*/^×=][ \t]*\$?$", re.I)  # text before an equation that makes its left side partial
_LATEX_MODE = re.compile(r"\\[a-zA-Z]{2,}|\\\(|\\\[|\$[a-zA-Z\\]")
_MATH_OPEN = re.compile(r"\$\$|\$|\\\[|\\\(|\\begin\{(align|equation|eqnarray|gather)\*?\}")
_ASY_OPEN = re.compile(r"\[asy\]")
_CLOSE = {"$$": "$$", "$": "$", r"\[": r"\]", r"\(": r"\)", "[asy]": "[/asy]"}
_CHUNK = re.compile(r"\\\\|;|,(?!\d{3}(?!\d))|\\(?:q?quad|implies|Rightarrow|Longrightarrow|iff|therefore|because|"
                    r"rightarrow|Leftrightarrow|hspace\{[^}]*\})(?![a-zA-Z])")
_REL = re.compile(r"(=|\\approx|\\neq?|\\leq?|\\geq?|\\lt|\\gt|<|>|\\equiv|\\sim|\\simeq|\\cong|\\to|\\mapsto|"
                  r"\\in|\\notin|\\subseteq?|\\propto|\\mid)(?![a-zA-Z])")
_ALIGN = [(re.compile(r"\\\\\s*&?\s*="), "="),                           # "\\ &= ..." continues the chain
          (re.compile(r"\\\\\s*&?\s*(?:\\q?quad\s*)?(?=[-+])"), " "),  # "\\ &+ ..." continues the expression
          (re.compile(r"([\^_])(\d)(?=\d)"), r"\1{\2}"), ("&", " ")]   # LaTeX 3^25^2 is 3^2 5^2
_MOD = re.compile(r"\\[pb]?mod|\\equiv|modulo|remainder|\bmod\b|\bbase\b", re.I)
_FALSE = re.compile(r"[\s,.;]*(?:which |that |this )?(?:is |are )?(?:not true|false|impossible|a contradiction|"
                    r"extraneous|not possible|invalid|not valid)", re.I)
_FUNC_NOTATION = re.compile(r"[fghpqPQ]\s*\(")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_FRACTION = re.compile(r"\\[dt]?frac\{(\d{1,9})\}\{(\d{1,9})\}|\b(\d{1,9})/(\d{1,9})\b")
_Eq = namedtuple("_Eq", "pos end kind ok val src vars")  # ok None: unchecked (a definition x = 5 keeps val)


def _blocks(text, opener):
    """(start, end, body) of delimited blocks in linear time: a closing delimiter found missing once is
    never searched for again (a lazy regex is quadratic on '\\[' * 10000)."""
    out, i, dead = [], 0, set()
    while m := opener.search(text, i):
        close = _CLOSE.get(m.group()) or r"\end{" + m.group(1)
        j = -1 if close in dead else text.find(close, m.end())
        if j < 0:
            dead.add(close); i = m.end(); continue
        i = j + len(close) if close in _CLOSE.values() else text.find("}", j) + 1
        out.append((m.start(), i, text[m.end():j]))
    return out


def _balance(p):  # drop the unmatched "(" of "(so 3 + 4 = 7)"; linear, the text may be hostile
    d = p.count("(") - p.count(")")
    if d > 0: p = p[min(d, len(p) - len(p.lstrip("("))):]
    elif d < 0: p = p[:len(p) - min(-d, len(p) - len(p.rstrip(")")))]
    return p.strip()


def _unbox(s):
    for _ in range(5):
        i = s.find(r"\boxed")
        j = s.find("{", i)
        if i < 0 or j < 0 or s[i + 6:j].strip() or (inner := _brace(s, j)) is None: break
        s = s[:i] + inner + s[j + len(inner) + 2:]
    return s


def _first_literal(n):
    while n[0] not in ("n", "v", "c") and isinstance(n[1], tuple): n = n[1]
    return n[1] if n[0] == "n" else None


class _Checker:
    """Re-checks every stated equality: GSM8K <<notes>> and plain-text chains are 'arithmetic' (exact
    Fractions, no sympy); LaTeX math is 'symbolic' (Fraction / floats first, sympy only if undecided)."""

    def __init__(self, text, question=None, budget=None):
        self.eqs, self.seen, self.budget, self.text = [], {}, budget or [MAX_SYMPY_CALLS], text
        self.star = "*" in (question or "")  # "a * b = 2a + b" defines an operation: '*' is not times
        self.mod = False

    def chain(self, pos, end, parts, kind, skip_first=False):
        if len(self.eqs) >= MAX_EQUATIONS: return
        nodes = [None if not p or r"\text" in p or r"\mbox" in p else _parse(p) for p in parts]
        for i in range(skip_first, len(parts) - 1):
            a, b, sa, sb = nodes[i], nodes[i + 1], parts[i], parts[i + 1]
            if a is None or b is None: continue
            key = (kind == "s", re.sub(r"[\s$,]", "", sa + "=" + sb))
            if key in self.seen:  # notes are restated in the text: check once; definitions may recur
                if self.seen[key].ok is None: self.eqs.append(self.seen[key]._replace(pos=pos, end=end))
                continue
            if kind == "s": ok, val = self.symbolic(a, b, sa, sb)
            elif i == 0 and kind == "p" and (a[0] not in "+-*/^" or sa[0] in "+*/^"):
                continue  # "half of 10 = 5": a bare left side is not the whole expression
            else:
                ok, val = self.arith(a, b, sa + "=" + sb), None
                try: val = float(_exact(b))
                except Exception: pass
            if ok is False and i + 2 < len(parts):
                try:  # running-total notation "3 * 4 = 12 * 2 = 24" is sloppy, not wrong
                    ok = True if _first_literal(b) == _exact(a) else ok
                except Exception: pass
            self.seen[key] = eq = _Eq(pos, end, "s" if kind == "s" else "a", ok, val, (sa + " = " + sb)[:120],
                                      frozenset(_vars(a)))
            if ok is not None or val is not None: self.eqs.append(eq)

    def arith(self, lhs, rhs, src):
        try:
            L, R = _exact(lhs), _exact(rhs)
            d = rhs[2] if rhs[0] == "n" else None
            return (L == R or (bool(d) and abs(L - R) < Fraction(1, 2 * 10 ** d))   # 10/3 = 3.33 (rounded)
                    or (d == 0 and L.denominator != 1 and abs(L - R) < (1 if "/" in src else 0.5))  # rounded count
                    or ("%" in src and _exact(lhs, 1) == _exact(rhs, 1)))           # "100 - 20% = 80"
        except (_Bad, _Inexact, ZeroDivisionError, OverflowError, ValueError):
            return None

    def symbolic(self, a, b, sa, sb):
        va, vb = _vars(a), _vars(b)
        val = None if vb else _answer_value(sb)[0]  # degrees stay degrees: compared with answers
        if va != vb or (va and (sa in va or sb in va)) or (self.star and "*" in sa + sb):
            return None, val  # x = 5, y = 2x + 1, f(2) = 7, a custom a * b: unchecked
        d = [_decimals(x) for x in (sa, sb)]
        r = _same(a, b, Fraction(49, 100 * 10 ** min(x for x in d if x)) if any(d) else 0)  # \sqrt2 = 1.414
        if r is None: r = _sympy_same(a, b, self.budget)
        if r is False and r"\circ" in sa + sb:  # \arcsin(\sin 6^\circ) = 6^\circ, or a unit conversion
            r = True if _same(_parse(sa, True) or a, _parse(sb, True) or b) else \
                (None if (r"\circ" in sa) != (r"\circ" in sb) else False)
        if r is False and not va:
            if _decimals(sa + ".0") is not None and _decimals(sb + ".0") is not None:
                return None, val  # "0 = -12", "90 = 9": literal = literal is a contradiction or a mapping
            try:
                x, y, rint = _approx(a, {}), _approx(b, {}), sb.lstrip("-").isdigit()
                if (("." in sa + sb and abs(x - y) <= max(5e-3 * abs(y), 0.5 * rint))  # 1000(1.02)^8 = 1172
                        or (rint and a[0] == "/" and abs(x - y) < 1)                # 100 \div 12 = 8 (R 4)
                        or _close(x, 100 * y) or _close(100 * x, y)                 # 0.65 = 65 (%)
                        or (self.mod and x == round(x.real) and y == round(y.real))):  # 2^{10} = 4 (mod 5)
                    r = None
            except Exception: r = None
        if r is False and va and (_FUNC_NOTATION.search(sa + sb) or _wrong_identity(a, b, self.budget) is not True):
            r = None
        return r, val

    def notes(self, text):
        """GSM8K calculator notes <<a*b=c>>; returns the text with them blanked out."""
        for m in _NOTE.finditer(text):
            self.chain(m.start(), m.end(), [m.group(1).replace(",", ""), m.group(2).replace(",", "")], "n")
        return _NOTE.sub(lambda m: " " * len(m.group()), text)

    def plain(self, text):
        """Plain-text chains 'a op b = c [= d]': x, ×, ÷, $, %, thousands commas, units after c."""
        text = _TIMES.sub(lambda m: "*".center(len(m.group())), text.translate(_UNI))
        for m in _RUN.finditer(text):
            run, before, off = m.group(), text[max(0, m.start() - 12):m.start()], 0
            if "=" not in run: continue
            skip = bool(_OPWORD.search(before) or (run[0] == "-" and re.search(r"[\w)][ \t]*$", before)))
            for sub in _SUBRUN.split(run):  # skip: "3 times 4 + 2 = 14", "x - 3 + 2 = 5"
                if "=" in sub:
                    parts = [_balance(re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", p.replace("$", "")).strip().rstrip("."))
                             for p in sub.split("=")]
                    self.chain(m.start() + off, m.start() + off + len(sub), parts, "p", skip)
                skip, off = False, off + len(sub) + 1

    def latex(self, text):
        """Equalities in $..$, $$..$$, \\[..\\], \\(..\\), align; returns the text with the math blanked."""
        self.mod = bool(_MOD.search(self.text))  # modular / base-b work: integer "mismatches" are intended
        out, last = [], 0
        for start, end, body in _blocks(text, _MATH_OPEN):
            out += [text[last:start], " " * (end - start)]
            last = end
            if len(body) > 5000 or "=" not in body or _FALSE.match(text, end): continue  # "..., which is false"
            body = _SPACING.sub(lambda m: "," if m.group()[0] == "," else " ", _LR.sub("", _unbox(body)))
            for a, b in _REPL[:4] + _ALIGN: body = body.replace(a, b) if isinstance(a, str) else a.sub(b, body)
            skip = bool(_OPWORD.search(text[max(0, start - 12):start]))  # "$(3)$ x $(5) = 64$"
            for chunk in _CHUNK.split(body):
                bits = _REL.split(chunk) if "=" in chunk and len(chunk) <= 600 else [chunk]
                parts, rels, i = bits[0::2], bits[1::2], 0
                while i < len(rels):  # maximal runs of '=' form a chain
                    j = i
                    while j < len(rels) and rels[j] == "=": j += 1
                    if j > i: self.chain(start, end, [p.strip().rstrip(".,").strip() for p in parts[i:j + 1]],
                                         "s", skip and i == 0)
                    i = j + 1
                skip = False
        return "".join(out) + text[last:]


# ----------------------------------------------------------------------------- profile
@dataclass
class Profile:
    answer_mismatch: float = 0.0
    numeric_distance: float = 0.0
    arithmetic: float = 0.0
    symbolic: float = 0.0
    logical: float = 0.0
    format: float = 0.0
    wrongness: float = 0.0
    absurdity: float = 0.0
    correct: bool = False
    pred: str | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self):
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


_HOW_MANY = re.compile(r"\bhow many\s+((?:[a-z]+\s+){0,2}[a-z]+)", re.I)
_CONTINUOUS = re.compile(r"hour|minute|second|mile|pound|kilo|gram|lit[er]|gallon|ounce|cup|feet|foot|inch|"
                         r"met[er]|yard|dollar|cent|day|week|month|year|percent|degree|square|cubic|time|more|less|"
                         r"unit|calorie|scoop|serving")


def _sev(n_wrong, n):  # one slip already matters (0.4); several saturate; all wrong is 1
    return max(n_wrong / n, 1 - STEP_DECAY ** n_wrong) if n_wrong else 0.0


def _close(x, y):
    return abs(x - y) <= 1e-6 * max(1.0, abs(x), abs(y))


def _numbers(text):
    fr = [(m[1], m[2]) if m[1] else (m[3], m[4]) for m in _FRACTION.finditer(text)]
    return [float(x.replace(",", "")) for x in _NUMBER.findall(text)] + [int(a) / int(b) for a, b in fr if int(b)]


def _repetition(text):
    lines = [l.strip() for l in text.splitlines() if len(l.strip()) >= 10]
    rep = 1 - len(set(lines)) / len(lines) if len(lines) >= 4 else 0.0
    if len(w := text.split()) >= 40:
        grams = list(zip(w, w[1:], w[2:], w[3:]))
        rep = max(rep, 1 - len(set(grams)) / len(grams))
    return min(1.0, max(0.0, (rep - REP_FREE) / (REP_FULL - REP_FREE)))


def profile(solution, reference_answer, question=None, truncated=None):
    """Score one solution against the reference answer: six severities in [0, 1] and two aggregates.
    truncated: the sampler's finish_reason == 'length' (None: infer it from the text)."""
    solution, ref = solution or "", str(reference_answer).strip()
    if "####" in ref or r"\boxed" in ref or "answer is" in ref.lower():  # a whole reference solution
        ref = extract_answer(ref) or ref
    pred, ans_pos, ans_end = _extract(solution)
    budget = [MAX_SYMPY_CALLS]  # shared by the answer check and the step checks: <= 3 x 0.2 s of sympy
    correct = pred is not None and answers_match(ref, pred, budget)
    text, reasons = solution[:MAX_TEXT], []
    # --- steps: <<notes>> and plain text -> arithmetic; LaTeX math -> symbolic. [asy] drawings are code.
    t = text
    for a, b, _ in _blocks(text, _ASY_OPEN) if "[asy]" in text else []: t = t[:a] + " " * (b - a) + t[b:]
    rep, chk = _repetition(t), _Checker(text, question, budget)
    t = chk.notes(t)
    chk.plain(chk.latex(t.replace(r"\$", "  ")) if _LATEX_MODE.search(t) else t)
    eqs = sorted(chk.eqs, key=lambda e: e.pos)
    # "a^2 + 64 = (2-a)^2 ... a = -15": an equation that gets solved was never an identity claim
    eqs = [e for e in eqs if not (e.ok is False and e.vars and any(
        d.ok is None and d.vars and d.vars <= e.vars and d.pos >= e.pos for d in eqs))]
    wrong = [e for e in eqs if e.ok is False]
    n = {k: sum(e.kind == k and e.ok is not None for e in eqs) for k in "as"}
    arithmetic, symbolic = (_sev(sum(e.kind == k for e in wrong), n[k]) for k in "as")
    # --- the answer against the reference
    (pv, ppct), (rv, rpct) = _answer_value(pred), _answer_value(ref)
    rel, magnitude, numeric_distance = None, False, 0.0 if correct else 1.0
    if not correct and pv is not None and rv is not None:
        scales = [1.0] + ([0.01] if ppct and not rpct else [100.0] if rpct and not ppct else [])
        rel = min(abs(pv * s - rv) / max(abs(rv), 1.0) for s in scales)
        numeric_distance = max(0.01, 1 - math.exp(-rel / DIST_SCALE))
        magnitude = pv != 0 and rv != 0 and not 1 / MAGNITUDE_FACTOR <= abs(pv / rv) <= MAGNITUDE_FACTOR
    # --- logical: the final answer vs the last computed result; a final number derived from nothing.
    # A boxed answer that ends a relation ("... = \boxed{25}") is itself the last computed result.
    logical = 0.0
    derived = solution.startswith(r"\boxed", ans_pos) and re.search(r"(=|\\approx|\\equiv)[\s$]*$",
                                                                    solution[max(0, ans_pos - 20):max(0, ans_pos)])
    if pv is not None and not derived:
        scales = (1, 100, .01) if "%" in solution or "percent" in (question or "").lower() else (1,)
        vals = [e for e in eqs if e.val is not None and e.pos < (ans_end if ans_pos >= 0 else len(text))]
        last = vals[-1] if vals else None  # only when right before the answer: <= 1 line break, 200 chars
        if last and ans_pos - last.end <= 200 and text.count("\n", last.end, max(ans_pos, last.end)) <= 1:
            # after 'a + b = c' the answer must be c or be restated; LaTeX math may contain it ("2^3 5 = ...")
            between = text[last.end if last.kind == "a" else last.pos:max(ans_pos, last.end)]
            if not (any(_close(pv, x * s) for x in [last.val] + _numbers(between) for s in scales)
                    or _compact(_canon(pred)) in _compact(between)):
                logical += LOGIC_LAST; reasons.append("final_not_last_result")
        if re.fullmatch(r"-?\$?\d[\d,]*(\.\d+)?%?", _canon(pred)) and not (0 <= pv <= 10 and pv == int(pv)):
            seen = {round(abs(x), 6) for x in _numbers((question or "") + " " + text[:max(ans_pos, 0)])}
            seen |= {round(abs(e.val), 6) for e in vals}
            if not any(round(abs(pv) * s, 6) in seen for s in scales):
                logical += LOGIC_UNSUPPORTED; reasons.append("final_number_unsupported")
    # --- format: the worst of no answer, truncation, loops, impossible values, magnitude
    fmt = {}
    if truncated is None: truncated = pred is None and bool(text.strip()) and text.rstrip()[-1] not in ".!?$}])"
    if pred is None: fmt["no_answer"] = 1.0
    if truncated: fmt["truncated"] = 1.0 if pred is None else 0.5
    if rep: fmt["repetition"] = rep
    if question and pv is not None and (m := _HOW_MANY.search(question)):
        if pv < 0: fmt["negative_count"] = 1.0
        elif pv != int(pv) and not _CONTINUOUS.search(m.group(1).lower()): fmt["non_integer_count"] = 0.7
    if magnitude: fmt["magnitude"] = 1.0
    p = Profile(0.0 if correct else 1.0, numeric_distance, arithmetic, symbolic, min(1.0, logical),
                max(fmt.values(), default=0.0), correct=correct, pred=pred)
    p.wrongness = min(1.0, W_ANSWER * p.answer_mismatch + W_DISTANCE * p.numeric_distance
                      + W_STEPS * max(arithmetic, symbolic, p.logical) + W_FORMAT * p.format)
    p.absurdity = min(1.0, A_FORMAT * p.format + A_MAGNITUDE * magnitude
                      + A_ERRORS * (arithmetic + symbolic + p.logical) / 3)
    p.details = {"n_equations": n["a"] + n["s"], "n_wrong_equations": len(wrong), "n_arithmetic": n["a"],
                 "n_symbolic": n["s"], "first_wrong_step": text.count("\n", 0, wrong[0].pos) if wrong else None,
                 "wrong_equations": [e.src for e in wrong[:5]], "rel_error": None if rel is None else round(rel, 6),
                 "truncated": bool(truncated), "reasons": reasons + sorted(fmt) + ["wrong_equation"] * bool(wrong)}
    return p


def is_near_miss(p):
    """Wrong, answered, not absurd, and either numerically close (relative error <= NEAR_MISS_REL) or
    derailed by exactly one wrong equation (a single arithmetic / symbolic slip). Profile or to_dict()."""
    d = p if isinstance(p, dict) else p.to_dict()
    if d["correct"] or d["pred"] is None or d["absurdity"] > NEAR_MISS_MAX_ABSURDITY: return False
    return d["numeric_distance"] <= NEAR_MISS_DIST + 1e-9 or d.get("details", {}).get("n_wrong_equations") == 1


# ----------------------------------------------------------------------------- CLI
def _load(path, fld, ans_fld):
    recs = []
    with open(path, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            if not line.strip(): continue
            try: r = json.loads(line)
            except json.JSONDecodeError as e: sys.exit(f"error: {path}:{ln}: invalid JSON ({e.msg})")
            if not isinstance(r, dict): sys.exit(f"error: {path}:{ln}: expected a JSON object")
            for k, types, what in ((fld, str, "a string"), (ans_fld, (str, int, float), "a string or number"),
                                   ("question", (str, type(None)), "a string")):
                if k not in r and k != "question": sys.exit(f"error: {path}:{ln}: missing field '{k}'")
                if not isinstance(r.get(k), types) or isinstance(r.get(k), bool):
                    sys.exit(f"error: {path}:{ln}: field '{k}' must be {what}")
            recs.append(r)
    return recs


def _score(job):
    sol, ans, q, fr = job
    return profile(sol, ans, q, None if fr is None else fr == "length").to_dict()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Score math solutions with the rule + sympy MathVerifier.")
    ap.add_argument("input", help="JSONL file, one record per line")
    ap.add_argument("-o", "--output", help="output JSONL, written atomically (default: INPUT.scored.jsonl)")
    ap.add_argument("--field", default="completion", help="record field holding the solution text")
    ap.add_argument("--answer-field", default="answer", help="record field holding the reference answer")
    ap.add_argument("--workers", type=int, default=1, help="worker processes (1 = score in-process)")
    args = ap.parse_args(argv)
    if not os.path.isfile(args.input): sys.exit(f"error: {args.input}: no such file")
    out = args.output or re.sub(r"(\.jsonl)?$", ".scored.jsonl", args.input, count=1)
    recs = _load(args.input, args.field, args.answer_field)  # validate everything before writing anything
    from tqdm import tqdm
    jobs = [(r[args.field], r[args.answer_field], r.get("question"), r.get("finish_reason")) for r in recs]
    t0, tmp, pool = time.time(), out + ".tmp", None
    try:
        if args.workers > 1:
            import multiprocessing as mp
            pool = mp.Pool(args.workers)
        with open(tmp, "w", encoding="utf-8") as f:
            it = pool.imap(_score, jobs, chunksize=32) if pool else map(_score, jobs)
            for r, p in zip(recs, tqdm(it, total=len(jobs), desc="verify", disable=None)):
                r["profile"] = p
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        os.replace(tmp, out)  # never a partial output file
    finally:
        if pool: pool.terminate()
        if os.path.exists(tmp): os.remove(tmp)
    dt, n, ps = time.time() - t0, max(len(recs), 1), [r["profile"] for r in recs]
    print(f"scored {len(recs)} solutions -> {out} in {dt:.1f}s ({len(recs) / max(dt, 1e-9):.0f}/s)")
    print(f"accuracy {sum(p['correct'] for p in ps) / n:.4f} | no answer {sum(p['pred'] is None for p in ps)} | "
          f"wrongness {sum(p['wrongness'] for p in ps) / n:.3f} | absurdity {sum(p['absurdity'] for p in ps) / n:.3f}"
          f" | near-miss {sum(map(is_near_miss, ps))}")
    print(f"{'dimension':<17}{'nonzero':>8}{'mean':>7}   histogram: 0 | (0,.25] | (.25,.5] | (.5,.75] | (.75,1]")
    for d in DIMENSIONS + ("wrongness", "absurdity"):
        v = [p[d] for p in ps]
        hist = [sum(x == 0 for x in v)] + [sum(lo < x <= lo + 0.25 for x in v) for lo in (0, 0.25, 0.5, 0.75)]
        print(f"{d:<17}{sum(x > 0 for x in v):>8}{sum(v) / n:>7.3f}   " + " | ".join(map(str, hist)))


if __name__ == "__main__":
    main()
