"""
symbolic: the verifier's slow path, sympy under bounds, on the tuple ASTs mathexpr.parse builds (never on text).
sympy_same: rational-function identity (together + cancel); wrong_identity: a botched expansion or factorisation.
Every call is spent from the caller's mathexpr.Budget: small trees only, bounded degrees and exact sizes, and only
while enough of the deadline is left; anything else answers None ("undecided").
"""
from fractions import Fraction

from mathexpr import _BIN, MAX_BITS, MAX_EXP, Undecided, exact, free_vars

# --- bounds of what sympy is handed (MAX_SYMPY_CALLS per Budget lives in mathexpr.py, with the Budget)
MAX_SYMPY_NODES = 40    # AST nodes handed to sympy (polynomial arithmetic on trees this small: milliseconds)
SYMPY_MIN_LEFT = 0.25   # seconds: sympy is called only with at least this much of the deadline left
MAX_POLY_DEGREE = 12    # polynomial identities: total degree bound (also bounds sympy's expand)


def _to_sympy(n, sp):
    op = n[0]
    if op == "n":
        return sp.Rational(n[1].numerator, n[1].denominator)
    if op == "v":
        return sp.Symbol(n[1])
    if op == "c":
        return sp.pi if n[1] == "pi" else sp.oo
    if op in ("!", "binom"):
        return sp.Integer(int(exact(n)))  # bounded by exact
    a, b = (_to_sympy(x, sp) if isinstance(x, tuple) else x for x in (n[1:] + (None,))[:2])
    if op in _BIN:
        return _BIN[op](a, b)
    if op == "^":
        if b.is_Number and (abs(b) > MAX_EXP or a.is_Rational and
                            (a.p.bit_length() + a.q.bit_length()) * abs(b) > MAX_BITS):
            raise Undecided
        if not a.is_Number and (not b.is_Number or abs(b) > MAX_POLY_DEGREE):
            raise Undecided  # x^{100}, x^y
        return a ** b
    if op == "root":
        return sp.root(a, b)
    if op in ("neg", "%", "deg"):
        return a * {"neg": -1, "%": sp.Rational(1, 100), "deg": sp.pi / 180}[op]
    return {"sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "sec": sp.sec, "csc": sp.csc, "cot": sp.cot, "log": sp.log,
            "ln": sp.log, "exp": sp.exp, "arcsin": sp.asin, "arccos": sp.acos, "arctan": sp.atan, "abs": sp.Abs,
            "floor": sp.floor, "ceil": sp.ceiling}[a](b)  # ('f', name, arg)


def _size(n):  # AST nodes
    return 1 + sum(_size(x) for x in n[1:] if isinstance(x, tuple))


def _sympy_call(fn, budget, *trees, first=None):
    """fn(sympy) within the budget: a call is spent only on small trees (<= MAX_SYMPY_NODES nodes,
    symbolic powers <= MAX_POLY_DEGREE, exact sizes bounded as everywhere) and only while at least
    SYMPY_MIN_LEFT seconds of the deadline remain. No signal or thread interrupts it: the bounds on
    its input are what keep it short. None on any failure: undecided, never a crash.
    first(): an exact stand-in tried before sympy (same answer, ~100x cheaper; sympy's first arithmetic
    also loads modules for ~20 ms); it raises where only sympy can answer. It spends the call all the
    same, so which of the two answered never changes how many checks a verdict may still make."""
    if budget is None or budget.sympy_calls <= 0 or budget.left() < SYMPY_MIN_LEFT:
        return None
    if sum(_size(t) for t in trees) > MAX_SYMPY_NODES:
        return None
    budget.sympy_calls -= 1
    if first is not None:
        try:
            return first()
        except Exception:
            pass  # not a plain polynomial: sympy decides
    import sympy
    try:
        return fn(sympy)
    except Exception:
        return None


def _has_op(n, ops):
    return n[0] in ops or any(isinstance(x, tuple) and _has_op(x, ops) for x in n[1:])


def sympy_same(a, b, budget):
    """Rational-function identity by polynomial arithmetic (together + cancel): the float check's
    blind spot is a removable singularity, not simplification. Trees with functions, roots or
    constants are left undecided: general simplify() has no bound on its running time."""
    if _has_op(a, ("f", "root", "c", "deg")) or _has_op(b, ("f", "root", "c", "deg")):
        return None
    def f(sp):
        d = sp.cancel(sp.together(_to_sympy(a, sp) - _to_sympy(b, sp)))
        return True if d == 0 else (False if d.is_number and d != 0 else None)
    return _sympy_call(f, budget, a, b)


