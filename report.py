r"""
Statistics and diagnostics of an experiment: every arm against a baseline arm, paired over problems.
No model forward: reads evaluate.py's results.json (one per seed), the arms' history.json and diagnose.py's JSONs.

    python report.py --evals runs/toy-s0/eval_test/results.json --baseline sft+ --out runs/toy-s0/summary.md
    python report.py --evals runs/toy-s{0,1,2}/eval_test/results.json --out runs/summary_3seeds.md   # multi-seed

Per arm: accuracy (mean ± std over seeds), the paired difference to --baseline with a 95% paired bootstrap CI
over problems (several seeds: problems resampled as clusters, all seeds of a problem together) and an exact
two-sided sign test on the discordant problems, on all problems and on the near-miss slice of each results.json;
the most frequent first differences between the baseline's and the arm's greedy answers ("result digit +2");
the diag_*.json of diagnose.py found in the run dirs; with arms sft, sft+ (the baseline), dpo and wdpo, the goal
check (goal_check: `wdpo > dpo > sft+ >= sft` per seed, the wdpo CI, the near-miss slice, the SFT spread). Writes
--out (Markdown), report.json and, when matplotlib is installed, arms_ci.png and logp_trajectories.png next to --out
(named after it: summary_val.md -> report_val.json, ...).
"""
import argparse
import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--evals", nargs="+", required=True, help="evaluate.py results.json files, one per seed (same arms)")
parser.add_argument("--baseline", default="sft+", help="arm every other arm is compared with (paired, per problem)")
parser.add_argument("--run", nargs="+", default=None, help="run dir per --evals file, holding the arm checkpoints "
                    "(history.json) and diag_*.json (default: the parent of each results.json's folder)")
parser.add_argument("--out", default=None, help="summary Markdown path (default: <first run>/summary.md); "
                    "report.json and PNGs go next to it")
parser.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples")
parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap's numpy Generator")
parser.add_argument("--changes-vs", default=None, help="arm whose greedy answers the answer-change table starts "
                    "from (default: --baseline; e.g. sft for 'what did DPO change')")
parser.add_argument("--top", type=int, default=10, help="most frequent answer changes listed per arm")
parser.add_argument("--control", nargs="+", default=[], metavar="ARM=CONTROL",
                    help="arms judged against another arm than --baseline: their own matched control (e.g. "
                         "dpo-greedy=sft+-greedy: the NLL-only arm on the same chosen solutions)")

# -----------------------------------------------------------------------------
# statistics: pure functions


