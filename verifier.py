"""
MathVerifier: rules + sympy, no model. Scores a solution against a reference answer along six error
dimensions (answer_mismatch, numeric_distance, arithmetic, symbolic, logical, format), each in [0, 1],
plus two aggregates (wrongness, absurdity). mine.py and evaluate.py import profile() / is_near_miss().

    python verifier.py samples.jsonl -o scored.jsonl                # solution in "completion", ref in "answer"
    python verifier.py data.jsonl --field solution -o scored.jsonl --workers 2

Five modules, one job each: mathexpr.py (the safe parser, exact / approximate evaluation), symbolic.py
(sympy under bounds), answers.py (extraction, normalisation, answers_match), steps.py (the math and numbers
of a text, every stated equality re-checked), this file (the six dimensions, the aggregates, the CLI).
Model output is untrusted: nothing eval()s or sympify()s text, and every verdict runs under a size bound
on each exact operation and a PROFILE_SECONDS monotonic-clock budget (checks left undone when it runs out
are "undecided"; no signals, threads or timers are used).
See docs/verifier.md for the rules, formulas and measured rates.
"""
import argparse, math, os, re, time
from dataclasses import dataclass, field, asdict

from mathexpr import Budget
from answers import answer_value, answers_match, canon, compact, extract, extract_answer, form_ok
from steps import _ASY_OPEN, _LATEX_MODE, _Checker, _blocks, _close, _first_stated, _numbers

DIMENSIONS = ("answer_mismatch", "numeric_distance", "arithmetic", "symbolic", "logical", "format")
# wrongness = W_ANSWER*answer_mismatch + W_DISTANCE*numeric_distance
#           + W_STEPS*max(arithmetic, symbolic, logical) + W_FORMAT*format           (weights sum to 1)
W_ANSWER, W_DISTANCE, W_STEPS, W_FORMAT = 0.6, 0.2, 0.1, 0.1
# absurdity = A_FORMAT*format + A_ERRORS*mean(arith, symbolic, logical)        (at most 0.8)
# A wild magnitude is one of format's reasons, so it is counted once (it used to be added again on its own).
A_FORMAT, A_ERRORS = 0.6, 0.2
DIST_SCALE = 0.5                 # numeric_distance = 1 - exp(-rel / DIST_SCALE), rel = |p - r| / max(|r|, 1)
STEP_DECAY = 0.6                 # arithmetic, symbolic = max(n_wrong / n_checked, 1 - STEP_DECAY**n_wrong)
LOGIC_LAST, LOGIC_UNSUPPORTED = 0.6, 0.4  # final != last computed result; final number derived from nothing
MAGNITUDE_FACTOR = 1000          # |pred| > 1000 |ref| or < |ref| / 1000
REP_FREE, REP_FULL = 0.35, 0.75  # repeated-line / repeated-4-gram fraction, mapped linearly onto [0, 1]
NEAR_MISS_REL = 0.2              # near miss: relative error <= 20%, i.e. numeric_distance <= NEAR_MISS_DIST
NEAR_MISS_DIST = 1 - math.exp(-NEAR_MISS_REL / DIST_SCALE)
NEAR_MISS_MAX_ABSURDITY = 0.3
MAX_TEXT = 20_000         # characters of a solution that are checked (the answer is searched in all of it)
PROFILE_SECONDS = 0.5     # deadline of one profile(): the answer check first, then the steps until it expires


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


_HOW_MANY = re.compile(r"(?=h)\bhow many\s+((?:[a-z]+\s+){0,2}[a-z]+)", re.I)  # (?=h): fast to scan for
_CONTINUOUS = re.compile(r"hour|minute|second|mile|pound|kilo|gram|lit[er]|gallon|ounce|cup|feet|foot|inch|"
                         r"met[er]|yard|dollar|cent|day|week|month|year|percent|degree|square|cubic|time|more|less|"
                         r"unit|calorie|scoop|serving")


# chosen on ProcessBench dev; (?=...): the first characters, tested fast at every position (2x faster than \b first)
_TURN = re.compile(r"(?=H|(?i:[wlia]))(?:\bHowever\b|(?i:\b(?:we|let's|let us|I) assume\b|\bassuming\b))")
_SENTENCE = re.compile(r"[.!?](?=\s)|\n|$")
_PARA = re.compile(r"\n[ \t]*\n")  # a paragraph break (ProcessBench steps are joined with blank lines)


