"""
Benchmark the MathVerifier: speed (solutions/s, single process) and self-consistency on reference
solutions, detection rates on perturbed GSM8K solutions (one step's result changed / final changed),
and grading of real model outputs on ProcessBench dev (answers accepted / rejected against the human
labels, ProcessBench's first-error F1), side by side with Math-Verify when it is installed
(`pip install math-verify`: optional, for this bench only).

    python bench/bench_verifier.py                      # data from ../shared/data (repo root relative)
    python bench/bench_verifier.py --data-dir /path/to/data --show 5
    python bench/bench_verifier.py --only processbench  # just the real-output table
"""
import argparse, json, random, re, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from verifier import DIMENSIONS, answers_match, extract_answer, is_near_miss, profile  # noqa: E402

NOTE = re.compile(r"<<([^<>=]*)=([^<>]*)>>([\d,.]*)")


def load(path, limit):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(l) for l in f if l.strip()]
    return rows[:limit] if limit else rows


def bump(x, rng):  # a plausible wrong value: +-1..10% (at least 1) away from x
    v = float(x)
    d = max(1, round(abs(v) * rng.uniform(0.02, 0.1)))
    w = v + d if rng.random() < 0.5 or v - d < 0 else v - d
    return str(int(w)) if w == int(w) else f"{w:.2f}"


def perturb_step(sol, rng):
    """Change the result of one intermediate <<a op b=c>>c step (note and its displayed copy)."""
    notes = list(NOTE.finditer(sol))
    if len(notes) < 2: return None
    m = rng.choice(notes[:-1])
    try: new = bump(m.group(2).replace(",", ""), rng)
    except ValueError: return None
    return sol[:m.start()] + f"<<{m.group(1)}={new}>>{new}" + sol[m.end():]


def perturb_final(sol, rng):
    m = re.search(r"####\s*(.+)$", sol)
    try: new = bump(m.group(1).replace(",", ""), rng)
    except (ValueError, AttributeError): return None
    return sol[:m.start()] + "#### " + new


def run(name, items, show=0):
    """items: (solution, reference, question). Returns (profiles, seconds)."""
    t0, c0 = time.perf_counter(), time.process_time()
    ps = [profile(s, r, q) for s, r, q in items]
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(items)
    rate = lambda f: sum(map(f, ps)) / max(n, 1)
    print(f"{name:<22} n={n:<5} {n / dt:8.0f} sol/s ({n / cpu:.0f} per CPU-s)   correct {rate(lambda p: p.correct):.4f}   "
          + "  ".join(f"{d[:5]}>0 {rate(lambda p, d=d: getattr(p, d) > 0):.3f}" for d in DIMENSIONS[2:]))
    return ps, cpu


def first_error_f1(pairs):
    """ProcessBench's metric over (predicted, labelled) first-error paragraph indices (-1 = no error):
    harmonic mean of the exact-step accuracy on erroneous and the 'no error' accuracy on error-free ones."""
    err = [p == l for p, l in pairs if l >= 0]
    ok = [p == -1 for p, l in pairs if l < 0]
    a, b = sum(err) / max(len(err), 1), sum(ok) / max(len(ok), 1)
    return a, b, (2 * a * b / (a + b) if a + b else 0.0)


