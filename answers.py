"""
answers: a solution's final answer and its equivalence to the reference, the way a careful human grader
reads them. extract() finds the answer (marker sentences, \\boxed, GSM8K '####', closing sentences),
canon() strips cosmetics (LaTeX wrappers, units, text, thousands separators, 'x ='), answers_match()
compares structures (scalars, tuples, intervals, sets, matrices, several answers) with mathexpr's
exact / numeric / sympy checks; form_ok() holds an answer to the form its question asks for.
Rules and examples: docs/verifier.md.

    from answers import answers_match, extract_answer
    answers_match(r"\frac{1}{2}", "0.5")                 # True
    extract_answer("... The final answer is 9. I hope it is correct.")   # '9'
"""
import math, re
from fractions import Fraction
from functools import lru_cache

ANSWER_SECONDS = 1.0  # default deadline of one answers_match() call

from mathexpr import MAX_ANSWER, Budget, Inexact, Undecided, approx, free_vars, parse, same
from symbolic import sympy_same

# (?=[tf#]): the characters a match starts with, tested fast at every position (3x faster than \b first)
_MARKER = re.compile(r"(?=[tf#])(?:\b(?:the (?:final )?answer is\b|final answer\b(?:\*\*)?\s*:)|####)", re.I)
_LEAD = re.compile(r"[ \t:*]*(?:\n[ \t]*){0,2}")   # between a marker and its answer: ':', '**', <= 2 line breaks
_SENTENCE_END = re.compile(r"\.(?=\s|$)|\s+I hope\b")  # '9. I hope it is correct.'; '3.5' is not an end
_GROUPS = [("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"), ("**", "**")]
_BOX = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_BOX_GAP = re.compile(r"[\s$,;]*(?:,|\band\b|\bor\b)[\s$,;]*(?:[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*)?[\s$]*")  # ', ' 'or x ='
_CANDIDATE = re.compile(r"\d|\\(?:frac|sqrt|pi|infty)|^\s*\\text\{\(?[A-E]\)?\}\s*$")  # a value, not a bare letter
_OPEN_OR_END = re.compile(r"[$*\\]|[.!?](?=\s|$)")
_PLAIN_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?%?")
_REPL = [(r"\dfrac", r"\frac"), (r"\tfrac", r"\frac"), ("~", " "), ("{,}", ""), (r"\cfrac", r"\frac"),
         (r"\varnothing", r"\emptyset"), ("infinity", r"\infty"), (r"\infin ", r"\infty "), (" percent", "%"), (r"\$", ""), ("$", ""),
         ("^{\\circ}", ""), (r"^\circ", ""), (r"\circ", ""), ("°", ""), (r"\degree", ""), (r"\%", "%"),
         ("\\displaystyle", "")]
# LaTeX spacing; "10,\!000" keeps its comma ((?=...): the first characters, tested fast at every position)
_SPACING = re.compile(r"(?=[,\\])(?:,\\!\s*(?=\d)|(?<!\\)\\[,;:! ])")
_LR = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)[lr]?(?![a-zA-Z])")
_TEXTCMD = re.compile(r"\\(?:text|textbf|textit|textrm|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")
_UNIT_WORD = re.compile(r"[a-zA-Z]{2,}\.?(?:\^\{?[23]\}?)?|\^\{?[23]\}?")
# a leading name: 'x =', 'a_1 =', '(p, q) =', 'f(x) =', 'x \in'
_VAR_EQ = re.compile(r"^(?:[a-zA-Z](?:_\{?\w+\}?)?|\(\s*[a-zA-Z](?:\s*,\s*[a-zA-Z])+\s*\)|[a-zA-Z]\([a-zA-Z]\))"
                     r"\s*(?:=|\\in\b)\s*")
_UNI_ANS = str.maketrans({"−": "-", "–": "-", "≤": r"\le ", "≥": r"\ge ", "∞": r"\infty ", "∅": r"\emptyset ",
                          "π": r"\pi ", "√": r"\sqrt ", "×": r"\times ", "·": r"\cdot "})