def _deg(n):  # polynomial degree bound of an AST, None when not a polynomial
    op, sub = n[0], [_deg(x) for x in n[1:3] if isinstance(x, tuple)]
    if op in ("n", "c") or not free_vars(n):
        return 0
    if op == "v":
        return 1
    if None in sub:
        return None
    if op in ("+", "-", "neg", "%"):
        return max(sub)
    if op == "*":
        return sum(sub)
    if op == "/":
        return None if free_vars(n[2]) else sub[0]
    if op == "^" and n[2][0] == "n" and n[2][1].denominator == 1 and 0 <= n[2][1] <= MAX_POLY_DEGREE:
        return sub[0] * int(n[2][1])
    return None


def _is_factored(n):  # (x+1)^2, -2(x-3)(x+1): a product or power with a sum inside
    while n[0] == "neg":
        n = n[1]
    return n[0] in ("*", "^") and _has_op(n, ("+", "-"))


class _NotPoly(Exception):
    """Outside _poly's exact subset: sympy decides."""


def _poly(n):
    """The polynomial an AST spells, over the rationals, with no sympy: {((name, power), ...): Fraction}
    (zero terms dropped). Only + - * / neg % and integer powers (of a variable base: 0..MAX_POLY_DEGREE, the
    bound _deg applies; of a constant: what exact() allows); anything else raises (then sympy decides)."""
    op = n[0]
    if op == "n":
        return {(): n[1]} if n[1] else {}
    if op == "v":
        return {((n[1], 1),): Fraction(1)}
    if op in ("+", "-"):
        out = dict(_poly(n[1]))
        for m, c in _poly(n[2]).items():
            out[m] = out.get(m, 0) + (c if op == "+" else -c)
        return {m: c for m, c in out.items() if c}
    if op in ("neg", "%"):
        k = -1 if op == "neg" else Fraction(1, 100)
        return {m: c * k for m, c in _poly(n[1]).items()}
    if op == "*":
        return _pmul(_poly(n[1]), _poly(n[2]))
    if op == "/":
        d = _poly(n[2])
        if set(d) != {()}:  # a variable or zero denominator
            raise _NotPoly
        return {m: c / d[()] for m, c in _poly(n[1]).items()}
    if op == "^":
        base = _poly(n[1])
        if set(base) <= {()}:  # a constant to an integer power: what exact() computes, within its bounds
            e = _poly(n[2])  # (not a root: sympy's (-8)^(1/3) is complex, exact()'s is -2)
            if not set(e) <= {()} or e.get((), 0).denominator != 1:
                raise _NotPoly
            return _poly(("n", exact(n), 0))
        e = n[2]
        if e[0] != "n" or e[1].denominator != 1 or not 0 <= e[1] <= MAX_POLY_DEGREE:
            raise _NotPoly
        out = {(): Fraction(1)}
        for _ in range(int(e[1])):
            out = _pmul(out, base)
        return out
    raise _NotPoly


def _pmul(p, q):
    out = {}
    for m1, c1 in p.items():
        for m2, c2 in q.items():
            pw = dict(m1)
            for v, k in m2:
                pw[v] = pw.get(v, 0) + k
            m = tuple(sorted(pw.items()))
            out[m] = out.get(m, 0) + c1 * c2
    return {m: c for m, c in out.items() if c}


def _tdeg(p):  # total degree; -1 for the zero polynomial (sympy's -oo: below every degree)
    return max((sum(k for _, k in m) for m in p), default=-1)


def _poly_wrong(a, b):
    """wrong_identity's sympy answer, exactly, for polynomials _poly reads (b's names among a's, as sympy's
    Poly(b, *names of a) needs for the same degrees; a needs one)."""
    if not free_vars(a) or not free_vars(b) <= free_vars(a):  # sympy's Poly() needs a generator
        raise _NotPoly
    pa, pb = _poly(a), _poly(b)
    d = {m: c for m in pa.keys() | pb.keys() if (c := pa.get(m, 0) - pb.get(m, 0))}
    return False if not d else _tdeg(d) < max(_tdeg(pa), _tdeg(pb))


def wrong_identity(a, b, budget):
    """Same variables on both sides, and they differ. Flag only a botched expansion/factorisation: a
    factored side = an expanded sum, polynomials whose leading terms agree (deg(a - b) < max degree),
    e.g. (x+1)^2 = x^2+1. Equations being solved (2x+3 = 5x-6, x^2 = 4x, x^2+2 = x^2+4x+4) are not
    flagged, nor ones whose variable profile() sees solved for later."""
    da, db = _deg(a), _deg(b)
    if da is None or db is None or max(da, db) > MAX_POLY_DEGREE or len(free_vars(a)) > 4:
        return None
    if not ((_is_factored(a) and b[0] in "+-") or (_is_factored(b) and a[0] in "+-")):
        return None
    def f(sp):
        syms = [sp.Symbol(s) for s in sorted(free_vars(a))]
        pa, pb = sp.Poly(_to_sympy(a, sp), *syms), sp.Poly(_to_sympy(b, sp), *syms)
        d = pa - pb
        return False if d.is_zero else d.total_degree() < max(pa.total_degree(), pb.total_degree())
    return _sympy_call(f, budget, a, b, first=lambda: _poly_wrong(a, b))
