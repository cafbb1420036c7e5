r"""
Stage 5: side-by-side evaluation of checkpoints on a held-out set, graded by the verifier.

    python evaluate.py --models out/sft out/dpo out/wdpo --data data/toy/test.jsonl
    python evaluate.py --models out/sft out/wdpo --data data/gsm8k/test.jsonl --k 8 --temperature 0.8 \
        --max-new-tokens 512 --batch-size 256                   # + maj@8 / pass@8 / mean@8
    python evaluate.py --models out/sft out/dpo --data val.jsonl test.jsonl --limit 1000 2000 \
        --out-dir out/eval_val out/eval_test                    # several files: each model loads once

Prints one Markdown table, one row per model:
  acc          greedy pass@1 (verifier.profile(...).correct)
  maj@k etc.   with --k > 1: majority vote over k samples at --temperature, pass@k, mean@k (mean sample accuracy)
  wrongness / absurdity   means over the model's wrong greedy answers
  near-miss    fraction of problems whose greedy answer is wrong and verifier.is_near_miss(profile)
  slice acc    accuracy on the common near-miss slice: problems where AT LEAST ONE evaluated model gave a
               near-miss greedy answer. The slice is the same for every model, so comparing models on it does not
               suffer the regression-to-the-mean bias of a slice picked by one model's own mistakes.
  per-dimension counts    for each verifier.DIMENSIONS entry, wrong greedy answers with that severity > 0.
Writes <out-dir>/results.json (metrics + per-problem predictions of every model) and <out-dir>/results.md, one pair per
--data file (each the same as a run on that file alone, but for the timings).
Generation is engine.py's Sampler, as in sample.py (same prompts, same seeds: sample j of problem i uses
engine.sample_seed). A prompt longer than the model's max_position_embeddings minus --max-new-tokens stops the run
with `error: FILE:LINE: prompt of N tokens exceeds ...` (checked as each model loads; results are written only at
the end, atomically). With --limit N and fewer than N problems in --data, a warning is printed and written to
results.md and results.json.
"""
import argparse
import os
import time
from collections import Counter
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

import verifier
from common import DataError, load_model, progress, write_json
from engine import Sampler, sample_seed
from problems import encode_prompts, load_problems

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--models", nargs="+", default=["out/sft"], help="checkpoint dirs (or hub ids / 'toy') to compare")
parser.add_argument("--names", nargs="+", default=None, help="row labels, one per model (default: directory names)")
parser.add_argument("--tokenizer", default=None, help="tokenizer path for models that have none (config-only dirs)")
parser.add_argument("--data", nargs="+", default=["data/toy/test.jsonl"], help="test JSONL(s) (question/answer[/solution]; "
                    "data/*/prepare.py); several: each model loads once and is evaluated on each, one --out-dir each")
parser.add_argument("--limit", type=int, nargs="+", default=[-1], help="evaluate the first N problems only (-1 = all); "
                    "one value for every --data file, or one per file")
parser.add_argument("--k", type=int, default=1, help="samples per problem for maj@k/pass@k (1 = greedy only)")
parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature for the k samples (--k > 1)")
parser.add_argument("--top-p", type=float, default=1.0, help="nucleus mass for the k samples")
parser.add_argument("--max-new-tokens", type=int, default=512,
                    help="generation budget per answer (prompts over the model's positions minus this are refused)")
parser.add_argument("--batch-size", type=int, default=64, help="rows decoded together")
parser.add_argument("--seed", type=int, default=0, help="base seed of the k samples")
parser.add_argument("--out-dir", nargs="+", default=None, help="where results.json/.md go, one per --data file (default, "
                    "one --data only: <first model's parent>/eval, else out/eval)")
parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
parser.add_argument("--dtype", default="bfloat16", help="weights dtype on GPU (CPU: float32)")
parser.add_argument("--cuda-graphs", default=True, action=argparse.BooleanOptionalAction, help="CUDA-graph decode (GPU)")
parser.add_argument("--compile", action="store_true", help="torch.compile the decode forward (GPU)")
parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")

# -----------------------------------------------------------------------------
# metrics: pure functions of per-problem records, unit-tested on hand-made profiles

def majority(profiles):
    """Majority vote over sampled answers, grouping equivalent answers with verifier.answers_match.
    Returns the winning group's first profile (ties: the group seen first) or None if no sample answered."""
    groups = []  # [representative pred, count, first profile]
    for p in profiles:
        if p["pred"] is None:
            continue
        for g in groups:
            if verifier.answers_match(g[0], p["pred"]):
                g[1] += 1
                break
        else:
            groups.append([p["pred"], 1, p])
    return max(groups, key=lambda g: g[1])[2] if groups else None  # max keeps the first of equal counts