_DEC_COMMA = re.compile(r"(\d)\{,\}(\d+)")  # LaTeX {,}: thousands before 3 digits, else a decimal comma
_REL_CANON = {"<=": r"\le", r"\leq": r"\le", r"\leqslant": r"\le", r"\le": r"\le", ">=": r"\ge", r"\geq": r"\ge",
              r"\geqslant": r"\ge", r"\ge": r"\ge", r"\lt": "<", r"\gt": ">"}
_REL_SPELLING = re.compile(r"<\s*=|>\s*=|\\(?:leqslant|geqslant|leq|geq|le|ge|lt|gt)(?![a-zA-Z])")
_JOINED = re.compile(r"\s(?:or|and)\s")
_RELATION = re.compile(r"<|>|\\le(?![a-zA-Z])|\\ge(?![a-zA-Z])")
_INEQ = re.compile(r"[^<>=]+(?:(?:<|>|\\le|\\ge)[^<>=]+){1,2}")
_INEQ_SPLIT = re.compile(r"(<|>|\\le(?![a-zA-Z])|\\ge(?![a-zA-Z]))")
_ONE_VAR = re.compile(r"[a-zA-Z](?:_\{?\w+\}?)?")
_FLIP = {"<": ">", ">": "<", r"\le": r"\ge", r"\ge": r"\le"}
_SPACE_THOUSANDS = re.compile(r"-?\d{1,3}(?: \d{3})+(?:\.\d+)?")  # '400 000'
_NOT_UNITS = {"or", "and", "dozen", "hundred", "thousand", "million", "billion", "trillion", "pi", "i"}
_NUMBER_WORDS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve "
                                            "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty".split())}
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?")
_MATRIX = re.compile(r"\\begin\{(?:[pbvBV]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{(?:[pbvBV]?matrix|array)\}", re.S)
_SIGNED_NUMBER = re.compile(r"-?\d{1,300}(?:\.\d{1,300})?")
_DEC_LITERAL = re.compile(r"-?\d*\.(\d+)")
_WORDY = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}")


def _brace(s, j):
    """Content of the {...} group opening at s[j] (nested braces), or None."""
    depth = 0
    for k in range(j, min(len(s), j + 5000)):
        depth += (s[k] == "{") - (s[k] == "}")
        if depth == 0:
            return s[j + 1:k]
    return None


def _boxes(s):
    r"""(start, end, content) of every \boxed{...} / \fbox{...} / '\boxed 5' in s, in order."""
    out, i = [], 0
    while (m := _BOX.search(s, i)):
        j = m.end()
        while j < len(s) and s[j] == " ":
            j += 1
        if j < len(s) and s[j] == "{":
            c = _brace(s, j)
            if c is None:
                break
            out.append((m.start(), j + len(c) + 2, c))
        elif n := re.match(r"[^\s$]+", s[j:j + 100]):
            out.append((m.start(), j + n.end(), n.group()))
        i = max(m.end(), out[-1][1] if out else 0)
    return out


def _last_boxed(s):
    b = _boxes(s)
    return (b[-1][2], b[-1][0]) if b else (None, -1)


def _boxed_answer(s):
    r"""The last box, joined with the boxes right before it when only 'and' / 'or' / commas separate
    them ('$\boxed{2}$ and $\boxed{-3}$' is the answer set 2, -3). (answer, start, end) or None."""
    b = _boxes(s)
    if not b:
        return None
    k = len(b) - 1
    while k > 0 and _BOX_GAP.fullmatch(s[b[k - 1][1]:b[k][0]]):
        k -= 1
    return ", ".join(x[2] for x in b[k:]), b[k][0], b[-1][1]


def _group_at(s, j):
    r"""A math / bold group opening at s[j] ('$$..$$', '\[..\]', '\(..\)', '$..$', '**..**', '\boxed{..}'):
    (content, end) or None."""
    for op, cl in _GROUPS:
        if s.startswith(op, j):
            e = s.find(cl, j + len(op), j + MAX_ANSWER * 4)
            while e > 0 and cl == "$" and s[e - 1] == "\\":  # '$\$1{,}200$': an escaped dollar is not the end
                e = s.find(cl, e + 1, j + MAX_ANSWER * 4)
            return (s[j + len(op):e], e + len(cl)) if e > 0 else None
    if _BOX.match(s, j) and (b := _boxes(s[j:j + MAX_ANSWER * 4])):
        return b[0][2], j + b[0][1]
    return None


