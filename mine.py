"""
Stage 3b: mine preference pairs from verifier-scored samples. For each problem, chosen = a clean
verified-correct sample (or the reference solution when none is), rejected = hard negatives: wrong
but plausible samples (low absurdity, numerically close or a single slipped step), hardest first.

    python mine.py out/scored.jsonl -o out/pairs.jsonl                      # hard negatives, <= 4 per problem
    python mine.py out/scored.jsonl -o out/pairs_all.jsonl --negatives all  # ablation: any wrong sample

Hardness of a negative (from its verifier profile, both terms in [0, 1]):
    closeness = 1 - numeric_distance            (numeric_distance = 1 - exp(-|pred-ref| / max(|ref|,1) / 0.5))
    hardness  = (1 - absurdity) * closeness                                          in [0, 1]
Negatives are ranked by (near miss first, hardness desc, wrongness asc, sample_idx). Each pair's weight is
hardness ** --weight-power (default 2: a pair half as hard weighs a quarter) x failure_rate ** --failure-power
(default 4; failure_rate = the fraction of the problem's samples the verifier judged wrong with the negative's own
final answer, --failure-kind same-answer (default), or wrong at all, any: a systematic error of the model, made in
most of its samples, outweighs a rare slip 3 ** 4 = 81 to 1 at K = 4; power 0 = off), floored at --min-weight
(an absurd negative still teaches a little), then divided by the mean over the file so weights average 1. That
division only makes the numbers readable (1 = an average pair): it does not change training, because
train_dpo.py divides each step's weighted loss by the sum of that step's weights, so a factor common to all
weights cancels. Only the ratios between weights matter.
Output: one pair per line (see docs/conventions.md) + a sidecar pairs.jsonl.meta.json.
"""
import argparse
import json
import math
import random
from collections import Counter, defaultdict
from pathlib import Path

from answers import canon, compact
from records import DataError, format_prompt, format_response, read_json, read_jsonl, write_json, write_jsonl
from verifier import DIMENSIONS, is_near_miss, profile

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
# io
parser.add_argument("scored", help="scored sample JSONL from verifier.py (sample records + 'profile')")
parser.add_argument("-o", "--out", required=True, help="output pair JSONL (a .meta.json sidecar is written next to it)")
# selection
parser.add_argument("--negatives", default="hard", choices=["hard", "all", "random"],
                    help="hard: only near misses (verifier.is_near_miss), hardest first; all: any wrong sample, hardest "
                         "first; random: any wrong sample in a seeded random order, absurd ones included (the "
                         "'does hardness matter?' ablation)")
parser.add_argument("--rejected-from", default=None,
                    help="take the rejected candidates from this scored file instead (e.g. the model's own greedy "
                         "answers: sample.py --temperature 0 --k 1 + verifier.py); chosen still come from SCORED")
parser.add_argument("--heldout-frac", type=float, default=0.0,
                    help="put the pairs of this fraction of problems (seeded choice) in --heldout-out, not in --out: "
                         "pairs DPO never trains on, for held-out pair accuracy (diagnose.py)")
parser.add_argument("--heldout-out", default=None, help="output pair JSONL of the held-out problems (with --heldout-frac)")
parser.add_argument("--seed", type=int, default=0, help="seed of --negatives random and of the --heldout-frac choice")
parser.add_argument("--max-pairs-per-problem", type=int, default=4, help="cap on pairs per problem (hardest negatives kept)")
parser.add_argument("--max-absurdity", type=float, default=0.5, help="negatives more absurd than this are garbage, not hard")
parser.add_argument("--keep-absurd", action="store_true", help="keep truncated (finish_reason=length) and absurd negatives")
parser.add_argument("--max-chosen-wrongness", type=float, default=0.02,
                    help="a correct sample is a clean chosen only below this wrongness (one slipped step costs >= 0.04)")