def aggregate(per_model):
    """per_model: {name: [record per problem, same problem order for every model]}, record = {"profile": greedy
    profile dict, "finish_reason", optional "samples": [profile dicts of the k samples]}.
    Returns ({name: metrics}, slice) where slice = problem positions on which at least one model's greedy answer
    was a near miss."""
    names = list(per_model)
    n = len(per_model[names[0]]) if names else 0
    if any(len(v) != n for v in per_model.values()):
        raise ValueError("every model needs one record per problem")
    near = {m: [(not r["profile"]["correct"]) and verifier.is_near_miss(r["profile"]) for r in per_model[m]] for m in names}
    common = [i for i in range(n) if any(near[m][i] for m in names)]
    out = {}
    for m in names:
        recs = per_model[m]
        profs = [r["profile"] for r in recs]
        wrong = [p for p in profs if not p["correct"]]
        mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
        met = {"n": n, "acc": mean([float(p["correct"]) for p in profs]), "n_wrong": len(wrong),
               "wrongness": mean([p["wrongness"] for p in wrong]), "absurdity": mean([p["absurdity"] for p in wrong]),
               "near_miss": mean([float(x) for x in near[m]]), "n_near_miss": sum(near[m]),
               "slice_acc": mean([float(profs[i]["correct"]) for i in common]), "slice_n": len(common),
               "no_answer": mean([float(p["pred"] is None) for p in profs]),
               "truncated": mean([float(r.get("finish_reason") == "length") for r in recs]),
               "dims": {d: sum(1 for p in wrong if (p.get(d) or 0) > 0) for d in verifier.DIMENSIONS}}
        if recs and recs[0].get("samples"):
            k = len(recs[0]["samples"])
            maj = [majority(r["samples"]) for r in recs]
            met[f"maj@{k}"] = mean([float(v is not None and v["correct"]) for v in maj])
            met[f"pass@{k}"] = mean([float(any(s["correct"] for s in r["samples"])) for r in recs])
            met[f"mean@{k}"] = mean([sum(s["correct"] for s in r["samples"]) / k for r in recs])
        out[m] = met
    return out, common

def format_table(metrics):
    """One Markdown table, one row per model."""
    names = list(metrics)
    first = metrics[names[0]]
    extra = [c for c in first if c.split("@")[0] in ("maj", "pass", "mean")]
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    cols = (["model", "acc"] + extra + ["wrongness", "absurdity", "near-miss", f"slice acc (n={first['slice_n']})",
            "no answer", "truncated"] + [f"{d}" for d in verifier.DIMENSIONS])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for m in names:
        x = metrics[m]
        row = ([m, f(x["acc"])] + [f(x[c]) for c in extra] +
               [f(x["wrongness"]), f(x["absurdity"]), f(x["near_miss"]), f(x["slice_acc"]), f(x["no_answer"]),
                f(x["truncated"])] + [str(x["dims"][d]) for d in verifier.DIMENSIONS])
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)

# -----------------------------------------------------------------------------

def grade(completion, problem, finish_reason):
    return verifier.profile(completion, problem["answer"], question=problem["question"],
                            truncated=finish_reason == "length").to_dict()

def model_labels(models, names):
    if names:
        if len(names) != len(models):
            raise SystemExit(f"error: --names has {len(names)} labels for {len(models)} models")
        labels = list(names)
    else:
        labels = [Path(m).name or m for m in models]
        if len(set(labels)) < len(labels):  # run1/sft vs run2/sft: use the last two path components
            labels = ["/".join(Path(m).parts[-2:]) for m in models]
    if len(set(labels)) < len(labels):
        raise SystemExit(f"error: model labels are not unique ({labels}); pass --names")
    return labels