def _after_marker(s, k):
    r"""The answer written after a marker that ends at s[k]: a math or bold group when one opens on the
    same or the next line ('The final answer is\n\[ M \]'), else the rest of the line up to the end of
    its sentence ('9. I hope it is correct.' -> '9'). (answer, end) or (None, k)."""
    j = _LEAD.match(s, k).end()
    if (g := _group_at(s, j)) is not None:
        return _clean_pred(g[0]), g[1]
    line = s[j:j + MAX_ANSWER * 4].split("\n", 1)[0]
    line = line[:m.start()] if (m := _SENTENCE_END.search(line)) else line
    return _clean_pred(line), j + len(line)


def _clean_pred(s):
    if s and (r"\boxed" in s or r"\fbox" in s):
        s = _last_boxed(s)[0] or s
    s = (s or "").strip().strip("*").strip().rstrip(".").strip()
    for op, cl in _GROUPS[:4]:  # '$5$', '\(5\)' left around the answer
        if len(s) > len(op) + len(cl) and s.startswith(op) and s.endswith(cl):
            s = s[len(op):-len(cl)].strip()
    s = s.rstrip(".").strip()
    return s[:1000] or None


def _closing_sentence(s):
    r"""No marker and no box: the answer a reader takes from the closing sentence ('Therefore, the
    rope is 20 centimeters.', 'So the area is $75$ square units.', 'the remainder is **0**.'). Only when
    the text ends like a finished sentence; the last sentence of the last paragraph holding a candidate
    wins; in it, bold beats math beats a plain number, and an equation gives its last side."""
    tail = s[-3000:].rstrip()
    if not tail or tail[-1] not in ".!)]}$*":
        return None  # unfinished (truncated) text: no answer
    off = len(s) - len(s[-3000:])
    para_start = max(tail.rfind("\n\n"), 0)
    spans, j = [], para_start  # math / bold groups of the last paragraph; sentences split outside them
    cuts = [para_start]
    while m := _OPEN_OR_END.search(tail, j):  # jump from one group opener / sentence end to the next
        j = m.start()
        if tail[j] in "$*\\":
            if (g := _group_at(tail, j)) is not None and g[0].strip():
                spans.append((j, g[1], g[0]))
                j = g[1]
                continue
        else:
            cuts.append(j + 1)
        j += 1
    cuts.append(len(tail))
    for a, b in reversed(list(zip(cuts, cuts[1:]))):
        inside = [x for x in spans if a <= x[0] < b]
        bold = [x for x in inside if tail.startswith("**", x[0])]
        math_ = [x for x in inside if not tail.startswith("**", x[0]) and _CANDIDATE.search(x[2])]
        for x in (bold or math_)[::-1]:
            cand = _last_side(x[2])
            if _CANDIDATE.search(cand):
                return _clean_pred(cand), off + x[0], off + x[1]
        plain = tail[a:b]
        for x in inside:
            plain = plain[:x[0] - a] + " " * (x[1] - x[0]) + plain[x[1] - a:]
        nums = list(_PLAIN_NUMBER.finditer(plain))
        if nums:
            m = nums[-1]
            return m.group().strip("$").rstrip(".,"), off + a + m.start(), off + a + m.end()
    return None


def _last_side(s):
    """'AB = 10' -> '10'; 'x = 5 = 2 + 3' -> '2 + 3'; top-level '=' only."""
    depth, last = 0, 0
    for k, ch in enumerate(s):
        depth += (ch in "([{") - (ch in ")]}")
        if ch == "=" and depth == 0:
            last = k + 1
    return s[last:].strip()


def ends_in_loop(solution, repeats=3):
    """True when the last `repeats` non-empty lines are the same line up to their numbers ('... 15 - 3 = 12'
    three times): a model stuck in a repetition loop, whose last number is no conclusion."""
    lines = [x for x in map(str.strip, solution.split("\n")) if x][-repeats:]
    return len(lines) >= repeats and len({re.sub(r"\d+", "#", x) for x in lines}) == 1