def _sev(n_wrong, n):  # one slip already matters (0.4); several saturate; all wrong is 1
    return max(n_wrong / n, 1 - STEP_DECAY ** n_wrong) if n_wrong else 0.0


def _carried(e, eqs, pv, question, text):
    """A wrong calculation (an operator on its left side) whose stated result is used afterwards (on the left
    side of a later calculation, or as the answer) and that neither a right equation nor the text before it
    (question included: a number there is a coincidence) also gives."""
    if e.kind != "a" or e.val is None or not re.search(r"[-+*/^]", e.src.split("=")[0]):
        return False
    if any(d.ok and d.val is not None and _close(d.val, e.val) for d in eqs):
        return False
    if any(_close(x, e.val) for x in _numbers((question or "") + " " + text[:e.pos])):
        return False
    later = [x for d in eqs if d.pos >= e.end for x in _numbers(d.src.split("=")[0])]
    return (pv is not None and _close(pv, e.val)) or any(_close(x, e.val) for x in later)


def _repetition(text):
    lines = [l for l in map(str.strip, text.splitlines()) if len(l) >= 10]
    rep = 1 - len(set(lines)) / len(lines) if len(lines) >= 4 else 0.0
    if len(w := text.split()) >= 40:
        rep = max(rep, 1 - len(set(zip(w, w[1:], w[2:], w[3:]))) / (len(w) - 3))  # repeated 4-grams
    return min(1.0, max(0.0, (rep - REP_FREE) / (REP_FULL - REP_FREE)))