def paired_bootstrap(a, b, n=10000, seed=0, clusters=None):
    """Paired bootstrap of mean(a - b).
    a, b: (N,) per-unit scores of two systems on the same units (e.g. 0/1 correctness per problem);
    n: resamples; seed: integer seed of numpy's Generator; clusters: optional (N,) labels: units with the same
    label are resampled together (e.g. one problem evaluated under several seeds), the mean is taken over units.
    Returns (diff, lo, hi): the observed mean difference and the 2.5 / 97.5 percentiles of the resampled ones."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    _, cl = np.unique(np.arange(d.size) if clusters is None else np.asarray(clusters), return_inverse=True)
    sums, counts = np.bincount(cl, weights=d), np.bincount(cl).astype(np.float64)   # (K,) per cluster
    K, rng, out = sums.size, np.random.default_rng(seed), []
    # Clusters with the same (sum, count) are interchangeable, so drawing K clusters uniformly with replacement is
    # drawing how many of each distinct kind: a multinomial. For 0/1 scores there are few kinds (3 for one seed,
    # ~20 for three), which makes 10k resamples cost O(n x kinds) instead of O(n x K). Same distribution, exactly.
    kinds, freq = np.unique(np.stack([sums, counts], 1), axis=0, return_counts=True)  # (U, 2), (U,)
    if len(kinds) <= 256:
        w = rng.multinomial(K, freq / K, size=n)                                    # (n, U) draws per kind
        out.append((w @ kinds[:, 0]) / (w @ kinds[:, 1]))
    else:  # continuous scores: draw cluster indices, in chunks (an (n, K) matrix would be large)
        step = max(1, 2_000_000 // K)
        for s in range(0, n, step):
            idx = rng.integers(0, K, size=(min(step, n - s), K), dtype=np.int32)   # (c, K) clusters drawn
            out.append(sums[idx].sum(1) / counts[idx].sum(1))
    boot = np.concatenate(out)
    return float(d.mean()), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def sign_test(a, b):
    """Exact two-sided sign test on discordant units of two 0/1 vectors a, b (N,).
    Returns (n_a, n_b, p): units only a got right, units only b got right, and
    p = min(1, 2 * P[X <= min(n_a, n_b)]) with X ~ Binomial(n_a + n_b, 1/2), exact in integers."""
    a, b = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    na, nb = int((a & ~b).sum()), int((~a & b).sum())
    n, k = na + nb, min(na, nb)
    if n == 0:
        return na, nb, 1.0
    tail, c = 0, 1
    for i in range(k + 1):  # exact integers: C(n, i+1) = C(n, i) (n - i) / (i + 1); the division below rounds once
        tail += c
        c = c * (n - i) // (i + 1)
    return na, nb, min(1.0, 2 * tail / 2 ** n)


NUM = re.compile(r"\d+")


def first_change(old, new):
    """The first difference between two answers, as a label. A digit -> '<where> digit <delta>' where <where> is
    'result' (after '='), 'answer' (after 'answer is:') or 'operand'; anything else -> "'word' -> 'word'".
    Returns (label, detail) or None when the texts are equal."""
    if old == new:
        return None
    lo, hi = 0, min(len(old), len(new))   # binary search for the common prefix length: slice compares run in C
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if old[:mid] == new[:mid] else (lo, mid - 1)
    i = lo
    co, cn = old[i:i + 1], new[i:i + 1]
    if co.isdigit() and cn.isdigit():
        before = old[:i].rstrip("0123456789").rstrip()
        where = "result" if before.endswith("=") else "answer" if before.endswith("is:") else "operand"
        st = len(old[:i].rstrip("0123456789"))   # the number holding the difference starts here in both texts
        return f"{where} digit {int(cn) - int(co):+d}", f"{NUM.match(old, st).group()} -> {NUM.match(new, st).group()}"
    st = len(old[:i]) - len(old[:i].split(" ")[-1].split("\n")[-1])   # start of the word holding the difference
    word = lambda s: re.match(r"\s*\S*", s[st:]).group() or "<end>"  # noqa: E731
    return f"{word(old)!r} -> {word(new)!r}", f"...{old[max(0, st - 15):st]}"


def change_table(pairs, top=10):
    """pairs: list of (old completion, old correct, new completion, new correct). Counts the first change of every
    changed answer; returns (n_changed, [(label, count, right->wrong, wrong->right, example detail)] top N)."""
    cnt, rw, wr, ex = Counter(), Counter(), Counter(), {}
    for old, oc, new, nc in pairs:
        ch = first_change(old, new)
        if ch is None:
            continue
        cnt[ch[0]] += 1
        rw[ch[0]] += bool(oc and not nc)
        wr[ch[0]] += bool(nc and not oc)
        ex.setdefault(ch[0], ch[1])
    return sum(cnt.values()), [(k, c, rw[k], wr[k], ex[k]) for k, c in cnt.most_common(top)]

# -----------------------------------------------------------------------------
# loading


def load_eval(path):
    """results.json -> (names, problem ids, {name: (N,) 0/1}, {name: completions}, near-miss slice ids,
    {name: checkpoint path evaluate.py was given})."""
    try:
        r = json.loads(Path(path).read_text())
        preds = r["predictions"]
        names = list(preds)
        ids = [p["problem_id"] for p in preds[names[0]]]
        for m in names:
            if [p["problem_id"] for p in preds[m]] != ids:
                raise SystemExit(f"error: {path}: arm {m!r} lists other problems (or another order) than {names[0]!r}")
        corr = {m: np.array([bool(p["profile"]["correct"]) for p in preds[m]]) for m in names}
        comp = {m: [p["completion"] for p in preds[m]] for m in names}
        return names, ids, corr, comp, set(r.get("near_miss_slice", {}).get("problem_ids", [])), r.get("models", {})
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        raise SystemExit(f"error: {path}: not an evaluate.py results.json ({type(e).__name__}: {e})") from None


def arm_dir(models, run, name):
    """The arm's checkpoint dir: the path evaluate.py was given (models[name]), or <run>/<name>."""
    p = models.get(name)
    for c in ([Path(p), Path(run) / Path(p).name] if p else []) + [Path(run) / name]:
        if c.is_dir():
            return c
    return None


