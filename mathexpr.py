"""
mathexpr: the verifier's safe math kernel. A recursive-descent parser for the plain-text / LaTeX
expressions models write, exact evaluation with Fractions, approximate evaluation with complex floats,
and the Budget every verdict runs under (symbolic.py: sympy under bounds). Used by answers.py (answer
equivalence) and steps.py (step checks).

Model output is untrusted: nothing here eval()s or sympify()s text. The parser builds tuple ASTs;
sympy only ever sees ASTs built here. Every operation is bounded: token count, nesting depth, digits,
the size of every exact result (+ - * / ^ ! binom alike), and a per-call Budget (a monotonic-clock
deadline checked inside the evaluation loops, plus a count of sympy calls on small trees). No signals,
no threads, no timers: a call that runs out of budget answers None ("undecided"), it never hangs.

    from mathexpr import parse, same
    same(parse(r"\frac{1}{2}"), parse("0.5"))   # True
"""
import cmath, math, operator, random, re, time
from fractions import Fraction
from functools import lru_cache

# --- size bounds: anything beyond them is "undecided" (Undecided raised, the caller skips the claim)
MAX_ANSWER = 400        # characters of one answer; parse() accepts up to 4x this (one equation side)
MAX_TOKENS = 300        # tokens of one expression
MAX_DEPTH = 30          # bracket nesting
MAX_DIGITS = 400        # digits of one literal
MAX_EXP = 1000          # |exponent| of an exact power
MAX_BITS = 20_000       # numerator + denominator bits of every exact value (each + - * / ^ ! binom result)
CHECK_BITS = 2_000      # exact results bigger than this check the Budget's deadline (smaller ones cost ~1 us)
MAX_FACT = 300          # n! and binom(n, k) only for n <= 300
# --- time bounds: the work one profile() may do (verifier.py: PROFILE_SECONDS per solution)
MAX_SYMPY_CALLS = 3     # sympy calls per Budget


class Undecided(Exception):
    """Unparseable, too big or out of time: the caller skips it."""


class Inexact(Exception):
    """Not rational: try complex floats, then sympy."""


class Budget:
    """The work one verdict may do: a monotonic-clock deadline, checked inside the evaluation loops
    (every exact operation, every equation), and a count of sympy calls. Nothing interrupts a call:
    each bounded step checks the clock, so a verdict costs at most the deadline plus one bounded step."""

    def __init__(self, seconds=1.0, sympy_calls=MAX_SYMPY_CALLS):
        self.deadline = time.monotonic() + seconds
        self.sympy_calls = sympy_calls
        self.ran_out = False  # set when some check was skipped for lack of time

    def left(self):
        return self.deadline - time.monotonic()

    def expired(self):
        if time.monotonic() > self.deadline:
            self.ran_out = True
        return self.ran_out


# ----------------------------------------------------------------------------- parsing
_TOKEN = re.compile(r"\d+(?:\.\d+)?|\.\d+|\\[a-zA-Z]+|\\.?|[a-zA-Z]|\S")  # unknown tokens fail the parse
_NOISE = frozenset(r"\left \right \displaystyle \big \Big \bigl \bigr \Bigl \Bigr \bigg \Bigg \mathrm".split())
_FUNCS = frozenset("sin cos tan sec csc cot log ln exp arcsin arccos arctan".split())
_ATOM_START = frozenset("( { \\frac \\dfrac \\tfrac \\sqrt \\pi \\infty \\binom \\lfloor \\lceil".split()
                        + ["\\" + f for f in _FUNCS])
# (replacements are functions: Python 3.11 re-parses a template string like r"\1{\2}" on every sub() call)
_LATEX_FIX = [(re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)"), lambda m: rf"\frac{{{m[1]}}}{{{m[2]}}}"),  # \frac12
              (re.compile(r"\\[dt]?frac\s*(\d)\s*\{"), lambda m: rf"\frac{{{m[1]}}}{{"),        # \frac9{19}
              (re.compile(r"(\\frac\{[^{}]*\})\s*(\d)"), lambda m: f"{m[1]}{{{m[2]}}}"),       # \frac{270}7
              (re.compile(r"\\sqrt\s*(\d)"), lambda m: rf"\sqrt{{{m[1]}}}"),                    # \sqrt2
              (re.compile(r"(?<![\d.}^_])(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}(?!\s*\\frac)"),  # mixed 4\frac{5}{8}
               lambda m: f"({m[1]}+\\frac{{{m[2]}}}{{{m[3]}}})" if int(m[2]) < int(m[3]) else m[0]),
              (re.compile(r"(?<!\\)\b(sqrt|pi|sin|cos|tan|log|ln)\b"), lambda m: "\\" + m[1])]  # plain-text names
