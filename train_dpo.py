"""
Stage 4: verifier-weighted DPO on mined (chosen, hard negative) pairs, full-parameter.

    python train_dpo.py --pairs out/pairs.jsonl --out-dir out/dpo_w                       # toy: policy = the SFT
    python train_dpo.py --pairs out/pairs.jsonl --out-dir out/dpo_plain --weighting none  #   checkpoint in the meta
    python train_dpo.py --pairs pairs.jsonl --model out/sft --batch-size 64 --micro-batch-size 8 \
        --lr 5e-7 --grad-checkpointing                                                    # Qwen2.5-1.5B, one GPU
    torchrun --nproc_per_node 8 train_dpo.py ...                                          # DDP
    python train_dpo.py --pairs p.jsonl --model out/sft --out-dir out/dpo --weighting none \
        --then --pairs p.jsonl --model out/sft --out-dir out/sftplus --loss sft           # several runs, one process

Objective over one optimizer step S (all micro-batches, all ranks), eq. 7 of the DPO paper with a weight per pair:
    L = sum_{i in S} w_i * -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))) / sum_{i in S} w_i
        + sft_alpha * (-sum_{i in S} pi_c) / (chosen tokens in S)
(--weighted-nll: the NLL term weighs pair i's chosen tokens by w_i too: -sum w_i pi_c / sum w_i n_c,i.)
where pi_* / ref_* are log-probs of the response tokens (+ EOS) summed, under policy / reference.
--weighting none sets every w_i = 1: vanilla DPO exactly (the ablation). --loss swaps the per-pair term for
IPO, conservative DPO or DPO-Positive (pure functions below, each next to its equation); --loss sft drops it and
keeps only the NLL term: the matched-compute control `sft+` (same pairs, steps, tokens and lr).
The reference log-probs are computed once and cached next to the pairs (pairs.jsonl.ref.<key>.safetensors);
the reference model then leaves memory. Checkpoint: a Hugging Face dir + hardneg_meta.json (+ train_state.safetensors).
--then (a separator, not a flag) splits the command line into several runs done one after the other in one process
(run.sh's seven arms: one torch/transformers start-up instead of seven). Each run takes only its own flags, all are
parsed before the first starts, and each writes byte for byte what it writes alone. Not under torchrun.
"""
import argparse
import gc
import hashlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from checkpoint import load_train_state, recover_checkpoint, restore_train_state, save_checkpoint
from common import (IGNORE, DataError, autocast_ctx, collate, compute_cleanup, compute_init, encode_pair, encode_rejected,
                    get_lr, grad_accum_steps, has_weights, load_model, load_tokenizer, make_optimizer, print0, progress,
                    read_json, read_jsonl, resolve_model, sequence_logps, step_indices, training_forward, write_json)

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
# model / data
parser.add_argument("--pairs", required=True, help="pair JSONL from mine.py (prompt, chosen, rejected, weight)")
parser.add_argument("--model", default=None, help="initial policy; default: the checkpoint named by <pairs>.meta.json 'model'")
parser.add_argument("--ref", default=None, help="reference model; default: the initial policy")
parser.add_argument("--tokenizer", default=None, help="tokenizer path if --model has none (e.g. a config-only dir)")
parser.add_argument("--out-dir", default="out/dpo", help="checkpoint directory (HF format)")
parser.add_argument("--max-len", type=int, default=512, help="pairs whose prompt+response(+eos) exceed this are skipped and counted")
# objective
parser.add_argument("--beta", type=float, default=0.1, help="DPO beta: strength of the implicit KL to the reference")
parser.add_argument("--weighting", default="verifier", choices=["verifier", "none", "shuffled"],
                    help="verifier: use each pair's 'weight'; none: all 1 = vanilla DPO (the ablation); shuffled: the "
                         "same weights randomly permuted over pairs (seeded; do the weights carry information?)")