def pct(x):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def ci_str(t):
    return "-" if math.isnan(t[0]) else f"{100 * t[0]:+.1f} [{100 * t[1]:+.1f}, {100 * t[2]:+.1f}]"


def cell(text):
    """Model text inside a Markdown table cell: no line breaks, pipes or backticks."""
    return str(text).replace("\n", "\\n").replace("|", "\\|").replace("`", "'")


def goal_check(rep, arms=("wdpo", "dpo", "sft+", "sft")):
    """The experiment's stated goal, read off the report (None when an arm is missing or the baseline is not the
    control sft+): per seed, is `wdpo > dpo > sft+ >= sft` (strict, accuracies as counted), is the pooled
    `wdpo - sft+` CI above zero, and is wdpo's gain larger on the near-miss slice than on all problems. Plus the SFT
    accuracy's spread over seeds (the plateau check: std <= 2 points)."""
    A = rep["arms"]
    if rep["baseline"] != arms[2] or any(a not in A for a in arms):
        return None
    w, d, c, s = (A[a]["acc"] for a in arms)
    order = [w[i] > d[i] > c[i] >= s[i] for i in range(len(w))]
    ci_lo = A[arms[0]]["all"]["boot"][1]
    gain, slice_gain = A[arms[0]]["all"]["boot"][0], A[arms[0]]["slice"]["boot"][0]
    sft_std = float(np.std(s, ddof=1)) if len(s) > 1 else None
    return {"order_per_seed": order, "wdpo_ci_above_zero": bool(ci_lo > 0),
            "largest_gain_on_slice": bool(slice_gain > gain), "sft_std": sft_std}