parser.add_argument("--no-reference", action="store_true", help="never fall back to the reference solution as chosen")
parser.add_argument("--rejected-scope", default="first-error",
                    choices=["first-error", "before-value", "divergence", "full"],
                    help="first-error: the DPO loss on a rejected solution stops after its first wrong equation or "
                         "wrong value (pair field rejected_upto); before-value: the same, but a wrong value that no "
                         "wrong equation produced (a true computation on a wrong path) is left out; divergence: it "
                         "stops after the first token where rejected leaves chosen (a token-level pair); full: the "
                         "whole rejected text counts")
parser.add_argument("--min-weight", type=float, default=0.001,
                    help="floor of the raw weight before normalising to mean 1 (low: under the default failure power a "
                         "1-in-4 slip's raw weight is 0.0039 x hardness ** 2; 0.05, the floor of hardness-only "
                         "weights, would flatten every such slip to one value)")
parser.add_argument("--weight-power", type=float, default=2.0,
                    help="raw weight = hardness ** this x ... (the same pairs are mined; 2 chosen on val when hardness "
                         "was the only factor, README: power 1 left its coefficient of variation at 0.43-0.61, 2 gives "
                         "0.65-0.78; with the default failure power the CV is ~2.4)")
parser.add_argument("--failure-power", type=float, default=4.0,
                    help="raw weight x= failure_rate ** this (see --failure-kind): weight the model's systematic errors "
                         "over its rare slips; 0 = off (4 chosen on val, README 'Weights that find the model's own errors'; "
                         "--failure-power 0 --min-weight 0.05 = the hardness-only weights of earlier versions)")
parser.add_argument("--failure-kind", default="same-answer", choices=["any", "same-answer"],
                    help="failure_rate of a negative = the fraction of the problem's samples the verifier judged wrong "
                         "(any), or wrong with this negative's final answer (same-answer: how often the model makes "
                         "this very error; answers compared after answers.canon's cosmetics: '$1000' = '1000'). A "
                         "--rejected-from negative counts itself as one more draw")
parser.add_argument("--min-failure-rate", type=float, default=0.0,
                    help="keep only negatives whose failure_rate (see --failure-kind) is at least this: a filter where "
                         "--failure-power is a weight. 0 = keep all (default); with same-answer, 0.5 at K = 4 = the "
                         "error recurs in >= 2 of the problem's samples (the model's own error, not one T = 0.8 slip); "
                         "with any, a cut on the problem's share of wrong samples; a --rejected-from negative counts "
                         "itself, so at K = 4 it needs (c + 1) / 5 >= r (0.4 = one sample repeats it)")

REQUIRED = ("problem_id", "sample_idx", "completion", "answer", "finish_reason", "profile")
TYPES = {"problem_id": (str, int), "sample_idx": int, "completion": str, "answer": (str, int, float), "finish_reason": str,
         "profile": dict, "question": str, "prompt": str, "reference_solution": str}
PROFILE_KEYS = ("correct", "wrongness", "absurdity", "numeric_distance", "pred")   # what mine.py / is_near_miss read
PROFILE_NUMBERS = ("wrongness", "absurdity") + DIMENSIONS                         # severities: numbers in [0, 1]


def num(p, k, default=0.0):
    v = p.get(k)
    return default if v is None else float(v)


def hardness(profile):
    """plausibility x closeness = (1 - absurdity) * (1 - numeric_distance), in [0, 1]; 0 closeness when no number
    was found. (An earlier form, (1 - absurdity) * (1 + closeness), kept every negative within a factor of 2 of
    every other: on the toy its weights had a coefficient of variation of 0.28 and could not matter.)"""
    closeness = 1.0 - min(max(num(profile, "numeric_distance", 1.0), 0.0), 1.0)
    return (1.0 - min(max(num(profile, "absurdity"), 0.0), 1.0)) * closeness


def answer_key(pred):
    """An extracted answer as the same-answer failure rate compares it: cosmetics removed ('$1000', 'x = 5')."""
    return None if pred is None else compact(canon(str(pred)))