parser.add_argument("--loss", default="dpo", choices=["cdpo", "dpo", "dpop", "ipo", "sft"],
                    help="pair objective: dpo (default), ipo, cdpo (label smoothing), dpop (DPO-Positive), "
                         "sft (no pair term: NLL on the chosen side only, the matched-compute control)")
parser.add_argument("--label-smoothing", type=float, default=0.1, help="cdpo: assumed fraction of flipped preferences")
parser.add_argument("--dpop-lambda", type=float, default=50.0, help="dpop: penalty on the chosen log-ratio falling below 0 (Smaug paper: 50)")
parser.add_argument("--sft-alpha", type=float, default=0.0, help="add alpha x NLL of the chosen responses (token mean over the step)")
parser.add_argument("--weighted-nll", action="store_true",
                    help="the --sft-alpha NLL term weighs each pair's chosen tokens by the pair's weight (a token mean "
                         "under the weights; with --loss sft: the weighted control, NLL alone under the same weights)")
parser.add_argument("--ref-on-the-fly", action="store_true", help="keep the reference in memory and run it every step (no cache)")
# optimisation
parser.add_argument("--batch-size", type=int, default=32, help="pairs per optimizer step (all ranks, all micro-batches)")
parser.add_argument("--micro-batch-size", type=int, default=16, help="pairs per forward/backward on one rank (2x sequences)")
parser.add_argument("--epochs", type=float, default=2.0, help="passes over the pairs (ignored if --max-steps > 0)")
parser.add_argument("--max-steps", type=int, default=-1, help="optimizer steps; -1 = derive from --epochs")
parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (toy default; ~5e-7..1e-6 for a 1.5B model)")
parser.add_argument("--min-lr-frac", type=float, default=0.1, help="cosine decays to this fraction of --lr")
parser.add_argument("--warmup", type=int, default=10, help="linear warmup steps")
parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
parser.add_argument("--grad-clip", type=float, default=1.0, help="clip grad norm (0 = off)")
# runtime
parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
parser.add_argument("--dtype", default="bfloat16", help="autocast dtype on GPU: bfloat16 | float32 (CPU always fp32)")
parser.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in backward (needed for 1.5B)")
parser.add_argument("--compile", action="store_true", help="torch.compile the policy forward (GPU)")
parser.add_argument("--head-chunk-rows", type=int, default=1024, help="labelled positions per lm_head chunk: its backward holds ~16 B x rows x V (2.5 GB for 1024 rows at V=151,936)")
parser.add_argument("--seed", type=int, default=0, help="seed for init (toy) and pair order")
parser.add_argument("--save-every", type=int, default=200, help="checkpoint every N steps (-1 = only at the end)")
parser.add_argument("--snapshot-every", type=int, default=-1,
                    help="also keep the weights of every N-th step in <out-dir>_step<N> (a learning curve from one run; "
                         "no train state; -1 = off)")
parser.add_argument("--log-every", type=int, default=10, help="print one log line every N steps (and at the last)")
parser.add_argument("--resume", action="store_true", help="continue from --out-dir/train_state.safetensors (exact: same pair order)")
parser.add_argument("--halt-after", type=int, default=-1, help="save and stop after this step as if killed (tests --resume); -1 = off")
parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")


def preference_loss(pi_c, pi_r, ref_c, ref_r, beta):
    """DPO loss per pair (eq. 7 of https://arxiv.org/abs/2305.18290), no reduction.
    Args:
        pi_c, pi_r:   (B,) policy log-probs of the chosen / rejected responses (summed over response tokens)
        ref_c, ref_r: (B,) the same under the reference model
        beta: temperature of the implicit reward; 0.1 is the usual value
    Returns (losses, chosen_rewards, rejected_rewards), each (B,); rewards = beta * (pi - ref), detached."""
    logits = (pi_c - pi_r) - (ref_c - ref_r)                 # (B,) h = log-ratio difference
    losses = -F.logsigmoid(beta * logits)                    # (B,)
    return losses, (beta * (pi_c - ref_c)).detach(), (beta * (pi_r - ref_r)).detach()