def main(argv=None):
    args = parser.parse_args(argv)
    evals = [load_eval(p) for p in args.evals]
    runs = args.run or [str(Path(p).resolve().parent.parent) for p in args.evals]
    if len(runs) != len(evals):
        raise SystemExit(f"error: --run has {len(runs)} dirs for {len(evals)} --evals files")
    names = [m for m in evals[0][0] if all(m in e[0] for e in evals)]
    dropped = sorted({m for e in evals for m in e[0]} - set(names))
    if dropped:
        print(f"note: arms not in every results.json are left out: {dropped}")
    for flag, arm in (("--baseline", args.baseline), ("--changes-vs", args.changes_vs)):
        if arm is not None and arm not in names:
            raise SystemExit(f"error: {flag} {arm!r} is not an arm of every results.json (arms: {names})")
    control = {}
    for spec in args.control:
        arm, _, ctl = spec.partition("=")
        if arm not in names or ctl not in names:
            raise SystemExit(f"error: --control {spec!r}: both sides must be arms of every results.json (arms: {names})")
        control[arm] = ctl
    cv = args.changes_vs or args.baseline
    out = Path(args.out or Path(runs[0]) / "summary.md")
    sfx = companion_suffix(out)
    S, N = len(evals), len(evals[0][1])
    base = args.baseline
    rep = {"baseline": base, "control": control, "seeds": S, "problems": [len(e[1]) for e in evals], "resamples": args.resamples,
           "evals": args.evals, "arms": {}}
    for m in names:
        a = {"acc": [float(e[2][m].mean()) for e in evals],
             "slice_acc": [float(e[2][m][[i in e[4] for i in e[1]]].mean()) if e[4] else None for e in evals]}
        b = control.get(m, base)    # the arm this one is judged against
        a["vs"] = b
        if m != base:
            for key, keep in (("all", lambda e: np.ones(len(e[1]), bool)),
                              ("slice", lambda e: np.array([i in e[4] for i in e[1]], bool))):
                x = np.concatenate([e[2][m][keep(e)] for e in evals])
                y = np.concatenate([e[2][b][keep(e)] for e in evals])
                cl = [i for e in evals for i, k in zip(e[1], keep(e)) if k]
                a[key] = {"boot": paired_bootstrap(x, y, args.resamples, args.seed, cl), "sign": sign_test(x, y), "n": len(x),
                          "per_seed": [float(e[2][m][keep(e)].mean() - e[2][b][keep(e)].mean()) if keep(e).any()
                                       else None for e in evals]}
        if m != cv:
            n_ch, tab = change_table([(c0, b0, c1, b1) for e in evals for c0, b0, c1, b1 in
                                      zip(e[3][cv], e[2][cv], e[3][m], e[2][m])], args.top)
            a["changes"] = {"vs": cv, "n_changed": n_ch, "top": tab}
        rep["arms"][m] = a
    # histories and diagnostics found in the run dirs
    hist = {}
    for s, (e, run) in enumerate(zip(evals, runs)):
        for m in names:
            d = arm_dir(e[5], run, m)
            if d is not None and (d / "history.json").exists():
                hist[(m, s)] = json.loads((d / "history.json").read_text())
    diags = []
    for s, run in enumerate(runs):
        for f in sorted(Path(run).glob("diag_*.json")):
            dj = json.loads(f.read_text())
            diags.append({"seed": s, "file": str(f), "label": f.stem[5:], "model": dj.get("model"), "ref": dj.get("ref"),
                          "pairs": dj.get("pairs"), "trained_on_pairs": dj.get("trained_on_pairs"), **dj.get("summary", {})})
    rep["diagnostics"] = diags
    rep["history_arms"] = sorted({f"{m} (seed {s})" for m, s in hist})
    pngs = plots(rep, names, base, hist, out.parent, sfx)

    # Markdown
    sd = lambda v: f"{100 * np.mean(v):.1f} ± {100 * np.std(v, ddof=1):.1f}" if len(v) > 1 else pct(v[0])  # noqa: E731
    L = [f"# {'; '.join(args.evals)}", "",
         f"{N if len(set(rep['problems'])) == 1 else rep['problems']} problems x {S} seed(s); baseline `{base}`; "
         f"95% paired bootstrap CIs, {args.resamples} resamples (numpy seed {args.seed})"
         + ("; problems resampled as clusters (all seeds of a problem together)" if S > 1 else "") + "; exact two-sided "
         f"sign test on discordant {'(seed, problem) pairs' if S > 1 else 'problems'} (+ = only the arm right, "
         "- = only the baseline right)."
         + "".join(f" `{m}` is judged against its own control `{c}`." for m, c in control.items()), "",
         "| arm | acc % | per seed | Δ vs base [95% CI] | sign +/- p | per-seed Δ | slice acc % | slice Δ [95% CI] | slice +/- p |",
         "|---|---|---|---|---|---|---|---|---|"]
    for m in names:
        a = rep["arms"][m]
        row = [m, sd(a["acc"]), " / ".join(pct(v) for v in a["acc"])]
        if m == base:
            row += ["(baseline)", "", "", sd([v for v in a["slice_acc"] if v is not None] or [float("nan")]), "", ""]
        else:
            st = lambda k: f"{a[k]['sign'][0]}/{a[k]['sign'][1]} p={a[k]['sign'][2]:.2g}"  # noqa: E731
            vs = f" vs {a['vs']}" if a["vs"] != base else ""
            row += [ci_str(a["all"]["boot"]) + vs, st("all"), " / ".join(f"{100 * v:+.1f}" for v in a["all"]["per_seed"]),
                    sd([v for v in a["slice_acc"] if v is not None] or [float("nan")]),
                    ci_str(a["slice"]["boot"]) + f" (n={a['slice']['n']})", st("slice")]
        L.append("| " + " | ".join(row) + " |")
    L += ["", "Near-miss slice: per results.json, the problems where any evaluated arm's greedy answer was a near miss."]
    rep["goal"] = g = goal_check(rep)
    if g is not None:
        yes = lambda b: "yes" if b else "**no**"  # noqa: E731
        L += ["", "## Goal check", "",
              "- `wdpo > dpo > sft+ >= sft` per seed: " + " / ".join(yes(b) for b in g["order_per_seed"]),
              f"- `wdpo - sft+` 95% CI above zero (pooled): {yes(g['wdpo_ci_above_zero'])}",
              f"- `wdpo`'s gain larger on the near-miss slice than on all problems: {yes(g['largest_gain_on_slice'])}"]
        if g["sft_std"] is not None:
            L.append(f"- SFT accuracy std over seeds <= 2 points: {yes(g['sft_std'] <= 0.02)} ({100 * g['sft_std']:.1f})")
    if diags:
        L += ["", "## Pair diagnostics (diagnose.py)", "",
              "| file | seed | model | ref | pairs | held-out | n | logp acc | implicit-reward acc | rejected = greedy top | "
              "the same, weighted | diverged | at a digit | result digits: argmax wrong (top shifts) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for d in diags:
            L.append(f"| {d['label']} | {d['seed']} | {d['model']} | {d['ref']} | {d['pairs']} | {'no' if d.get('trained_on_pairs') else 'yes'} | {d.get('n', '-')} | "
                     f"{pct(d.get('logp_acc'))} | {pct(d.get('reward_acc'))} | {pct(d.get('rejected_is_top'))} | "
                     f"{pct(d.get('rejected_is_top_weighted'))} | "
                     f"{pct(d.get('diverged'))} | {pct(d.get('diverge_at_digit'))} | {pct(d.get('result_digit_top_wrong'))} ("
                     + ", ".join(f"{k}: {100 * v:.1f}" for k, v in list(d.get("result_digit_top_shift", {}).items())[:3]) + ") |")
        L += ["", "logp acc: log p(chosen) > log p(rejected) under the model; implicit-reward acc: (model - ref) "
              "margin > 0, ties count 1/2 (model = ref gives 50); rejected = greedy top: the rejected token at the "
              "first token where rejected and chosen differ is the model's argmax there (% of pairs that diverge); the same, "
              "weighted: that share under the pairs' weights (where `wdpo`'s pair term puts its weight); at a digit: "
              "that rejected token holds a digit (else the pair first differs at a word: a wrong path, or no error); result "
              "digits: % of the digits after '=' in the chosen answers where the model's teacher-forced argmax is not "
              "the true digit, and the most frequent shifts (argmax - true digit, % of those digits)."]
    L += ["", f"## Most frequent first changes of the greedy answers, vs `{cv}` (all seeds)", "",
          f"The first character where an arm's answer differs from `{cv}`'s: a digit -> where it is (result after '=', "
          "answer, operand) and the digit's shift; else the two words.", ""]
    for m in names:
        if m == cv:
            continue
        c = rep["arms"][m]["changes"]
        L += [f"**{m}**: {c['n_changed']} changed answers.", "", "| first change | count | right->wrong | wrong->right | example |",
              "|---|---|---|---|---|"] + [f"| {cell(k)} | {n} | {rw} | {wr} | `{cell(ex)}` |" for k, n, rw, wr, ex in c["top"]] + [""]
    L += ["## Figures", ""] + ([f"![{p}]({p})" for p in pngs] or ["matplotlib not installed: no PNGs"])
    if not hist:
        L += ["", "(no history.json found in the arm dirs: no log-prob trajectories)"]
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, text in ((out, "\n".join(L) + "\n"), (out.with_name(f"report{sfx}.json"), json.dumps(rep, indent=2) + "\n")):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    print("\n".join(L))
    print(f"wrote {out} and {out.with_name(f'report{sfx}.json')}" + (f" and {', '.join(pngs)}" if pngs else ""))
    return rep


def companion_suffix(out):
    """The files written next to --out carry its name, so two reports in one dir (run.sh's summary.md and
    summary_val.md) do not overwrite each other: summary.md -> report.json, arms_ci.png; summary_val.md ->
    report_val.json, arms_ci_val.png; other.md -> report_other.json, arms_ci_other.png."""
    return out.stem[len("summary"):] if out.stem.startswith("summary") else "_" + out.stem


def plots(rep, names, base, hist, out_dir, sfx=""):
    """arms_ci{sfx}.png (Δ vs baseline with 95% CIs, all problems and near-miss slice) and logp_trajectories{sfx}.png
    (r_c, r_r, nll per step from history.json). Returns the written file names (relative to out_dir)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNGs")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    arms, written = [m for m in names if m != base], []
    fig, ax = plt.subplots(figsize=(1.2 * len(arms) + 3, 4))
    for off, key, col in ((-0.12, "all", "C0"), (0.12, "slice", "C3")):
        x = np.arange(len(arms)) + off
        d = np.array([rep["arms"][m][key]["boot"] for m in arms]) * 100          # (A, 3)
        ax.errorbar(x, d[:, 0], yerr=[d[:, 0] - d[:, 1], d[:, 2] - d[:, 0]], fmt="o", color=col, capsize=4,
                    label="all problems" if key == "all" else "near-miss slice")
        for i, m in enumerate(arms):  # per-seed differences as small dots
            ps = [v for v in rep["arms"][m][key]["per_seed"] if v is not None]
            ax.plot([x[i]] * len(ps), np.array(ps) * 100, ".", color=col, alpha=0.4)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xticks(range(len(arms)), [m if rep["arms"][m]["vs"] == base else f"{m}\nvs {rep['arms'][m]['vs']}"
                                     for m in arms], rotation=20)
    ax.set_ylabel(f"accuracy - {base} (points)")
    ax.set_title(f"95% paired bootstrap CIs, {rep['seeds']} seed(s)")
    ax.legend()
    fig.tight_layout()
    written.append(_save(fig, out_dir / f"arms_ci{sfx}.png"))
    if hist:
        fig, axs = plt.subplots(1, 3, figsize=(14, 4))
        for (m, s), h in sorted(hist.items()):
            st = [r["step"] for r in h]
            for ax, k in zip(axs, ("r_c", "r_r", "nll")):
                ax.plot(st, [r.get(k, float("nan")) for r in h], color=f"C{names.index(m) % 10}",
                        ls=["-", "--", ":", "-."][s % 4], label=f"{m} s{s}")
        for ax, t in zip(axs, ("chosen: beta (log pi - log ref)", "rejected: beta (log pi - log ref)", "chosen NLL / token")):
            ax.set_title(t)
            ax.set_xlabel("step")
        axs[0].legend(fontsize=7)
        fig.tight_layout()
        written.append(_save(fig, out_dir / f"logp_trajectories{sfx}.png"))
    plt.close("all")
    return written


def _save(fig, path):
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    return path.name


if __name__ == "__main__":
    main()