def check_profile(p):
    """The first problem of a verifier profile as 'field ...' text, or None. Severities are finite numbers in
    [0, 1] (NaN, inf, a bool or a string would turn into NaN weights or a traceback downstream)."""
    for k in PROFILE_KEYS:
        if k not in p or (k != "pred" and p[k] is None):
            return f"field 'profile' lacks '{k}'"
    if not isinstance(p["correct"], bool):
        return f"field 'profile.correct' must be true/false, got {type(p['correct']).__name__}"
    for k in PROFILE_NUMBERS:
        v = p.get(k)
        if v is None and k not in ("wrongness", "absurdity", "numeric_distance"):
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:  # NaN fails the range too
            return f"field 'profile.{k}' must be a number in [0, 1], got {json.dumps(v)[:40]}"
    d = p.get("details")
    if d is not None and not isinstance(d, dict):
        return f"field 'profile.details' must be an object, got {type(d).__name__}"
    d = d or {}
    for k, ok in (("n_wrong_equations", lambda v: isinstance(v, int) and not isinstance(v, bool)),
                  ("first_wrong_step", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
                  ("wrong_equations", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))):
        if d.get(k) is not None and not ok(d[k]):
            return f"field 'profile.details.{k}' has a wrong type ({json.dumps(d[k])[:40]})"
    return None


def load_scored(path):
    recs = read_jsonl(path, required=REQUIRED, types=TYPES)
    if not recs:
        raise DataError(f"{path}: no scored records")
    seen = {}
    for r in recs:
        bad = check_profile(r["profile"])
        if bad:
            raise DataError(f"{path}:{r['_line']}: {bad}")
        if r.get("prompt") is None and r.get("question") is None:
            raise DataError(f"{path}:{r['_line']}: missing field 'question' (or 'prompt')")
        key = (str(r["problem_id"]), r["sample_idx"])
        if key in seen:
            raise DataError(f"{path}:{r['_line']}: duplicate sample {key[0]}/{key[1]} (first at line {seen[key]})")
        seen[key] = r["_line"]
    return recs


def group_by_problem(recs):
    """{problem_id (str): its samples sorted by sample_idx}: the unit mining works on, whatever the input order."""
    groups = defaultdict(list)
    for r in recs:
        groups[str(r["problem_id"])].append(r)
    return {pid: sorted(ss, key=lambda s: s["sample_idx"]) for pid, ss in groups.items()}