def ipo_loss(pi_c, pi_r, ref_c, ref_r, beta):
    """IPO (eq. 17 of https://arxiv.org/abs/2310.12036, tau = beta): a squared loss that stops at a margin of
    1/(2 beta) instead of pushing the log-ratio difference to infinity. (B,) tensors in, (B,) out."""
    return ((pi_c - pi_r) - (ref_c - ref_r) - 1 / (2 * beta)) ** 2


def cdpo_loss(pi_c, pi_r, ref_c, ref_r, beta, eps):
    """Conservative DPO (label smoothing eps, https://ericmitchell.ai/cdpo.pdf): a fraction eps of the
    preferences is assumed flipped, so the optimum is a finite margin. (B,) tensors in, (B,) out."""
    h = beta * ((pi_c - pi_r) - (ref_c - ref_r))
    return -(1 - eps) * F.logsigmoid(h) - eps * F.logsigmoid(-h)


def dpop_loss(pi_c, pi_r, ref_c, ref_r, beta, lam):
    """DPO-Positive (eq. 3 of https://arxiv.org/abs/2402.13228): DPO minus lam x how far the chosen log-prob
    fell below the reference's, so the margin cannot grow by lowering both sides (pairs that differ in a few
    tokens, like ours). (B,) tensors in, (B,) out."""
    h = (pi_c - pi_r) - (ref_c - ref_r) - lam * torch.clamp(ref_c - pi_c, min=0)
    return -F.logsigmoid(beta * h)


def pair_losses(args):
    """The per-pair term selected by --loss, as f(pi_c, pi_r, ref_c, ref_r) -> (B,) losses."""
    return {"dpo": lambda a, b, c, d: preference_loss(a, b, c, d, args.beta)[0],
            "ipo": lambda a, b, c, d: ipo_loss(a, b, c, d, args.beta),
            "cdpo": lambda a, b, c, d: cdpo_loss(a, b, c, d, args.beta, args.label_smoothing),
            "dpop": lambda a, b, c, d: dpop_loss(a, b, c, d, args.beta, args.dpop_lambda),
            "sft": lambda a, b, c, d: torch.zeros_like(a)}[args.loss]  # the control: only the NLL term


def pairs_sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


MAX_WEIGHT = 1e6


def load_pairs(path, tok, max_len, weighting="verifier", shuffle_seed=0):
    """Read + tokenise pairs. Returns a list of {"c": (ids, labels), "r": (ids, labels), "w", "nc", "nr", "line"}.
    Bad records raise DataError('file:line: ...'); pairs over max_len are skipped with a counted note."""
    req = ("prompt", "chosen", "rejected") + (("weight",) if weighting != "none" else ())
    recs = read_jsonl(path, required=req, types={"prompt": str, "chosen": str, "rejected": str, "weight": (int, float)})
    if not recs:
        raise DataError(f"{path}: no pairs")
    pairs, long_lines, max_seen = [], [], 0
    for r in recs:
        w = float(r["weight"]) if weighting != "none" else 1.0  # read_jsonl refused true/false already
        # json.loads accepts NaN / Infinity; a finite 1e39 overflows float32 (NaN model). Weights are relative (the
        # step divides by their sum), so MAX_WEIGHT costs nothing and keeps w x loss far inside float32.
        if not (math.isfinite(w) and 0 <= w <= MAX_WEIGHT):
            raise DataError(f"{path}:{r['_line']}: weight must be a finite number in [0, {MAX_WEIGHT:g}], got {r['weight']}")
        if r["chosen"] == r["rejected"]:
            raise DataError(f"{path}:{r['_line']}: chosen and rejected are the same text (no preference to learn)")
        c = encode_pair(tok, r["prompt"], r["chosen"])
        upto = r.get("rejected_upto")
        if upto is not None and not (isinstance(upto, int) and 0 < upto <= len(r["rejected"])):
            raise DataError(f"{path}:{r['_line']}: field 'rejected_upto' must be an int in [1, len(rejected)], got {upto!r}")
        rj = encode_rejected(tok, r["prompt"], r["rejected"], upto)
        n = max(len(c[0]), len(rj[0]))
        if n > max_len:
            long_lines.append(r["_line"])
            max_seen = max(max_seen, n)
            continue
        pairs.append({"c": c, "r": rj, "w": w, "line": r["_line"],
                      "nc": sum(t != -100 for t in c[1]), "nr": sum(t != -100 for t in rj[1])})
    if long_lines:  # never silently: say how many and where
        print0(f"note: {path}: skipped {len(long_lines)}/{len(recs)} pairs longer than --max-len {max_len} "
               f"(prompt+response+eos; lines {long_lines[:5]}{' ...' if len(long_lines) > 5 else ''}, longest {max_seen} tokens)")
    if not pairs:
        raise DataError(f"{path}: every pair is longer than --max-len {max_len}")
    if sum(p["w"] for p in pairs) <= 0:
        raise DataError(f"{path}: all weights are zero")
    if weighting == "shuffled":  # same multiset of weights, no longer attached to their pairs (integer seed)
        ws = [p["w"] for p in pairs]
        random.Random(shuffle_seed).shuffle(ws)
        for p, w in zip(pairs, ws):
            p["w"] = w
    return pairs


