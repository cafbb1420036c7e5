r"""
Stage 2: sample K solutions per problem from a checkpoint, fast and resumable.

    python sample.py --model out/sft --data data/toy/train.jsonl --k 8 --temperature 0.8 -o out/samples.jsonl
    python sample.py ... --resume                          # after a crash/kill: skips the finished samples
    torchrun --nproc_per_node 8 sample.py --model out/sft --data data/gsm8k/train.jsonl --k 8 --temperature 0.8 \
        -o out/samples.jsonl                               # problems sharded over ranks, rank 0 merges

Output: one JSONL record per (problem, sample) in README's samples schema, sorted by (problem index, sample_idx)
at the end, plus `<out>.meta.json`. While running, each rank appends (flushed per batch) to `<out>.part<rank>`;
--resume reads those and `<out>`, so a killed run loses at most one batch.

Decoding is engine.py's Sampler (a static-KV-cache Qwen2 forward, CUDA graphs; read engine.reference_generate for
what a sample is). Sample j of problem i uses seed = base_seed * 1_000_003 + i * 1009 + j (i = 0-based position in
--data, stored in the record), and its tokens are a pure function of (model, prompt, seed): independent of batch
size, batch order, rank count and --max-new-tokens, so any stored sample regenerates alone from its seed.

Over-long prompts are refused: a prompt may hold at most the model's max_position_embeddings minus --max-new-tokens
tokens; a longer one stops the run with `error: FILE:LINE: prompt of N tokens exceeds ...` before anything is
written (no truncation: a question cut short is another question).
"""
import argparse
import json
import os
import time
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from common import (DataError, compute_cleanup, compute_init, format_prompt, load_model, print0, progress,
                    read_jsonl_tolerant, write_json, write_jsonl)
from engine import Sampler, sample_seed
from problems import encode_prompts, load_problems

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default="out/sft", help="checkpoint dir (HF format), hub id, or 'toy' (random tiny Qwen2)")
parser.add_argument("--tokenizer", default=None, help="tokenizer path if --model has none (a config-only dir)")
parser.add_argument("--data", default="data/toy/train.jsonl", help="problems JSONL with question/answer (+id, solution)")
parser.add_argument("-o", "--out", default="out/samples.jsonl", help="output JSONL (one record per problem x sample)")
parser.add_argument("--k", type=int, default=8, help="samples per problem")
parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature; 0 = greedy")
parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off; < 1 sorts the vocab each step)")
parser.add_argument("--max-new-tokens", type=int, default=512,
                    help="generation budget per sample (finish_reason 'length'); a prompt over the model's positions "
                         "minus this is refused (error: FILE:LINE)")
parser.add_argument("--batch-size", type=int, default=64, help="rows (problem x sample) decoded together")
parser.add_argument("--limit", type=int, default=-1, help="use only the first N problems of --data (-1 = all)")
parser.add_argument("--seed", type=int, default=0, help="base seed; per-sample seeds derive from it (see docstring)")
parser.add_argument("--resume", action="store_true", help="keep the samples already in <out> / <out>.part*, generate the rest")
parser.add_argument("--no-stop-at-answer", action="store_true", help="do not stop after the 'The answer is: N' line")
parser.add_argument("--check-every", type=int, default=8, help="decode steps between host syncs (stop checks, compaction)")
parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
parser.add_argument("--dtype", default="bfloat16", help="weights dtype on GPU: bfloat16 | float16 | float32 (CPU: float32)")
parser.add_argument("--cuda-graphs", default=True, action=argparse.BooleanOptionalAction, help="replay the decode step as a CUDA graph (GPU)")
parser.add_argument("--compile", action="store_true", help="torch.compile the decode forward (GPU; first batch pays compile time)")
parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")

# settings that define what a sample is: a --resume must use the same ones
SAME_ON_RESUME = ("model", "data", "temperature", "top_p", "max_new_tokens", "no_stop_at_answer", "seed")

def part_path(out, rank):
    return Path(f"{out}.part{rank}")