def mine_problem(samples, args, stats, rejected_pool=None, problem_seed=0):
    """Pairs of one problem (samples sorted by sample_idx). Returns a list of pair dicts with raw weights.
    rejected_pool: the candidate negatives (default: the same samples); problem_seed: for --negatives random."""
    first = samples[0]
    pid = str(first["problem_id"])
    prompt = first.get("prompt") or format_prompt(first["question"])
    wrong = [answer_key(s["profile"].get("pred")) for s in samples if not s["profile"]["correct"]]  # sampled policy

    def failure_rate(neg):
        """How often the sampled policy makes this error. A negative from --rejected-from (e.g. the greedy answer)
        is one more draw of the policy: it counts itself, so an error no sample repeats still has a rate > 0."""
        own = 0 if rejected_pool is None else 1
        if args.failure_kind == "any":
            return (len(wrong) + own) / (len(samples) + own)
        key = answer_key(neg["profile"].get("pred"))  # no extracted answer: no error to recur (its hardness is 0 too)
        return 0.0 if key is None else (sum(k == key for k in wrong) + own) / (len(samples) + own)

    # chosen: clean correct samples, cleanest first; distinct texts are cycled over the negatives
    clean, texts = [], set()
    for s in sorted(samples, key=lambda s: (num(s["profile"], "wrongness"), num(s["profile"], "absurdity"), s["sample_idx"])):
        p, t = s["profile"], s["completion"]
        if (p["correct"] and s["finish_reason"] != "length" and t.strip() and t.strip() not in texts
                and num(p, "wrongness") <= args.max_chosen_wrongness):
            clean.append(("sample", s["sample_idx"], t, p))
            texts.add(t.strip())
    if not clean:
        ref = first.get("reference_solution")
        if ref and not args.no_reference:
            text = format_response(ref)
            p = profile(text, first["answer"], question=first.get("question"), truncated=False).to_dict()
            if not p["correct"] or num(p, "wrongness") > args.max_chosen_wrongness:
                # a flawed reference (noisy SFT data: the toy's flawed teacher, real MetaMathQA) is no chosen
                stats["reference_not_verified"] += 1
                stats["problems_no_chosen"] += 1
                return []
            clean = [("reference", None, text, p)]
            texts.add(text.strip())
        else:
            stats["problems_no_chosen"] += 1
            return []
    # rejected: wrong samples, filtered, deduplicated, ranked by the verifier
    cands, seen = [], set()
    for s in (samples if rejected_pool is None else rejected_pool):
        p, t = s["profile"], s["completion"]
        if p["correct"]:
            continue
        stats["wrong_samples"] += 1
        if not t.strip():
            stats["skip_empty"] += 1
        elif not args.keep_absurd and s["finish_reason"] == "length":
            stats["skip_truncated"] += 1
        elif not args.keep_absurd and args.negatives != "random" and num(p, "absurdity") > args.max_absurdity:
            stats["skip_absurd"] += 1
        elif args.negatives == "hard" and not is_near_miss(p):
            stats["skip_not_hard"] += 1
        elif t.strip() in seen:
            stats["skip_duplicate"] += 1
        elif t.strip() in texts:  # same text as a chosen: no preference to learn
            stats["skip_equals_chosen"] += 1
        elif failure_rate(s) < args.min_failure_rate:  # a rare error of the sampled policy, not a systematic one
            stats["skip_rare"] += 1
        else:
            seen.add(t.strip())
            cands.append(s)
    if args.negatives == "random":  # integer seed per problem: the same choice in every process
        random.Random(args.seed * 1_000_003 + problem_seed).shuffle(cands)
    else:
        cands.sort(key=lambda s: (not is_near_miss(s["profile"]), -hardness(s["profile"]),
                                  num(s["profile"], "wrongness"), s["sample_idx"]))
    stats["skip_over_cap"] += max(0, len(cands) - args.max_pairs_per_problem)
    pairs = []
    for j, s in enumerate(cands[:args.max_pairs_per_problem]):
        src, cidx, ctext, cprof = clean[j % len(clean)]
        hard = bool(is_near_miss(s["profile"]))
        tag = f"c{cidx}" if src == "sample" else "ref"
        rtag = "g" if rejected_pool is not None else "r"
        h, fail_rate = hardness(s["profile"]), failure_rate(s)
        pairs.append({"id": f"{pid}/{tag}-{rtag}{s['sample_idx']}", "problem_id": first["problem_id"], "prompt": prompt,
                      "chosen": ctext, "rejected": s["completion"],
                      "weight": max(h ** args.weight_power * fail_rate ** args.failure_power, args.min_weight),
                      "hardness": round(h, 6), "failure_rate": round(fail_rate, 6),
                      "answer": first["answer"], "chosen_source": src, "chosen_sample_idx": cidx,
                      "rejected_sample_idx": s["sample_idx"], "rank": j, "chosen_profile": cprof,
                      "rejected_profile": s["profile"], "hard": hard,
                      "rejected_upto": rejected_upto(args.rejected_scope, ctext, s["completion"], s["profile"])})
    return pairs


def error_kind(p):
    """The dominant verifier dimension of a wrong answer, for the pairs' summary (which kinds of negatives)."""
    dims = {d: num(p, d) for d in ("format", "logical", "arithmetic", "symbolic")}
    d, v = max(dims.items(), key=lambda kv: kv[1])
    return d if v > 0 else "answer_only"


def rejected_upto(scope, chosen, rejected, profile):
    """Where the rejected side of the loss ends (a character offset into `rejected`, or None = all of it)."""
    if scope == "first-error":
        return first_error_end(rejected, profile)
    if scope == "before-value":
        return first_error_end(rejected, profile, keep_true_results=False)
    if scope == "divergence":
        return divergence_end(chosen, rejected)
    return None


def divergence_end(chosen, rejected):
    """Character offset just past the first character where `rejected` leaves `chosen`, or None when one is a
    prefix of the other. The tokens before it are shared with chosen, so their log-probs cancel in the DPO
    margin; keeping only the token holding this character makes the pair a token-level one: DPO lowers the
    rejected choice at the exact prefix where it was made, and nothing the rejected text says after it."""
    n = min(len(chosen), len(rejected))
    i = next((k for k in range(n) if chosen[k] != rejected[k]), n)
    return i + 1 if i < n else None