def concat_batch(batch, pad_id, device):
    """Chosen and rejected of B pairs as ONE (2B, T) batch: one forward, rows [:B] chosen, [B:] rejected."""
    return collate([p["c"] for p in batch] + [p["r"] for p in batch], pad_id, device)


@dataclass
class PairBatch:
    """One micro-batch of B pairs, ready for dpo_micro_loss. w_sum and nc_sum belong to the WHOLE optimizer step
    (all micro-batches, all ranks): dividing each micro-batch by them makes the summed gradients equal the
    gradient of the step objective, so micro 1 x accum 4 == micro 4 x accum 1."""
    input_ids: torch.Tensor       # (2B, T) chosen rows [:B], rejected rows [B:], right-padded
    attention_mask: torch.Tensor  # (2B, T)
    labels: torch.Tensor          # (2B, T) IGNORE (-100) on prompt, padding and rejected text after rejected_upto
    weights: torch.Tensor         # (B,) float32 pair weights
    ref: torch.Tensor | None      # (B, 2) reference log-probs [chosen, rejected]; None: dpo_micro_loss computes them
    w_sum: float                  # sum of the weights of the whole step
    nc_sum: float                 # chosen response tokens (+ EOS) of the whole step (the --sft-alpha NLL's normaliser;
                                  # --weighted-nll: sum of weight x chosen tokens)

    @classmethod
    def of(cls, pairs, pad_id, device, ref, w_sum, nc_sum):
        x, m, y = concat_batch(pairs, pad_id, device)
        w = torch.tensor([p["w"] for p in pairs], dtype=torch.float32, device=device)
        return cls(x, m, y, w, None if ref is None else ref.to(device), float(w_sum), float(nc_sum))