def extract(solution, closing=True):
    r"""(answer, start, end): the final answer and where it is written. Whichever comes last of a marker
    sentence ('The [final] answer is X', 'Final Answer: X', '#### X') and the last \boxed{} (several
    adjacent boxes: the set of them); failing both, the closing sentence. (None, -1, -1) if none."""
    low = solution.lower()  # the substring tests first: the regex scans slowly (no literal prefix)
    found = list(_MARKER.finditer(solution)) if "answer" in low or "####" in solution else []
    for m in reversed(found):
        a, end = _after_marker(solution, m.end())
        if a:
            found = (a, m.start(), end)
            break
    else:
        found = None
    box = _boxed_answer(solution)
    if box and (found is None or box[1] >= found[1]):
        a = _clean_pred(box[0])
        if a:
            found = (a, box[1], box[2])
    # closing=False: a text cut off by a length limit; a text that ends in a loop never concluded either
    if found is None and closing and not ends_in_loop(solution):
        found = _closing_sentence(solution)
    return found if found else (None, -1, -1)


def extract_answer(solution):
    """Final answer of a solution ('The answer is: X' / '#### X' / last \\boxed{X} / closing sentence), or None."""
    return extract(solution or "")[0]


@lru_cache(maxsize=8192)
def canon(s):
    """Cosmetics of one answer: \\boxed, $, \\left, spacing, degrees, \\text and unit words ('18 dollars',
    '5\\text{ cm}^2'), decimal commas and thousands separators, number words, relation spellings,
    a leading 'x =' / '(p, q) =' / 'f(x) =', the last side of a chain 'x = 2 + 3 = 5', a trailing period."""
    s = s.strip()[:MAX_ANSWER]
    if r"\boxed" in s or r"\fbox" in s:
        s = _last_boxed(s)[0] or s
    s = s if s.isascii() else s.translate(_UNI_ANS)  # each step below only where it can apply (cheap tests)
    if "{,}" in s:
        s = _DEC_COMMA.sub(lambda m: m[1] + ("" if len(m[2]) == 3 else ".") + m[2], s)  # 10{,}000 / 3{,}5
    if "\\" in s:
        s = _SPACING.sub(lambda m: "," if m.group()[0] == "," else " ", s)
    for a, b in _REPL:
        s = s.replace(a, b)
    if "\\" in s or "<" in s or ">" in s:
        s = _REL_SPELLING.sub(lambda m: _REL_CANON["".join(m.group().split())], s)
    if "\\" in s:
        s = _TEXTCMD.sub(lambda m: f" {m[1]} ", _LR.sub("", s))
    s = s.strip().rstrip(".").strip()
    if s.lower() in _NUMBER_WORDS:
        return str(_NUMBER_WORDS[s.lower()])
    s = _VAR_EQ.sub("", s)
    if "=" in s and "," not in s and not _RELATION.search(s) and not _JOINED.search(s):
        s = _last_side(s) or s  # 'x = 2 + 3 = 5' -> '5'
    s = _SPACE_THOUSANDS.sub(lambda m: m.group().replace(" ", ""), s) if _SPACE_THOUSANDS.fullmatch(s) else s
    parts = s.split()
    while len(parts) > 1 and _UNIT_WORD.fullmatch(parts[-1]) and parts[-1].lower() not in _NOT_UNITS:
        parts.pop()
    s = " ".join(parts) if len(parts) < len(s.split()) and parts[-1][-1] in "0123456789}).%" else s
    return _interval(s) or s