def read_done(out, include_out=True):
    """Every sample record already written: <out> (a finished run) and all <out>.part* files (torn tails dropped)."""
    recs = []
    for p in ([Path(out)] if include_out else []) + sorted(Path(out).parent.glob(Path(out).name + ".part*")):
        recs += read_jsonl_tolerant(p)[0]
    return recs

def make_record(p, j, seed, prompt, r, model_name):
    return {"id": f"{p['id']}/{j}", "problem_id": p["id"], "problem_index": p["problem_index"], "sample_idx": j,
            "seed": seed, "question": p["question"], "prompt": prompt, "completion": r["completion"],
            "answer": p["answer"], "reference_solution": p.get("solution"), "finish_reason": r["finish_reason"],
            "n_tokens": r["n_tokens"], "model": model_name}


def check_resume_settings(args, meta_path):
    """--resume: the sidecar of the run being continued must have the same settings (--k and --limit may grow;
    what a sample IS may not change). Raises SystemExit otherwise."""
    if meta_path.exists():
        old = json.loads(meta_path.read_text()).get("args", {})
        diff = [k for k in SAME_ON_RESUME if k in old and old[k] != getattr(args, k)]
        if diff:
            was = ", ".join(f"--{d.replace('_', '-')} {old[d]!r}" for d in diff)
            raise SystemExit(f"error: --resume: {meta_path} was written with {was}; use another -o or drop --resume")


def rows_done(args, out, problems):
    """--resume: {(problem_id, sample_idx): record} already written in <out> / <out>.part*; every record must carry
    the seed and model this run would use. Raises SystemExit otherwise."""
    by_id, done = {p["id"]: p for p in problems}, {}
    for r in read_done(out):
        p = by_id.get(r.get("problem_id"))
        if p is None or r.get("sample_idx", args.k) >= args.k:
            continue
        if r.get("seed") != sample_seed(args.seed, p["problem_index"], r["sample_idx"]) or r.get("model") != args.model:
            raise SystemExit(f"error: --resume: {out}: record {r.get('id')} was made with another --seed/--model/"
                             f"--data order; use another -o or drop --resume")
        done[(r["problem_id"], r["sample_idx"])] = r
    return done