def dpo_micro_loss(fwd, batch, beta, sft_alpha=0.0, world=1, ref_model=None, pair_loss=None, weighted_nll=False):
    """This micro-batch's share of the step objective (see module docstring), ready for .backward().
    fwd(input_ids, attention_mask, labels) -> ((2B,) summed response log-probs, n_tokens); batch: a PairBatch;
    ref_model: the reference, run here on the fly when batch.ref is None; pair_loss: the per-pair term
    f(pi_c, pi_r, ref_c, ref_r) -> (B,) (pair_losses(args); None = DPO's preference_loss).
    weighted_nll: the NLL term weighs each pair's chosen log-prob by its weight (batch.nc_sum must then be the
    step's sum of weight x chosen tokens). x world undoes DDP's gradient averaging over ranks.
    Returns (loss, stats: detached sums for logging)."""
    B = len(batch.weights)
    lp, _ = fwd(batch.input_ids, batch.attention_mask, batch.labels)                 # (2B,)
    ref = batch.ref
    if ref is None:
        with torch.no_grad():
            ref = torch.stack(sequence_logps(ref_model, batch.input_ids, batch.attention_mask,
                                             batch.labels)[0].float().split(B), 1)     # (B, 2)
    ref = ref.to(lp.device)
    pi_c, pi_r = lp[:B], lp[B:]
    losses, rc, rr = preference_loss(pi_c, pi_r, ref[:, 0], ref[:, 1], beta)
    if pair_loss is not None:  # --loss other than dpo; the logged rewards stay DPO's beta * (pi - ref)
        losses = pair_loss(pi_c, pi_r, ref[:, 0], ref[:, 1])
    dpo = (batch.weights.to(losses.dtype) * losses).sum() / batch.w_sum
    nll = -((batch.weights.to(pi_c.dtype) * pi_c) if weighted_nll else pi_c).sum() / batch.nc_sum
    loss = dpo + sft_alpha * nll if sft_alpha else dpo
    stats = torch.stack([dpo.detach(), (rc > rr).float().sum(), rc.sum(), rr.sum(), nll.detach()])
    return loss * world, stats