def profile(solution, reference_answer, question=None, truncated=None):
    """Score one solution against the reference answer: six severities in [0, 1] and two aggregates.
    truncated: the sampler's finish_reason == 'length' (None: infer it from the text)."""
    solution, ref = solution or "", str(reference_answer).strip()
    if "####" in ref or r"\boxed" in ref or "answer is" in ref.lower():  # a whole reference solution
        ref = extract_answer(ref) or ref
    pred, ans_pos, ans_end = extract(solution, closing=truncated is not True)  # a cut-off text has no closing sentence
    budget = Budget(PROFILE_SECONDS)  # shared by the answer check and the step checks (mathexpr.Budget)
    correct = pred is not None and answers_match(ref, pred, budget) and form_ok(question, ref, pred)
    text, reasons = solution[:MAX_TEXT], []
    # --- steps: <<notes>> and plain text -> arithmetic; LaTeX math -> symbolic. [asy] drawings are code.
    t = text
    for a, b, _ in _blocks(text, _ASY_OPEN) if "[asy]" in text else []:
        t = t[:a] + " " * (b - a) + t[b:]
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
    # a right answer reached through a miscalculation carried forward is luck: a careful grader marks it wrong
    if correct and any(_carried(e, eqs, answer_value(pred)[0], question, text) for e in wrong):
        correct = False
        reasons.append("answer_rests_on_wrong_step")
    # --- the answer against the reference
    (pv, ppct), (rv, rpct) = answer_value(pred), answer_value(ref)
    rel, magnitude, numeric_distance = None, False, 0.0 if correct else 1.0
    if not correct and pv is not None and rv is not None:
        scales = [1.0] + ([0.01] if ppct and not rpct else [100.0] if rpct and not ppct else [])
        rel = min(abs(pv * s - rv) / max(abs(rv), 1.0) for s in scales)
        numeric_distance = max(0.01, 1 - math.exp(-rel / DIST_SCALE))
        magnitude = pv != 0 and rv != 0 and not 1 / MAGNITUDE_FACTOR <= abs(pv / rv) <= MAGNITUDE_FACTOR
    spans = [(e.pos, e.end, "wrong_equation") for e in wrong[:1]]  # evidence of the first error: (start, end, why)
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
                    or compact(canon(pred)) in compact(between)):
                logical += LOGIC_LAST
                reasons.append("final_not_last_result")
                spans.append((max(ans_pos, 0), max(ans_end, ans_pos, 0), "final_not_last_result"))
        if re.fullmatch(r"-?\$?\d[\d,]*(\.\d+)?%?", canon(pred)) and not (0 <= pv <= 10 and pv == int(pv)):
            said = {round(abs(pv) * s, 6) for s in scales}  # is it among the numbers before it or the results?
            if not any(round(abs(x), 6) in said for x in _numbers((question or "") + " " + text[:max(ans_pos, 0)])) \
                    and not any(round(abs(e.val), 6) in said for e in vals):
                logical += LOGIC_UNSUPPORTED
                reasons.append("final_number_unsupported")
    # --- format: the worst of no answer, truncation, loops, impossible values, magnitude
    fmt = {}
    if truncated is None:
        truncated = pred is None and bool(text.strip()) and text.rstrip()[-1] not in ".!?$}])"
    if pred is None:
        fmt["no_answer"] = 1.0
    if truncated:
        fmt["truncated"] = 1.0 if pred is None else 0.5
    if rep:
        fmt["repetition"] = rep
    if question and pv is not None and (m := _HOW_MANY.search(question)):
        if pv < 0:
            fmt["negative_count"] = 1.0
        elif pv != int(pv) and not _CONTINUOUS.search(m.group(1).lower()):
            fmt["non_integer_count"] = 0.7
    if magnitude:
        fmt["magnitude"] = 1.0
    p = Profile(0.0 if correct else 1.0, numeric_distance, arithmetic, symbolic, min(1.0, logical),
                max(fmt.values(), default=0.0), correct=correct, pred=pred)
    p.wrongness = min(1.0, W_ANSWER * p.answer_mismatch + W_DISTANCE * p.numeric_distance
                      + W_STEPS * max(arithmetic, symbolic, p.logical) + W_FORMAT * p.format)
    p.absurdity = min(1.0, A_FORMAT * p.format + A_ERRORS * (arithmetic + symbolic + p.logical) / 3)
    # --- first error: the earliest evidence; failing any, a wrong answer's value where it is first stated,
    # and failing that the wrong answer's own sentence
    if not spans and not correct and pred is not None and (w := _first_stated(text, pv, pred, ans_pos, question)):
        spans.append(w + ("wrong_value_first_stated",))
    if not spans and not correct and pred is not None and ans_pos >= 0:  # at the latest, the wrong answer itself
        spans.append((ans_pos, max(ans_end, ans_pos + 1), "wrong_answer"))
    # a solution that fails and turns ('However, ...') or assumes what the problem does not say went wrong
    # there at the latest
    turns = not correct and ("However" in text or "ssum" in text)  # the cheap test first
    if turns and (m := _TURN.search(text, 0, min(spans)[0] if spans else len(text))):
        spans.append((m.start(), _SENTENCE.search(text, m.end()).end(), "turn_or_assumption"))
    fw = min(spans) if spans else None
    p.details = {"n_equations": n["a"] + n["s"], "n_wrong_equations": len(wrong), "n_arithmetic": n["a"],
                 "n_symbolic": n["s"], "first_wrong_step": text.count("\n", 0, fw[0]) if fw else None,
                 "first_wrong_start": fw[0] if fw else None, "first_wrong_end": fw[1] if fw else None,
                 "first_wrong_paragraph": len(_PARA.findall(text, 0, fw[0])) if fw else None,
                 "first_wrong_reason": fw[2] if fw else None,
                 "wrong_equations": [e.src for e in wrong[:5]], "rel_error": None if rel is None else round(rel, 6),
                 "truncated": bool(truncated), "reasons": reasons + sorted(fmt) + ["wrong_equation"] * bool(wrong)}
    return p


def is_near_miss(p):
    """Wrong, answered, not absurd, and either numerically close (relative error <= NEAR_MISS_REL) or
    derailed by exactly one wrong equation (a single arithmetic / symbolic slip). Profile or to_dict()."""
    d = p if isinstance(p, dict) else p.to_dict()
    if d["correct"] or d["pred"] is None or d["absurdity"] > NEAR_MISS_MAX_ABSURDITY:
        return False
    return d["numeric_distance"] <= NEAR_MISS_DIST + 1e-9 or d.get("details", {}).get("n_wrong_equations") == 1