def main(argv=None):
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.k < 1 or args.max_new_tokens < 1 or args.batch_size < 1 or not 0 < args.top_p <= 1:
        raise SystemExit("error: --k, --max-new-tokens, --batch-size must be >= 1 and 0 < --top-p <= 1")
    ddp, rank, _, world, device = compute_init(args.device)

    # ---- everything that can refuse the input runs before anything is written: the problems, then their prompts
    problems = load_problems(args.data, args.limit)
    out, part, meta_path = Path(args.out), part_path(args.out, rank), Path(f"{args.out}.meta.json")
    if args.resume:
        check_resume_settings(args, meta_path)
    dtype = getattr(torch, args.dtype) if str(device).startswith("cuda") else torch.float32
    hf_logging.disable_progress_bar()  # transformers' "Loading weights" bar would sit inside our log
    model, tok, how = load_model(args.model, dtype=dtype, device=device, tokenizer=args.tokenizer)
    sampler = Sampler(model, tok, device, cuda_graphs=args.cuda_graphs, compile=args.compile,
                      check_every=args.check_every)
    prompt_ids = encode_prompts(problems, tok, model.config.max_position_embeddings, args.max_new_tokens,
                                sampler.max_token_bytes, args.data)
    out.parent.mkdir(parents=True, exist_ok=True)

    # ---- resume: which (problem, sample) rows exist already, from the same settings
    done = {}
    if args.resume:
        good = read_jsonl_tolerant(part)[1]
        if part.exists() and good < part.stat().st_size:
            with open(part, "r+b") as f:  # cut the torn last line of a killed writer before appending again
                f.truncate(good)
        if ddp:
            torch.distributed.barrier()  # every rank has cut its torn tail before anyone reads
        done = rows_done(args, out, problems)
    elif rank == 0:
        for p in [out, meta_path] + list(out.parent.glob(out.name + ".part*")):
            p.unlink(missing_ok=True)
    if rank == 0:  # the sidecar exists while running (status 'running'), so a --resume can check the settings
        write_json(meta_path, {"stage": "sample", "status": "running", "args": vars(args), "model": args.model,
                               "parent": args.data})
    if ddp:
        torch.distributed.barrier()  # rank 0 has cleaned up before anyone appends

    # ---- this rank's rows: problems sorted by length are dealt round-robin so every rank gets a similar mix
    mine = sorted(problems, key=lambda p: (len(p["question"]), p["problem_index"]))[rank::world]
    todo = [(p, j) for p in sorted(mine, key=lambda p: p["problem_index"]) for j in range(args.k)
            if (p["id"], j) not in done]
    n_mine = len(mine) * args.k
    print0(f"model: {how} | data: {len(problems)} problems x {args.k} | world {world} | resume: {len(done)} done | "
           f"device {device}")
    seeds = [sample_seed(args.seed, p["problem_index"], j) for p, j in todo]
    pbar = progress(total=n_mine, initial=n_mine - len(todo), desc=f"sample[{rank}]", disable=rank != 0)
    t0, n_tok = time.time(), 0
    with open(part, "a", encoding="utf-8") as f:
        for rows, results in sampler.generate_batches([prompt_ids[p["problem_index"]] for p, _ in todo], seeds,
                                                      max_new_tokens=args.max_new_tokens,
                                                      temperature=args.temperature, top_p=args.top_p,
                                                      batch_size=args.batch_size,
                                                      stop_at_answer=not args.no_stop_at_answer):
            for i, r in zip(rows, results):
                p, j = todo[i]
                f.write(json.dumps(make_record(p, j, seeds[i], format_prompt(p["question"]), r, args.model),
                                   ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())  # a kill loses at most the batch in flight
            n_tok += sum(r["n_tokens"] for r in results)
            pbar.update(len(rows))
            pbar.set_postfix(tok_s=f"{n_tok / (time.time() - t0):.0f}", refresh=False)  # drawn at tqdm's interval
    pbar.close()
    elapsed = time.time() - t0
    if ddp:
        torch.distributed.barrier()  # every part file is complete

    # ---- rank 0 merges everything in a stable order and writes the sidecar
    if rank == 0:
        by_id = {p["id"]: p for p in problems}
        recs = {}
        for r in read_done(out):
            if r.get("problem_id") in by_id and r.get("sample_idx", args.k) < args.k:
                recs.setdefault((r["problem_id"], r["sample_idx"]), r)
        recs = sorted(recs.values(), key=lambda r: (by_id[r["problem_id"]]["problem_index"], r["sample_idx"]))
        missing = len(problems) * args.k - len(recs)
        write_jsonl(out, recs)
        for p in out.parent.glob(out.name + ".part*"):
            p.unlink()
        reasons = {k: sum(r["finish_reason"] == k for r in recs) for k in ("eos", "stop", "length")}
        stats = {"n_problems": len(problems), "n_samples": len(recs), "missing": missing, "finish_reasons": reasons,
                 "new_tokens": sum(r["n_tokens"] for r in recs), "elapsed_s_rank0": round(elapsed, 2),
                 "tokens_per_s_rank0": round(n_tok / max(elapsed, 1e-9), 1), "world_size": world}
        write_json(meta_path, {"stage": "sample", "status": "done", "args": vars(args), "model": args.model,
                               "parent": args.data, "stats": stats})
        print0(f"wrote {len(recs)} samples to {out} | finish {reasons} | {n_tok} new tokens on rank 0 in "
               f"{elapsed:.1f}s ({stats['tokens_per_s_rank0']:.0f} tok/s)" + (f" | MISSING {missing}" if missing else ""))
    compute_cleanup(ddp)


if __name__ == "__main__":
    try:
        main()
    except DataError as e:
        raise SystemExit(f"error: {e}")