_UNI = str.maketrans({"×": "*", "÷": "/", "·": "*", "−": "-", "–": "-", "π": r" \pi ", "√": r"\sqrt "})
_BARE_NAME = re.compile(r"sqrt|pi|sin|cos|tan|log|ln")  # _LATEX_FIX[5] adds their backslash


def to_ascii(s):
    """s with the Unicode operators of _UNI spelled out; an ASCII text has none (translate is slow)."""
    return s if s.isascii() else s.translate(_UNI)
_TWO = ("n", Fraction(2), 0)
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")


@lru_cache(maxsize=8192)
def _number(t):
    """The node of a number token ('12', '3.5', '.5'); cached: the same numbers recur and Fraction() is slow."""
    if "." not in t:
        return ("n", Fraction(int(t)), 0)  # Fraction(int): its fast path, no gcd
    d = len(t) - t.index(".") - 1
    return ("n", Fraction(int(t.replace(".", "")), 10 ** d), d)


class _Parser:
    """expr := term (+|- term)*; term := unary (* | / | implicit) ...; unary := -unary | power;
    power := postfix [^ exponent]. Nodes: ('n', Fraction, decimals), ('v', name), ('c', 'pi'|'inf'),
    (op, a, b) for + - * / ^, ('neg', a), ('%', a), ('!', a), ('deg', a), ('root', a, k),
    ('binom', n, k), ('f', name, a)."""

    def __init__(self, toks, rad=False):
        self.t, self.i, self.depth, self.trig = toks + [None], 0, 0, int(rad)  # None ends the tokens

    def next(self, want=None):
        t = self.t[self.i]
        if t is None or (want is not None and t != want):
            raise Undecided
        self.i += 1
        return t

    def expr(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Undecided
        node = self.term()
        while (t := self.t[self.i]) in ("+", "-"):
            self.i += 1
            node = (t, node, self.term())
        self.depth -= 1
        return node

    def term(self):
        node = self.unary()
        while True:
            t = self.t[self.i]
            if t in ("*", r"\cdot", r"\times"):
                self.i += 1
                node = ("*", node, self.unary())
            elif t in ("/", r"\div"):
                self.i += 1
                node = ("/", node, self.unary())
            elif t is not None and (t in _ATOM_START or (len(t) == 1 and t.isalpha())):
                node = ("*", node, self.power())  # implicit: 2x, 2\sqrt2, (x-1)(x+1); never "3 4"
            else:
                return node

    def unary(self):
        t = self.t[self.i]
        if t in ("-", "+"):
            self.i += 1
            return ("neg", self.unary()) if t == "-" else self.unary()
        return self.power()

    def power(self):
        base = self.postfix()
        if self.t[self.i] != "^":
            return base
        self.i += 1
        # degrees are a unit (90^\circ - 60^\circ = 30) except inside trig arguments (\sin 30^\circ = 1/2)
        for pat in ([r"\circ"], ["{", r"\circ", "}"]):
            if self.t[self.i:self.i + len(pat)] == pat:
                self.i += len(pat)
                return ("deg", base) if self.trig else base
        return ("^", base, self.exponent())

    def exponent(self):  # right-associative: 2^3^2 = 2^9
        t = self.t[self.i]
        if t in ("-", "+"):
            self.i += 1
            return ("neg", self.exponent()) if t == "-" else self.exponent()
        e = self.postfix()
        return ("^", e, self.exponent()) if self.t[self.i] == "^" and self.next() else e

    def postfix(self):
        node = self.atom()
        while (t := self.t[self.i]) in ("!", "%", r"\%"):
            self.i += 1
            if t == "!" and self.t[self.i] == "!":
                raise Undecided  # double factorial: unsupported
            node = ("!" if t == "!" else "%", node)
        return node

    def group(self):  # a LaTeX argument: {expr} or one atom
        if self.t[self.i] != "{":
            return self.atom()
        self.i += 1
        e = self.expr()
        self.next("}")
        return e

    def atom(self):
        t = self.next()
        if t[0].isdigit() or t[0] == ".":
            if len(t) > MAX_DIGITS:
                raise Undecided
            return _number(t)
        if t.isalpha():
            if self.t[self.i] != "_":
                return ("v", t)
            self.i += 1  # subscripted variable: a_1, x_{n+1}
            s = self.next()
            if s == "{":
                parts = []
                while (u := self.next()) != "}":
                    parts.append(u)
                s = "".join(parts)
            return ("v", t + "_" + s)
        if t in ("(", "[", "{", "|"):
            e = self.expr()
            self.next({"(": ")", "[": "]", "{": "}", "|": "|"}[t])
            return ("f", "abs", e) if t == "|" else e
        if t in (r"\frac", r"\dfrac", r"\tfrac"):
            return ("/", self.group(), self.group())
        if t == r"\binom":
            return ("binom", self.group(), self.group())
        if t == r"\sqrt":
            k = _TWO
            if self.t[self.i] == "[":
                self.i += 1
                k = self.expr()
                self.next("]")
            return ("root", self.group(), k)
        if t in (r"\pi", r"\infty"):
            return ("c", t[1:3])
        if t in (r"\lfloor", r"\lceil"):
            e = self.expr()
            self.next(t.replace("\\l", "\\r"))
            return ("f", t[2:], e)
        if t[1:] not in _FUNCS:
            raise Undecided
        name, base, p = t[1:], None, None
        if name == "log" and self.t[self.i] == "_":
            self.i += 1
            base = self.group()
        if self.t[self.i] == "^":
            self.i += 1
            p = self.exponent()  # \sin^2 x
        if p == ("neg", ("n", 1, 0)) and name in ("sin", "cos", "tan"):
            name, p = "arc" + name, None
        self.trig += 1
        if self.t[self.i] == "(":
            arg = self.atom()
        else:  # \sin 2x is sin(2x)
            arg = self.power()
            while (u := self.t[self.i]) is not None and len(u) == 1 and u.isalpha():
                arg = ("*", arg, self.power())
        self.trig -= 1
        node = ("f", name, arg) if base is None else ("/", ("f", "ln", arg), ("f", "ln", base))
        return node if p is None else ("^", node, p)


@lru_cache(maxsize=8192)
def parse(s, rad=False):
    """String -> AST, or None if it is not a supported expression. rad: every x^\\circ in radians."""
    if len(s) > MAX_ANSWER * 4:
        return None
    s = to_ascii(s)
    if _PLAIN_NUMBER.fullmatch(s) and len(s) <= MAX_DIGITS:  # most equation sides: what atom() would build
        return _number(s)
    if len(s) == 1 and s.isalpha():  # a variable
        return ("v", s)
    if "\\" in s or "sqrt" in s or "pi" in s:  # cheap guards first: most text needs none of the fixes
        frac, sqrt = "frac" in s, "sqrt" in s  # (no fix adds or removes either)
        for k, (rx, rep) in enumerate(_LATEX_FIX[:5] if frac or sqrt else ()):
            if frac if k != 3 else sqrt:
                s = rx.sub(rep, s)
        if _BARE_NAME.search(s):
            s = _LATEX_FIX[5][0].sub(_LATEX_FIX[5][1], s)
    toks = _TOKEN.findall(s)
    if "\\" in s:  # every _NOISE token is a command
        toks = [t for t in toks if t not in _NOISE]
    if not toks or len(toks) > MAX_TOKENS:
        return None
    p = _Parser(toks, rad)
    try:
        node = p.expr()
        return node if p.i == len(toks) else None
    except (Undecided, RecursionError, ValueError):
        return None


# ----------------------------------------------------------------------------- evaluation
_BIN = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _root_exact(v, k):
    if not 2 <= k <= 10 or (v < 0 and k % 2 == 0):
        raise Inexact
    out = []
    for x in (abs(v.numerator), v.denominator):
        if x.bit_length() > 2000:
            raise Inexact
        r = math.isqrt(x) if k == 2 else round(x ** (1.0 / k))
        r = next((y for y in (r - 1, r, r + 1) if y >= 0 and y ** k == x), None)
        if r is None:
            raise Inexact
        out.append(r)
    return Fraction(out[0] if v >= 0 else -out[0], out[1])


def _fit(v, budget):
    """Every exact result passes here: a value too big to keep computing with fast is undecided, and
    so is any big one (> CHECK_BITS, where one operation starts to cost) once the deadline has passed."""
    bits = v.numerator.bit_length() + v.denominator.bit_length()
    if bits > MAX_BITS or (bits > CHECK_BITS and budget is not None and budget.expired()):
        raise Undecided
    return v


def exact(n, pct=100, budget=None):
    """Exact rational value; raises Inexact for pi, sqrt(2), variables, ... and Undecided for 9^9^9^9,
    for any intermediate result over MAX_BITS, or when the budget's deadline has passed."""
    op = n[0]
    if op == "n":
        return n[1]
    if op in _BIN:
        a, b = exact(n[1], pct, budget), exact(n[2], pct, budget)
        if op == "/" and b == 0:
            raise Undecided
        if op != "/" and a.denominator == 1 == b.denominator:  # integers: int arithmetic (Fraction's is 3x slower)
            return _fit(Fraction(_BIN[op](a.numerator, b.numerator)), budget)
        return _fit(_BIN[op](a, b), budget)
    if op == "neg":
        return -exact(n[1], pct, budget)
    if op == "%":
        return _fit(exact(n[1], pct, budget) / pct, budget)
    if op == "^":
        b, e = exact(n[1], pct, budget), exact(n[2], pct, budget)
        if e.denominator != 1:
            b, e = _root_exact(b, e.denominator), e.numerator
        size = (b.numerator.bit_length() + b.denominator.bit_length()) * abs(e)
        if abs(e) > MAX_EXP or size > MAX_BITS or (b == 0 and e < 0):
            raise Undecided  # refuse instead of computing
        return _fit(b ** int(e), budget)
    if op == "root":
        k = exact(n[2], pct, budget)
        if k.denominator != 1:
            raise Inexact
        return _root_exact(exact(n[1], pct, budget), int(k))
    if op in ("!", "binom"):
        a = exact(n[1], pct, budget)
        b = exact(n[2], pct, budget) if op == "binom" else a
        if a.denominator != 1 or b.denominator != 1 or not 0 <= b <= a <= MAX_FACT:
            raise Undecided
        return Fraction(math.factorial(int(a)) if op == "!" else math.comb(int(a), int(b)))
    if op == "f" and n[1] in ("abs", "floor", "ceil"):
        v = exact(n[2], pct, budget)
        return abs(v) if n[1] == "abs" else Fraction(math.floor(v) if n[1] == "floor" else math.ceil(v))
    raise Inexact


_CFUN = {"sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "log": cmath.log, "ln": cmath.log, "exp": cmath.exp,
         "arcsin": cmath.asin, "arccos": cmath.acos, "arctan": cmath.atan, "sec": lambda z: 1 / cmath.cos(z),
         "csc": lambda z: 1 / cmath.sin(z), "cot": lambda z: 1 / cmath.tan(z), "abs": abs,
         "floor": lambda z: math.floor(z.real), "ceil": lambda z: math.ceil(z.real)}


def approx(n, env):
    """Complex float value at a variable assignment: the fast path for sqrt / pi / trig / variables."""
    op = n[0]
    if op == "n":
        return complex(n[1].numerator / n[1].denominator)  # int / int: correctly rounded, fast
    if op == "v":
        return env[n[1]]
    if op == "c":
        return complex(math.pi if n[1] == "pi" else math.inf)
    if op in _BIN:
        return _BIN[op](approx(n[1], env), approx(n[2], env))
    if op == "^":
        a, b = approx(n[1], env), approx(n[2], env)
        if abs(b) > 1e4 and abs(a) != 1:
            raise Undecided
        return a ** b
    if op in ("neg", "%", "deg"):
        return approx(n[1], env) * {"neg": -1, "%": 0.01, "deg": math.pi / 180}[op]
    if op == "root":
        a, k = approx(n[1], env), approx(n[2], env)
        if a.imag == 0 and a.real < 0 and k == round(k.real) and round(k.real) % 2:  # real odd root
            return -((-a.real) ** (1 / k.real))
        return a ** (1 / k)
    if op == "f":
        return complex(_CFUN[n[1]](approx(n[2], env)))
    return complex(exact(n))  # '!' and binom: bounded integers


def free_vars(n, acc=None):
    """The variable names of an AST (a set)."""
    acc = set() if acc is None else acc
    if n[0] == "v":
        acc.add(n[1])
    elif n[0] not in ("n", "c"):
        for x in n[1:]:
            if isinstance(x, tuple) and x[0] != "n":  # (no call for a number leaf: most leaves are)
                free_vars(x, acc)
    return acc


_RNG = random.Random(1234)
_POINTS = [[_RNG.uniform(0.6, 1.9) for _ in range(12)] for _ in range(3)]


def same(a, b, tol=0, budget=None):
    """True / False / None (undecided). Exact for rationals, else complex floats compared at 3 fixed
    random points (a probabilistic identity test, relative tolerance 1e-9)."""
    try:
        return abs(exact(a, 100, budget) - exact(b, 100, budget)) <= tol
    except Inexact:
        pass
    except (Undecided, ZeroDivisionError, OverflowError, ValueError):
        return None
    names = sorted(free_vars(a) | free_vars(b))
    if len(names) > 12:
        return None
    try:
        for pt in _POINTS if names else _POINTS[:1]:
            env = dict(zip(names, pt))
            x, y = approx(a, env), approx(b, env)
            if x == y:
                continue
            if cmath.isnan(x) or cmath.isnan(y):
                return None
            if cmath.isinf(x) or cmath.isinf(y) or abs(x - y) > max(float(tol), 1e-9 * max(1, abs(x), abs(y))):
                return False
        return True
    except (Undecided, Inexact, ZeroDivisionError, OverflowError, ValueError, TypeError, KeyError):
        return None