def first_error_end(text, profile, keep_true_results=True):
    """Character offset just past the first wrong step the verifier located (details.first_wrong_end,
    a position in the scored text), or None. What follows a slip is mostly faithful work on a wrong
    number (copying it, carrying it on): pushing those tokens down would teach the model to stop
    copying. So the rejected side of the loss ends at the slip and DPO punishes exactly that step.
    keep_true_results=False: when the first wrong value was not produced by a wrong equation (the verifier's
    reason 'wrong_value_first_stated': e.g. '42 - 4 = 38' computed right, on the wrong path), end just before
    that value: pushing down '38' after '42 - 4 =' would teach the model to get a true subtraction wrong."""
    details = profile.get("details") or {}
    end = details.get("first_wrong_end")
    if not keep_true_results and details.get("first_wrong_reason") == "wrong_value_first_stated":
        end = details.get("first_wrong_start")
    if not isinstance(end, int) or isinstance(end, bool) or not 0 < end < len(text.rstrip()):
        return None  # nothing located, located at the very end (the answer), or another text: no cut
    return end


def histogram(ws, edges=(0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, float("inf")), width=40):
    counts = [sum(lo <= w < hi for w in ws) for lo, hi in zip(edges, edges[1:])]
    top = max(counts) or 1
    return "\n".join(f"  [{lo:4.2f}, {hi:4.2f})  {c:6d} {'#' * round(width * c / top)}"
                     for (lo, hi), c in zip(zip(edges, edges[1:]), counts))


def source_model(recs, scored_path):
    models = sorted({str(r["model"]) for r in recs if r.get("model")})
    if models:
        return models[0] if len(models) == 1 else models
    side = Path(str(scored_path) + ".meta.json")
    try:
        meta = read_json(side) if side.exists() else {}
    except DataError as e:
        raise SystemExit(f"error: {e}") from None
    return meta.get("model") if isinstance(meta, dict) else None