def write_text(path, text):
    """Atomic text write (tmp + os.replace): a crash never leaves a half results.md behind."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)

def evaluate_model(sampler, problems, prompt_ids, args, desc="eval"):
    """Greedy answers (+ k samples) of one model, graded. prompt_ids[i]: token ids of problem i's prompt.
    Returns one record per problem."""
    kw = dict(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    rows = [(p, j) for p in problems for j in range(args.k)] if args.k > 1 else []
    pbar = progress(total=len(problems) + len(rows), desc=desc)

    def generate(rows, **kw):  # rows: (problem, sample index) -> results in the order of rows
        res = [None] * len(rows)
        for idx, out in sampler.generate_batches([prompt_ids[p["problem_index"]] for p, _ in rows],
                                                 [sample_seed(args.seed, p["problem_index"], j) for p, j in rows], **kw):
            for i, r in zip(idx, out):
                res[i] = r
            pbar.update(len(idx))
        return res

    greedy = generate([(p, 0) for p in problems], temperature=0.0, **kw)
    recs = []
    for p, g in zip(problems, greedy):
        recs.append({"problem_id": p["id"], "answer": p["answer"], "completion": g["completion"],
                     "finish_reason": g["finish_reason"], "n_tokens": g["n_tokens"],
                     "profile": grade(g["completion"], p, g["finish_reason"])})
    if args.k > 1:
        outs = generate(rows, temperature=args.temperature, top_p=args.top_p, **kw)
        for i, r in enumerate(recs):
            r["samples"] = [grade(o["completion"], problems[i], o["finish_reason"])
                            for o in outs[i * args.k:(i + 1) * args.k]]
    pbar.close()
    return recs


def main(argv=None):
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.k > 1 and args.temperature <= 0:
        raise SystemExit("error: --k > 1 needs --temperature > 0 (k greedy answers would be identical)")
    labels = model_labels(args.models, args.names)
    n = len(args.data)
    if len(args.limit) not in (1, n):
        raise SystemExit(f"error: --limit has {len(args.limit)} values for {n} --data files; give one, or one each")
    if (args.out_dir is None and n > 1) or (args.out_dir is not None and len(args.out_dir) != n):
        raise SystemExit(f"error: --out-dir needs one folder per --data file ({n})")
    first = Path(args.models[0])
    default_out = first.parent / "eval" if first.is_dir() else Path("out/eval")
    # one job per --data file; its args are what a run on that file alone would record (results.json "args")
    jobs = [argparse.Namespace(**{**vars(args), "data": d, "limit": args.limit[i if len(args.limit) > 1 else 0],
                                  "out_dir": args.out_dir[i] if args.out_dir else None}) for i, d in enumerate(args.data)]
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtype = getattr(torch, args.dtype) if device.startswith("cuda") else torch.float32
    for job in jobs:
        job.problems = load_problems(job.data, job.limit)   # every file is checked before any model loads
        job.warnings, job.per_model, job.timing = [], {}, {}
        if 0 <= len(job.problems) < job.limit:  # e.g. a smoke run's 16-line file read by a --limit 500 evaluation
            job.warnings.append(f"--limit {job.limit} but {job.data} holds only {len(job.problems)} problems: "
                                f"evaluated on {len(job.problems)}")
            print(f"warning: {job.warnings[-1]}", flush=True)
        print(f"data: {job.data} | {len(job.problems)} problems | models: {', '.join(labels)} | device {device}", flush=True)

    hf_logging.disable_progress_bar()  # transformers' "Loading weights" bar would sit inside our log
    for label, name in zip(labels, args.models):
        t0 = time.time()
        model, tok, how = load_model(name, dtype=dtype, device=device, tokenizer=args.tokenizer)
        sampler = Sampler(model, tok, device, cuda_graphs=args.cuda_graphs, compile=args.compile)
        # refuses over-long prompts before this model generates anything; nothing is written before the end
        prompt_ids = [encode_prompts(job.problems, tok, model.config.max_position_embeddings, args.max_new_tokens,
                                     sampler.max_token_bytes, job.data) for job in jobs]
        for job, ids in zip(jobs, prompt_ids):
            job.per_model[label] = evaluate_model(sampler, job.problems, ids, args, desc=f"eval {label}")
            job.timing[label] = round(time.time() - t0, 1)   # the first file's time includes the model load
            t0 = time.time()
            acc = sum(r["profile"]["correct"] for r in job.per_model[label]) / max(1, len(job.problems))
            print(f"{label}: {how} | {job.data} greedy acc {acc:.3f} | {job.timing[label]:.1f} s", flush=True)
        del model, sampler
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    results = [write_results(job, labels, job.out_dir or default_out) for job in jobs]
    return results[0] if n == 1 else results


def write_results(job, labels, out_dir):
    """results.md and results.json of one --data file into out_dir; returns the metrics."""
    problems, per_model = job.problems, job.per_model
    metrics, common = aggregate(per_model)
    for m in metrics:
        metrics[m]["seconds"] = job.timing[m]
    table = format_table(metrics)
    print(table)
    reasons = Counter(r["finish_reason"] for v in per_model.values() for r in v)
    header = (f"# Evaluation on {job.data} ({len(problems)} problems)\n\n"
              f"models: {', '.join(f'{l} = {m}' for l, m in zip(labels, job.models))}  \n"
              f"greedy decoding, max {job.max_new_tokens} new tokens"
              + (f"; maj/pass/mean@{job.k} at temperature {job.temperature}, top-p {job.top_p}, seed {job.seed}" if job.k > 1 else "")
              + f"  \nnear-miss slice: {len(common)} problems on which at least one model's greedy answer was a near miss"
              + "".join(f"  \n**warning**: {w}" for w in job.warnings) + "\n\n")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "results.md", header + table + "\n")
    args = {k: v for k, v in vars(job).items() if k not in ("problems", "warnings", "per_model", "timing")}
    write_json(out_dir / "results.json", {
        "data": job.data, "n_problems": len(problems), "warnings": job.warnings, "args": args, "models": dict(zip(labels, job.models)),
        "metrics": metrics, "finish_reasons": dict(reasons),
        "near_miss_slice": {"definition": "problems where at least one evaluated model's greedy answer is wrong and "
                                          "verifier.is_near_miss", "problem_ids": [problems[i]["id"] for i in common]},
        "predictions": per_model})
    print(f"wrote {out_dir / 'results.json'} and {out_dir / 'results.md'}")
    return metrics


if __name__ == "__main__":
    try:
        main()
    except DataError as e:
        raise SystemExit(f"error: {e}")