# ----------------------------------------------------------------------------- CLI
def load_records(path, fld, ans_fld):
    """Validated records (through common.read_jsonl) or SystemExit('error: FILE:LINE: ...')."""
    from records import DataError, read_jsonl  # no torch: verifying is CPU-only
    try:
        recs = read_jsonl(path, required=(fld, ans_fld), types={fld: str, ans_fld: (str, int, float),
                                                                "question": str, "finish_reason": str})
    except DataError as e:  # bad UTF-8 included: read_jsonl reads bytes and names the line
        raise SystemExit(f"error: {e}") from None
    for r in recs:
        a = r[ans_fld]
        if isinstance(a, bool) or (isinstance(a, float) and not math.isfinite(a)):
            raise SystemExit(f"error: {path}:{r['_line']}: field '{ans_fld}' must be a string or a finite number, got {a!r}")
    if not recs:
        raise SystemExit(f"error: {path}: no records")
    return recs


def _score(job):
    sol, ans, q, fr = job
    return profile(sol, ans, q, None if fr is None else fr == "length").to_dict()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Score math solutions with the rule + sympy MathVerifier.")
    ap.add_argument("input", help="JSONL file, one record per line")
    ap.add_argument("-o", "--out", "--output", dest="out",
                    help="output JSONL (+ OUT.meta.json), written atomically; folders are created "
                         "(default: INPUT.scored.jsonl)")
    ap.add_argument("--field", default="completion", help="record field holding the solution text")
    ap.add_argument("--answer-field", default="answer", help="record field holding the reference answer")
    ap.add_argument("--workers", type=int, default=1, help="worker processes (1 = score in-process)")
    args = ap.parse_args(argv)
    from records import write_json, write_jsonl
    from tqdm import tqdm
    out = args.out or re.sub(r"(\.jsonl)?$", ".scored.jsonl", args.input, count=1)
    if os.path.isdir(out):
        raise SystemExit(f"error: {out}: is a folder, expected an output file name")
    recs = load_records(args.input, args.field, args.answer_field)  # validate everything before writing
    jobs = [(r[args.field], r[args.answer_field], r.get("question"), r.get("finish_reason")) for r in recs]
    t0, pool = time.time(), None
    try:
        if args.workers > 1:
            import multiprocessing as mp
            pool = mp.Pool(args.workers)
        it = pool.imap(_score, jobs, chunksize=32) if pool else map(_score, jobs)
        for r, p in zip(recs, tqdm(it, total=len(jobs), desc="verify", disable=None)):
            r["profile"] = p
    finally:
        if pool:
            pool.terminate()
    dt, n, ps = time.time() - t0, len(recs), [r["profile"] for r in recs]
    dims = {d: sum(p[d] > 0 for p in ps) for d in DIMENSIONS}
    stats = {"n": n, "accuracy": round(sum(p["correct"] for p in ps) / n, 6),
             "no_answer": sum(p["pred"] is None for p in ps), "near_miss": sum(map(is_near_miss, ps)),
             "first_error_located": sum(p["details"].get("first_wrong_start") is not None for p in ps),
             "nonzero": dims, "seconds": round(dt, 3)}
    models = sorted({str(r["model"]) for r in recs if r.get("model")})
    write_jsonl(out, recs)  # atomic (tmp + os.replace), creates the folder; drops read_jsonl's _line
    write_json(out + ".meta.json", {"stage": "verify", "args": vars(args), "parent": args.input,
                                    "model": models[0] if len(models) == 1 else (models or None), "stats": stats})
    print(f"scored {n} solutions -> {out} in {dt:.1f}s ({n / max(dt, 1e-9):.0f}/s)")
    print(f"accuracy {stats['accuracy']:.4f} | no answer {stats['no_answer']} | "
          f"wrongness {sum(p['wrongness'] for p in ps) / n:.3f} | absurdity {sum(p['absurdity'] for p in ps) / n:.3f}"
          f" | near-miss {stats['near_miss']} | first error located {stats['first_error_located']}")
    print(f"{'dimension':<17}{'nonzero':>8}{'mean':>7}   histogram: 0 | (0,.25] | (.25,.5] | (.5,.75] | (.75,1]")
    for d in DIMENSIONS + ("wrongness", "absurdity"):
        v = [p[d] for p in ps]
        hist = [sum(x == 0 for x in v)] + [sum(lo < x <= lo + 0.25 for x in v) for lo in (0, 0.25, 0.5, 0.75)]
        print(f"{d:<17}{sum(x > 0 for x in v):>8}{sum(v) / n:>7.3f}   " + " | ".join(map(str, hist)))


if __name__ == "__main__":
    main()