def _interval(s):
    """A one-variable inequality as an interval: 'x > 3' and '3 < x' -> '(3,\\infty)', '2 \\le x < 5' ->
    '[2,5)'; several joined by 'or' -> a union. None when s is not one."""
    if " or " in s or r"\cup" in s:
        parts = [_interval(p.strip()) for p in re.split(r"\s+or\s+|\\cup", s)]
        return r" \cup ".join(parts) if all(parts) else None
    m = _INEQ.fullmatch(s)
    if not m or "=" in s.replace(r"\le", "").replace(r"\ge", ""):
        return None
    toks = [t.strip() for t in _INEQ_SPLIT.split(s)]
    if len(toks) == 3:
        a, rel, b = toks
        if _ONE_VAR.fullmatch(b):
            a, b, rel = b, a, _FLIP[rel]  # '3 < x' is 'x > 3'
        if not _ONE_VAR.fullmatch(a) or _ONE_VAR.fullmatch(b):
            return None
        if rel in ("<", r"\le"):
            return f"(-\\infty,{b}{')' if rel == '<' else ']'}"
        return f"{'(' if rel == '>' else '['}{b},\\infty)"
    if len(toks) == 5 and _ONE_VAR.fullmatch(toks[2]) and toks[1] in ("<", r"\le") and toks[3] in ("<", r"\le"):
        return f"{'(' if toks[1] == '<' else '['}{toks[0]},{toks[4]}{')' if toks[3] == '<' else ']'}"
    if len(toks) == 5 and _ONE_VAR.fullmatch(toks[2]) and toks[1] in (">", r"\ge") and toks[3] in (">", r"\ge"):
        return f"{'(' if toks[3] == '>' else '['}{toks[4]},{toks[0]}{')' if toks[1] == '>' else ']'}"
    return None


def _split_top(s):
    """Top-level comma split; also whether the first bracket closes exactly at the end."""
    out, depth, cur, closes_at = [], 0, [], None
    for k, ch in enumerate(s):
        depth += (ch in "([{") - (ch in ")]}")
        if depth == 0 and closes_at is None and ch in ")]}":
            closes_at = k
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    return out + ["".join(cur).strip()], closes_at == len(s) - 1


def _structure(s):
    """('scalar', s) | ('seq', open, close, items): ordered | ('set' | 'list', items): unordered."""
    s = canon(s)
    if s[:1] in "([" and s[-1:] in ")]" and s[1:].lstrip().startswith("\\begin{"):
        s = s[1:-1].strip()  # \left( M \right)
    if m := _MATRIX.fullmatch(s):
        rows = [("seq", "(", ")", [_structure(c) for c in r.split("&")]) for r in m.group(1).split(r"\\")]
        return rows[0] if len(rows) == 1 else ("seq", "(", ")", rows)
    if r"\cup" in s:
        return ("set", [_structure(p) for p in s.split(r"\cup")])
    if s.startswith(r"\{") and s.endswith(r"\}"):
        items = [_structure(x) for x in _split_top(s[2:-2].replace(r"\{", "{").replace(r"\}", "}"))[0] if x]
        return items[0] if len(items) == 1 else ("set", items)
    if len(s) > 2 and s[0] in "([" and s[-1] in ")]":
        items, whole = _split_top(s)
        if whole and len(items := _split_top(s[1:-1])[0]) >= 2:
            return ("seq", s[0], s[-1], [_structure(x) for x in items])
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    items = _split_top(s)[0]
    if len(items) < 2:
        items = [x for x in re.split(r"\s+(?:or|and)\s+", s) if x]
    if len(items) >= 2:
        return ("list", [_structure(x) for x in items])
    if s.count(r"\pm") == 1:
        return ("list", [("scalar", s.replace(r"\pm", c)) for c in "+-"])
    return ("scalar", s)


def compact(s):
    return re.sub(r"\s+", "", s).lower()


def decimals(s):  # digits after the point if s is a plain decimal literal, else None
    m = _DEC_LITERAL.fullmatch(s) if "." in s else None
    return len(m.group(1)) if m else None


def _scalar_eq(a, b, budget):
    if a == b or compact(a) == compact(b):
        return True
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
    if pa != pb:
        options.append((("%", na), nb) if pa else (na, ("%", nb)))
    for x, y in options:
        r = same(x, y, tol, budget)
        if r or (r is None and sympy_same(x, y, budget)):
            return True
    return False