def processbench(path, show=0):
    """The real-output table: hardneg (and Math-Verify when installed) on ProcessBench dev,
    profile("\\n\\n".join(steps), gold_answer, question=problem) per solution."""
    rows = load(path, 0)
    splits = sorted({r["id"].split("-")[0] for r in rows})
    import sympy  # noqa: F401  one-time import, excluded for both graders (Math-Verify imports it as well)
    from answers import answer_value, canon
    from mathexpr import _number, parse
    profile("So 1 + 1 = 2.\n\nThe answer is 2", "2")  # one warm-up call each, excluded; then cold caches
    for cached in (parse, _number, canon, answer_value):
        cached.cache_clear()
    t0 = time.process_time()  # CPU seconds: a fair ratio on a machine shared with other jobs
    ps = [profile("\n\n".join(r["steps"]), r["gold_answer"], question=r["problem"]) for r in rows]
    t_ours = time.process_time() - t0
    graders = [("hardneg", [p.correct for p in ps], t_ours)]
    try:
        from math_verify import parse as mv_parse, verify as mv_verify
    except ImportError:
        mv_parse = None
        print("math-verify not installed: its rows are skipped (pip install math-verify)")
    if mv_parse:
        mv_verify(mv_parse("$2$"), mv_parse("So 1 + 1 = 2.\n\nThe answer is 2"))  # its warm-up call, excluded
        t0, got = time.process_time(), []
        for r in rows:
            try: got.append(bool(mv_verify(mv_parse("$" + r["gold_answer"] + "$"), mv_parse("\n\n".join(r["steps"])))))
            except Exception: got.append(False)
        graders.append(("Math-Verify", got, time.process_time() - t0))
    print(f"\nProcessBench dev ({path}, {len(rows)} real solutions; one process, machine load as it is; "
          "sympy import and one warm-up call per grader excluded, hardneg's caches cleared)")
    print(f"| grader | split | correct answers accepted | wrong answers rejected | first-error F1 (err acc / ok acc) |")
    print("|---|---|---|---|---|")
    for name, ok, _ in graders:
        for sp in splits:
            idx = [i for i, r in enumerate(rows) if r["id"].startswith(sp + "-")]
            cor = [ok[i] for i in idx if rows[i]["final_answer_correct"]]
            wr = [not ok[i] for i in idx if not rows[i]["final_answer_correct"]]
            f1 = "–"
            if name == "hardneg":
                pred = [(ps[i].details["first_wrong_paragraph"], rows[i]["label"]) for i in idx]
                a, b, f = first_error_f1([(-1 if p is None else p, l) for p, l in pred])
                f1 = f"{f:.3f} ({a:.3f} / {b:.3f})"
            print(f"| {name} | {sp} | {sum(cor) / len(cor):.3f} ({sum(cor)}/{len(cor)}) | "
                  f"{sum(wr) / len(wr):.3f} ({sum(wr)}/{len(wr)}) | {f1} |")
    for name, _, dt in graders:
        print(f"{name}: {dt:.2f} CPU-s for {len(rows)} ({len(rows) / dt:.0f} solutions per CPU-second)")
    if len(graders) == 2:
        print(f"throughput ratio hardneg / Math-Verify: {graders[1][2] / graders[0][2]:.1f}x")
    miss = [(r, p) for r, p in zip(rows, ps) if p.correct != r["final_answer_correct"]]
    for r, p in miss[:show]:
        print("  ---", r["id"], "human:", r["final_answer_correct"], "gold:", repr(r["gold_answer"]), "pred:", repr(p.pred))