def main(argv=None):
    args = parser.parse_args(argv)
    try:
        recs = load_scored(args.scored)
    except DataError as e:
        raise SystemExit(f"error: {e}") from None
    if args.max_pairs_per_problem < 1:
        raise SystemExit("error: --max-pairs-per-problem must be >= 1")
    if not 0 <= args.heldout_frac < 1:
        raise SystemExit("error: --heldout-frac must be in [0, 1)")
    if args.heldout_frac and not args.heldout_out:
        raise SystemExit("error: --heldout-frac needs --heldout-out")
    if not (0 < args.weight_power < float("inf")) or not (0 <= args.failure_power < float("inf")):
        raise SystemExit("error: --weight-power must be a finite number > 0, --failure-power a finite number >= 0")
    if not 0 <= args.min_failure_rate <= 1:
        raise SystemExit("error: --min-failure-rate must be in [0, 1]")
    if not (0 < args.min_weight < float("inf")) or not (0 <= args.max_absurdity <= 1) or not (0 <= args.max_chosen_wrongness <= 1):
        raise SystemExit("error: --min-weight must be a finite number > 0; --max-absurdity, --max-chosen-wrongness in [0, 1]")
    by_problem = group_by_problem(recs)
    pool = None  # --rejected-from: the negatives come from another sample file, grouped the same way
    if args.rejected_from:
        try:
            pool = group_by_problem(load_scored(args.rejected_from))
        except DataError as e:
            raise SystemExit(f"error: {e}") from None
    stats = Counter()
    pairs = []
    for k, pid in enumerate(sorted(by_problem)):  # deterministic whatever the input order
        samples = by_problem[pid]
        got = mine_problem(samples, args, stats, None if pool is None else pool.get(pid, []), k)
        if not got and all(s["profile"]["correct"] for s in samples):
            stats["problems_all_correct"] += 1
        pairs.extend(got)
    n_prob = len(by_problem)
    covered = len({str(p["problem_id"]) for p in pairs})
    if not pairs:
        raise SystemExit(f"error: {args.scored}: no pairs mined from {len(recs)} samples of {n_prob} problems "
                         f"({dict(stats)}); try --negatives all or --keep-absurd"
                         + (" or a lower --min-failure-rate" if stats["skip_rare"] else ""))
    heldout = []
    if args.heldout_frac:  # whole problems go to the held-out file, chosen by a seeded shuffle of ALL sorted problem
        pids = sorted(by_problem)  # ids: the same problems whatever the mining rule (arms stay comparable)
        random.Random(args.seed).shuffle(pids)
        held = set(pids[:round(args.heldout_frac * len(pids))])
        heldout = [p for p in pairs if str(p["problem_id"]) in held]
        pairs = [p for p in pairs if str(p["problem_id"]) not in held]
        if not pairs:
            raise SystemExit(f"error: --heldout-frac {args.heldout_frac} holds out every problem with pairs; none left to train on"
                             + (" (try a lower --min-failure-rate)" if stats["skip_rare"] else ""))
    mean_w = sum(p["weight"] for p in pairs) / len(pairs)
    for p in pairs + heldout:
        p["weight"] = round(p["weight"] / mean_w, 6)
    ws = [p["weight"] for p in pairs]
    cv = math.sqrt(sum((w - 1) ** 2 for w in ws) / len(ws))  # weights have mean 1, so std = coefficient of variation
    summary = {"pairs": len(pairs), "problems": n_prob, "problems_covered": covered, "samples": len(recs),
               "chosen_from_reference": sum(p["chosen_source"] == "reference" for p in pairs),
               "hard": sum(p["hard"] for p in pairs), "not_hard": sum(not p["hard"] for p in pairs),
               "rejected_cut": sum(p["rejected_upto"] is not None for p in pairs),
               "weight_min": min(ws), "weight_max": max(ws), "weight_cv": round(cv, 4), "raw_weight_mean": round(mean_w, 6),
               "heldout_pairs": len(heldout), "rejected_from": args.rejected_from,
               "rejected_kinds": dict(Counter(error_kind(p["rejected_profile"]) for p in pairs)), **dict(sorted(stats.items()))}
    model = source_model(recs, args.scored)
    if isinstance(model, list):  # train_dpo.py needs one policy: it will ask for --model
        print(f"warning: the samples come from {len(model)} models {model}; pass train_dpo.py --model explicitly")
    write_jsonl(args.out, pairs)
    write_json(args.out + ".meta.json", {"stage": "mine", "model": model,
                                         "parent": args.scored, "args": vars(args), "summary": summary})
    if args.heldout_out:
        write_jsonl(args.heldout_out, heldout)
        write_json(args.heldout_out + ".meta.json", {"stage": "mine", "model": model, "parent": args.scored,
                                                     "args": vars(args), "summary": {"pairs": len(heldout)}})
    print(f"mine: {len(recs)} scored samples of {n_prob} problems -> {len(pairs)} pairs covering "
          f"{covered}/{n_prob} problems ({100 * covered / n_prob:.0f}%) -> {args.out}")
    print(f"chosen: {len(pairs) - summary['chosen_from_reference']} from samples, {summary['chosen_from_reference']} from the "
          f"reference solution ({stats['reference_not_verified']} references did not verify as correct) | rejected: "
          f"{summary['hard']} hard (near miss), {summary['not_hard']} not hard")
    print("skipped negatives: " + ", ".join(f"{k[5:]} {v}" for k, v in sorted(stats.items()) if k.startswith("skip_"))
          + f" | problems without pairs: {n_prob - covered} (all correct {stats['problems_all_correct']}, "
            f"no clean chosen {stats['problems_no_chosen']})")
    print(f"rejected kinds: {summary['rejected_kinds']}" + (f" | held out: {len(heldout)} pairs -> {args.heldout_out}" if heldout else ""))
    print(f"weights (normalised to mean 1; raw mean {mean_w:.3f}; coefficient of variation {cv:.2f}):\n{histogram(ws)}")


if __name__ == "__main__":
    main()