def ref_cache_path(args, ref_name, ref_dtype, sha):
    """Cache file keyed by everything the reference log-probs depend on: pairs content, reference weights
    (path + mtime/size of the weight files, or seed for a random init), max_len, precision."""
    p = resolve_model(ref_name)
    wfiles = sorted(Path(p).glob("*.safetensors")) + sorted(Path(p).glob("*.bin")) if has_weights(p) else []
    key = {"pairs": sha, "ref": str(Path(p).resolve()) if Path(p).exists() else p,
           "weights": [(f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in wfiles],
           "seed": None if wfiles else args.seed, "max_len": args.max_len, "dtype": ref_dtype}
    sha = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(f"{args.pairs}.ref.{sha}.safetensors"), key


def save_ref_cache(path, logps, key):
    """safetensors (a tensor + its key as JSON metadata), written to a temporary and renamed in."""
    from safetensors.torch import save_file
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    save_file({"logps": logps.contiguous()}, str(tmp), metadata={"key": json.dumps(key, sort_keys=True)})
    os.replace(tmp, path)


def load_ref_cache(path, n, key):
    """(n, 2) float32 reference log-probs from a cache file. safetensors is parsed, never executed: a pickle or
    any other file planted at this (predictable) path is refused with a DataError naming it."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), "pt") as f:
            stored_key, logps = (f.metadata() or {}).get("key"), f.get_tensor("logps")
    except Exception as e:
        raise DataError(f"{path}: not a readable reference cache ({str(e)[:200]}); delete it to recompute") from None
    if stored_key != json.dumps(key, sort_keys=True):
        raise DataError(f"{path}: made for other pairs/reference/settings than this run; delete it to recompute")
    if logps.dtype != torch.float32 or tuple(logps.shape) != (n, 2) or not torch.isfinite(logps).all():
        raise DataError(f"{path}: expected ({n}, 2) finite float32 log-probs, got {tuple(logps.shape)} {logps.dtype}; "
                        f"delete it to recompute")
    return logps


@torch.no_grad()
def compute_ref_logps(model, pairs, micro, pad_id, device, ctx, rank=0, world=1):
    """(N, 2) float32 reference log-probs [chosen, rejected] of every pair. Length-sorted batches waste
    little padding; the ranks split the work and sum their (zero elsewhere) slices."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i]["c"][0]) + len(pairs[i]["r"][0]))[rank::world]
    out = torch.zeros(len(pairs), 2)
    bar = progress(total=len(order), desc="ref logps", disable=rank != 0)
    for j in range(0, len(order), micro):
        idx = order[j:j + micro]
        x, m, y = concat_batch([pairs[i] for i in idx], pad_id, device)
        with ctx:
            lp, _ = sequence_logps(model, x, m, y)
        out[idx] = torch.stack(lp.float().cpu().split(len(idx)), 1)
        bar.update(len(idx))
    bar.close()
    if world > 1:
        t = out.to(device)
        torch.distributed.all_reduce(t)
        out = t.cpu()
    model.train(was_training)
    return out


def get_ref_logps(pairs, ref_name, policy, args, sha, pad_id, device, ctx, rank=0, world=1):
    """(N, 2) reference log-probs [chosen, rejected] of every pair: read from the cache file next to the pairs, or
    computed in one no-grad pass and cached there. policy: the model to use when the reference IS the initial policy
    (no second copy in memory); None -> load ref_name, and free it afterwards."""
    ref_dtype = args.dtype if str(device).startswith("cuda") else "float32"
    cache, key = ref_cache_path(args, ref_name, ref_dtype, sha)
    have = torch.tensor(float(cache.exists()), device=device)
    if world > 1:  # every rank must take the same branch (the compute branch has a collective)
        torch.distributed.all_reduce(have, op=torch.distributed.ReduceOp.MIN)
    if have.item():
        print0(f"ref logps: loaded {cache}")
        return load_ref_cache(cache, len(pairs), key)
    model = policy if policy is not None else load_model(ref_name, device=device, seed=args.seed,
                                                          tokenizer=args.tokenizer)[0]
    t0 = time.time()
    logps = compute_ref_logps(model, pairs, args.micro_batch_size, pad_id, device, ctx, rank, world)
    if rank == 0:
        save_ref_cache(cache, logps, key)
    print0(f"ref logps: {len(pairs)} pairs in {time.time() - t0:.1f}s -> {cache}")
    if policy is None:  # the reference leaves memory before training starts
        del model
        gc.collect()
        if str(device).startswith("cuda"):
            torch.cuda.empty_cache()
    return logps


def main(argv=None):
    runs = [[]]   # --then separates runs: their flags are all parsed (checked) before the first one trains
    for a in (sys.argv[1:] if argv is None else argv):
        if a == "--then":
            runs.append([])
        else:
            runs[-1].append(a)
    runs = [parser.parse_args(r) for r in runs]
    if len(runs) > 1 and int(os.environ.get("RANK", -1)) != -1:
        raise SystemExit("error: --then runs several trainings in one process; under torchrun start one per run")
    try:
        for args in runs:
            train(args)
    except DataError as e:
        raise SystemExit(f"error: {e}") from None


def train(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    ddp, rank, local_rank, world, device = compute_init(args.device)
    grad_accum = grad_accum_steps(args.batch_size, args.micro_batch_size, world)
    if not Path(args.pairs).is_file():
        raise DataError(f"{args.pairs}: {'not a regular file' if Path(args.pairs).exists() else 'file not found'}")
    if not (0 < args.beta < float("inf")):
        raise SystemExit(f"error: --beta must be a finite number > 0, got {args.beta}")
    pmeta_path = Path(args.pairs + ".meta.json")
    pmeta = read_json(pmeta_path) if pmeta_path.exists() and not args.model else {}
    init_name = args.model or (pmeta.get("model") if isinstance(pmeta, dict) else None)
    if not init_name or not isinstance(init_name, str):
        raise SystemExit(f"error: no --model given and {pmeta_path} names no single 'model' ({init_name})")
    ref_name = args.ref or init_name
    torch.manual_seed(args.seed)

    recover_checkpoint(args.out_dir)
    state = load_train_state(args.out_dir) if args.resume else None
    sha = pairs_sha(args.pairs)  # once: stored with every checkpoint, checked on resume
    if state:
        if state.get("pairs_sha") != sha:
            raise SystemExit(f"error: --resume: {args.pairs} changed since the checkpoint in {args.out_dir} was written")
    src = args.out_dir if state else init_name
    tok = load_tokenizer(args.tokenizer if args.tokenizer and not state else src)
    pairs = load_pairs(args.pairs, tok, args.max_len, args.weighting, args.seed)  # bad pairs stop us before any model loads
    if args.loss == "sft" and args.sft_alpha < 1:
        args.sft_alpha = 1.0  # the control trains on the NLL term alone, at full strength
    if args.weighted_nll and not args.sft_alpha:
        raise SystemExit("error: --weighted-nll weighs the NLL term: it needs --sft-alpha > 0 (or --loss sft)")
    pair_loss = None if args.loss == "dpo" else pair_losses(args)
    N = len(pairs)
    steps = args.max_steps if args.max_steps > 0 else math.ceil(args.epochs * N / args.batch_size)
    model, tok, how = load_model(src, device=device, seed=args.seed, tokenizer=args.tokenizer if not state else None)
    print0(f"policy: {how} | {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params | ref {ref_name} | "
           f"device {device} | world {world}")
    ctx = autocast_ctx(device, args.dtype)

    # reference log-probs: from the cache, or one no-grad pass before training; on the fly only if asked
    ref_model, ref_lp = None, None
    if args.ref_on_the_fly:
        ref_model = load_model(ref_name, device=device, seed=args.seed, tokenizer=args.tokenizer)[0].eval()
        ref_model.requires_grad_(False)
    else:
        same = ref_name == init_name and not state  # the initial policy IS the reference: no second copy
        ref_lp = get_ref_logps(pairs, ref_name, model if same else None, args, sha, tok.pad_token_id, device, ctx,
                               rank, world)

    raw_model = model  # save this one: no DDP "module." nor compile "_orig_mod." prefixes
    # only response rows reach lm_head, --head-chunk-rows at a time; DDP wraps the whole SeqLogp
    fwd = training_forward(model, args.head_chunk_rows, args.grad_checkpointing, args.compile, ddp, local_rank, device)
    ws = [p["w"] for p in pairs]
    print0(f"data: {N} pairs | weighting {args.weighting} (mean {sum(ws) / N:.3f}, min {min(ws):.3f}, max {max(ws):.3f}) | "
           f"batch {args.batch_size} = micro {args.micro_batch_size} x accum {grad_accum} x world {world} | {steps} steps | "
           f"beta {args.beta}")

    opt = make_optimizer(raw_model, args.lr, args.weight_decay, device)
    step, history = restore_train_state(state, opt, args.out_dir) if state else (0, [])

    def meta():
        return {"stage": "dpo", "step": step, "parent": init_name, "ref": ref_name, "pairs": args.pairs,
                "weighting": args.weighting, "loss": args.loss, "beta": args.beta, "sft_alpha": args.sft_alpha,
                "last": history[-1] if history else None, "args": vars(args)}

    def save():
        save_checkpoint(args.out_dir, raw_model, tok, meta(), {"optimizer": opt.state_dict(), "step": step,
                        "history": history, "rng": torch.get_rng_state(), "pairs_sha": sha})
        write_json(Path(args.out_dir) / "history.json", history)  # per-step log for report.py's trajectories

    raw_model.train()
    pbar = progress(total=steps, initial=step, desc="dpo", disable=rank != 0)
    t_start = time.time()
    while step < steps:
        t0 = time.time()
        lr = get_lr(step, steps, args.lr, args.warmup, args.min_lr_frac)
        for g in opt.param_groups:
            g["lr"] = lr
        gidx = step_indices(step, N, args.batch_size, args.seed)   # the whole step's pairs, same on every rank
        # normalisers over the WHOLE step: every rank holds all weights and lengths and sums the same list in the
        # same order, so these are identical everywhere without an all-reduce
        w_sum = max(sum(pairs[i]["w"] for i in gidx), 1e-12)
        nc = sum(pairs[i]["nc"] for i in gidx)                     # chosen tokens of the step (also logged)
        nc_sum = max(sum(pairs[i]["nc"] * pairs[i]["w"] for i in gidx), 1e-12) if args.weighted_nll else nc
        idx = gidx[rank::world]                                    # this rank's share
        micro = [idx[j:j + args.micro_batch_size] for j in range(0, len(idx), args.micro_batch_size)]
        stats = torch.zeros(5)
        for k, mb in enumerate(micro):
            if ddp:  # only all-reduce on the last micro-batch; must be set before the forward
                fwd.require_backward_grad_sync = k == len(micro) - 1
            batch = PairBatch.of([pairs[i] for i in mb], tok.pad_token_id, device,
                                 None if ref_model else ref_lp[mb], w_sum, nc_sum)
            with ctx:
                loss, st = dpo_micro_loss(fwd, batch, args.beta, args.sft_alpha, world, ref_model, pair_loss,
                                          args.weighted_nll)
            loss.backward()
            stats += st.float().cpu()
        if ddp:
            t = stats.to(device)
            torch.distributed.all_reduce(t)
            stats = t.cpu()
        gnorm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), args.grad_clip if args.grad_clip > 0 else float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)  # free the gradient memory as soon as we can
        step += 1
        dt = time.time() - t0
        B, sw = len(gidx), [pairs[i]["w"] for i in gidx]
        rec = {"step": step, "loss": stats[0].item(), "acc": stats[1].item() / B, "r_c": stats[2].item() / B,
               "r_r": stats[3].item() / B, "nll": stats[4].item(), "lr": lr, "gnorm": float(gnorm),
               "w_mean": sum(sw) / B, "w_min": min(sw), "w_max": max(sw),
               "len_c": nc / B, "len_r": sum(pairs[i]["nr"] for i in gidx) / B}
        history.append(rec)
        n_tok = sum(len(pairs[i]["c"][0]) + len(pairs[i]["r"][0]) for i in gidx)
        pbar.update(1)
        pbar.set_postfix(loss=f"{rec['loss']:.4f}", acc=f"{rec['acc']:.2f}", refresh=False)
        if rank == 0 and (step % args.log_every == 0 or step == steps):
            tqdm.write(f"step {step:5d}/{steps} | loss {rec['loss']:.4f} | acc {rec['acc']:.2f} | r_c {rec['r_c']:+.3f} "
                       f"r_r {rec['r_r']:+.3f} margin {rec['r_c'] - rec['r_r']:+.3f} | w {rec['w_mean']:.2f} "
                       f"[{rec['w_min']:.2f},{rec['w_max']:.2f}] | len c {rec['len_c']:.0f} r {rec['len_r']:.0f} | "
                       f"nll {rec['nll']:.3f} | lr {lr:.2e} | gnorm {rec['gnorm']:.2f} | tok/s {n_tok / dt:6.0f} | "
                       f"dt {dt * 1000:.0f}ms")
        stop = step == args.halt_after
        if rank == 0 and ((args.save_every > 0 and step % args.save_every == 0) or step == steps or stop):
            save()
        if rank == 0 and args.snapshot_every > 0 and step % args.snapshot_every == 0:
            # the weights of this step, kept under its number: a learning curve of ONE run (one cosine schedule
            # over `steps`), not of separate shorter runs
            save_checkpoint(f"{args.out_dir}_step{step}", raw_model, tok, {**meta(), "snapshot_of": args.out_dir})
        if stop:
            print0(f"halting after step {step} (--halt-after); continue with --resume")
            break
    pbar.close()
    last = history[-1] if history else {}
    print0(f"done: step {step}/{steps} in {time.time() - t_start:.0f}s | loss {last.get('loss', float('nan')):.4f} | "
           f"acc {last.get('acc', float('nan')):.2f} | saved to {args.out_dir}")
    compute_cleanup(ddp)


if __name__ == "__main__":
    main()