def main():
    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=str(root.parent / "shared" / "data"), help="folder with gsm8k/ and math/")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N records of each file (0 = all)")
    ap.add_argument("--seed", type=int, default=0, help="seed for the perturbations")
    ap.add_argument("--show", type=int, default=0, help="print up to N failing examples per check")
    ap.add_argument("--only", choices=["all", "processbench"], default="all", help="which sections to run")
    args = ap.parse_args()
    data = Path(args.data_dir)
    pb = data / "processbench" / "dev.jsonl"
    if args.only == "processbench":
        return processbench(pb, args.show) if pb.is_file() else sys.exit(f"{pb} not found")
    if not (data / "gsm8k" / "test.jsonl").is_file():
        sys.exit(f"data dir {data} not found (expected gsm8k/test.jsonl); pass --data-dir")
    rng = random.Random(args.seed)
    rows = load(data / "gsm8k" / "test.jsonl", args.limit)
    refs = [(r["answer"], r["answer"].split("####")[-1].strip(), r["question"]) for r in rows]
    step = [(s2, ref, q) for s, ref, q in refs if (s2 := perturb_step(s, rng))]
    final = [(s2, ref, q) for s, ref, q in refs if (s2 := perturb_final(s, rng))]
    t0 = time.perf_counter()
    import sympy  # noqa: F401  a one-time cost, paid on the first undecided check; keep it out of the rates
    print(f"MathVerifier bench ({data}); sympy import {time.perf_counter() - t0:.2f}s (excluded)")
    p_ref, t1 = run("gsm8k test refs", refs)
    p_step, t2 = run("gsm8k step-perturbed", step)
    p_fin, t3 = run("gsm8k final-perturbed", final)
    n_all = len(refs) + len(step) + len(final)
    print(f"GSM8K-style overall: {n_all / (t1 + t2 + t3):.0f} solutions per CPU-second (single process; wall rates above)")
    print(f"  self-consistency (refs judged correct): {sum(p.correct for p in p_ref) / len(p_ref):.4f}")
    print(f"  step-perturbed flagged arithmetic:      {sum(p.arithmetic > 0 for p in p_step) / len(p_step):.4f}"
          f"   (first_wrong_step set: {sum(p.details['first_wrong_step'] is not None for p in p_step) / len(p_step):.4f})")
    print(f"  final-perturbed flagged answer_mismatch: {sum(p.answer_mismatch == 1 for p in p_fin) / len(p_fin):.4f}"
          f"   near-miss: {sum(map(is_near_miss, p_fin)) / len(p_fin):.4f}   logical>0: "
          f"{sum(p.logical > 0 for p in p_fin) / len(p_fin):.4f}")
    fails = [(it, p) for it, p in zip(refs, p_ref) if not p.correct or p.wrongness > 0] + \
            [(it, p) for it, p in zip(step, p_step) if p.arithmetic == 0]
    for (s, ref, _), p in fails[:args.show]:
        print("---", ref, p.to_dict(), "\n", s)
    for fname, key in (("math500_test.jsonl", "answer"), ("MATH_test.jsonl", None)):
        path = data / "math" / fname
        if not path.is_file(): print(f"{path} absent, skipped"); continue
        rows = load(path, args.limit)
        items = [(r["solution"], r[key] if key else extract_answer(r["solution"]), r["problem"]) for r in rows]
        ps, _ = run(fname.split(".")[0], items)
        print(f"  self-consistency ({'answer field' if key else 'last boxed'} vs solution): "
              f"{sum(p.correct for p in ps) / len(ps):.4f}")
        bad = [(it, p) for it, p in zip(items, ps) if not p.correct or p.arithmetic or p.symbolic]
        for (s, ref, _), p in bad[:args.show]:
            print("---", ref, "|", p.pred, p.details["wrong_equations"], p.details["reasons"])
        if key:  # answers_match robustness: re-rendered answers must match, other problems' answers must not
            ans = [r[key] for r in rows]
            variants = [(a, v) for a in ans for v in (a.replace(r"\frac", r"\dfrac"), a.replace(" ", ""), f"${a}$",
                                                      rf"\boxed{{{a}}}", a + ".", a if "," in a or "=" in a else f"x = {a}")]
            t0 = time.perf_counter()
            fn = [(a, v) for a, v in variants if not answers_match(a, v)]
            others = [(a, b) for a, b in (rng.sample(ans, 2) for _ in range(5000)) if a != b]
            fp = [(a, b) for a, b in others if answers_match(a, b) and answers_match(b, a)]
            print(f"  answers_match: re-rendered variants matched {1 - len(fn) / len(variants):.4f} "
                  f"({len(variants)}), different answers matched {len(fp) / len(others):.4f} ({len(others)}), "
                  f"{(len(variants) + len(others)) / (time.perf_counter() - t0):.0f} pairs/s")
            for a, b in (fn + fp)[:args.show]: print("  ---", repr(a), "|", repr(b))
    if pb.is_file(): processbench(pb, args.show)
    else: print(f"{pb} absent, skipped")


if __name__ == "__main__":
    main()