def _struct_eq(A, B, budget):
    if A[0] == "scalar" and B[0] == "list":
        A, B = B, A
    if A[0] == "list" and B[0] == "scalar":  # one answer written twice: '\boxed{15\frac{39}{40}}, \boxed{\frac{639}{40}}'
        return len(A[1]) <= 4 and all(_struct_eq(x, B, budget) for x in A[1])
    if A[0] == "scalar" or B[0] == "scalar":
        return A[0] == B[0] and _scalar_eq(A[1], B[1], budget)
    ia, ib, kinds = A[-1], B[-1], {A[0], B[0]}
    if len(ia) != len(ib) or len(ia) > 30 or kinds == {"set", "seq"}:
        return False
    if kinds == {"seq"} and A[1:3] != B[1:3]:
        return False  # [1,2) != (1,2)
    if "seq" in kinds:
        return all(_struct_eq(x, y, budget) for x, y in zip(ia, ib))  # a tuple, in order
    free = list(ib)  # unordered: greedy multiset matching
    for x in ia:
        k = next((k for k, y in enumerate(free) if _struct_eq(x, y, budget)), None)
        if k is None:
            return False
        free.pop(k)
    return True


def answers_match(reference, candidate, budget=None):
    """Mathematical equivalence of a candidate final answer to the reference (rules: docs/verifier.md).
    budget: a mathexpr.Budget shared with the caller's other checks (default: a fresh 1 s one)."""
    if reference is None or candidate is None:
        return False
    reference, candidate = str(reference).strip(), str(candidate).strip()
    if reference == candidate:
        return bool(reference)
    if max(len(reference), len(candidate)) > MAX_ANSWER:
        return compact(reference) == compact(candidate)
    try:
        return _struct_eq(_structure(reference), _structure(candidate), budget or Budget(ANSWER_SECONDS))
    except (RecursionError, ValueError, Undecided):
        return compact(reference) == compact(candidate)


# the form a question asks for, which a careful grader holds an equal value to
_ASKS_FRACTION = re.compile(r"(?=[csf])(?:common fraction|simplest radical form|fraction in (?:simplest|lowest) "
                            r"(?:form|terms))", re.I)  # (?=..): the first characters, tested fast everywhere
_ASKS_SIMPLE = re.compile(r"(?:^|[.?!]\s+|\n)\s*simplify\b", re.I)  # 'Simplify ...' as an instruction
_DECIMAL = re.compile(r"(?<![\d.])\d*\.\d+")
_OPS = re.compile(r"[-+*/^]|\\(?:frac|sqrt|cdot|times|sin|cos|tan|cot|sec|csc|log|ln)(?![a-zA-Z])")
SIMPLIFY_FACTOR, SIMPLIFY_SLACK = 2, 2  # unsimplified: ops(candidate) > SIMPLIFY_FACTOR * ops(reference) + SIMPLIFY_SLACK


def form_ok(question, reference, candidate):
    r"""False when a candidate equal in value ignores the form the question asks for: a decimal where a
    common fraction or radical form is asked ('10.5\pi' for '\frac{21}{2}\pi'), or an answer to 'Simplify ...'
    with many more operations than the reference ('\frac{1}{\sin x \cos x} - \tan x' for '\cot x')."""
    if not question or candidate is None:
        return True
    cand, ref = canon(str(candidate)), canon(str(reference))
    if _ASKS_FRACTION.search(question) and _DECIMAL.search(cand) and not _DECIMAL.search(ref):
        return False
    if _ASKS_SIMPLE.search(question):
        return len(_OPS.findall(cand)) <= SIMPLIFY_FACTOR * len(_OPS.findall(ref)) + SIMPLIFY_SLACK
    return True


@lru_cache(maxsize=8192)
def answer_value(s):
    """(real value, had_percent) of a scalar numeric answer, else (None, False)."""
    if _SIGNED_NUMBER.fullmatch(s or ""):  # the common case, without canon() and parse()
        return float(s), False
    s = canon(s or "")
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    n = parse(s.rstrip("%").strip())
    try:
        v = None if n is None or free_vars(n) else approx(n, {})
    except (Undecided, Inexact, ZeroDivisionError, OverflowError, ValueError, TypeError):
        v = None
    ok = v is not None and abs(v.imag) < 1e-12 and math.isfinite(v.real)
    return (v.real, s.endswith("%")) if ok else (None, False)
