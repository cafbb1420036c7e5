"""
Stage 1: full-parameter supervised fine-tuning on question -> step-by-step solution data,
loss on response tokens only.

    python train_sft.py                                        # toy default: tiny Qwen2 from scratch, CPU, minutes
    python train_sft.py --model Qwen/Qwen2.5-1.5B --data data/gsm8k/train.jsonl --out-dir out/sft \
        --batch-size 64 --micro-batch-size 8 --lr 1e-5 --epochs 3 --grad-checkpointing   # one GPU
    torchrun --nproc_per_node 8 train_sft.py ...               # DDP; micro x accum x world = batch

Data: JSONL records with at least "question" and "solution" (see data/*/prepare.py).
Output: a Hugging Face directory (config.json, model.safetensors, tokenizer files,
hardneg_meta.json) plus train_state.safetensors for --resume (no pickle: see checkpoint.load_train_state).
"""
import argparse
import math
import time

import torch
from tqdm import tqdm

from checkpoint import load_train_state, recover_checkpoint, restore_train_state, save_checkpoint
from common import (DataError, autocast_ctx, collate, compute_cleanup, compute_init, encode_pair,
                    format_prompt, format_response, get_lr, grad_accum_steps, load_model, load_tokenizer,
                    make_optimizer, print0, progress, read_jsonl, sequence_logps, step_indices, training_forward)

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
# model / data
parser.add_argument("--model", default="toy", help="'toy' (random tiny Qwen2, the embedded default), 'toy-l' (its ~4x larger sibling), a hub id or a local dir")
parser.add_argument("--tokenizer", default=None, help="tokenizer path if --model has none (e.g. a config-only dir)")
parser.add_argument("--data", default="data/toy/train.jsonl", help="training JSONL with question/solution")
parser.add_argument("--val-data", default="data/toy/val.jsonl", help="validation JSONL for eval loss ('' = none)")
parser.add_argument("--out-dir", default="out/sft", help="checkpoint directory (HF format)")
parser.add_argument("--max-len", type=int, default=512, help="examples longer than this (prompt+response tokens) are skipped and counted")
# optimisation
parser.add_argument("--batch-size", type=int, default=32, help="sequences per optimizer step (all ranks, all micro-batches)")
parser.add_argument("--micro-batch-size", type=int, default=32, help="sequences per forward/backward on one rank")
parser.add_argument("--epochs", type=float, default=2.0, help="passes over the data (ignored if --max-steps > 0)")
parser.add_argument("--max-steps", type=int, default=-1, help="optimizer steps; -1 = derive from --epochs")
parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (toy default; ~1e-5 for a 1.5B model)")
parser.add_argument("--min-lr-frac", type=float, default=0.1, help="cosine decays to this fraction of --lr")
parser.add_argument("--warmup", type=int, default=50, help="linear warmup steps")
parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
parser.add_argument("--grad-clip", type=float, default=1.0, help="clip grad norm (0 = off)")
# runtime
parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
parser.add_argument("--dtype", default="bfloat16", help="autocast dtype on GPU: bfloat16 | float32 (CPU always fp32)")
parser.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in backward (needed for 1.5B)")
parser.add_argument("--compile", action="store_true", help="torch.compile the model (GPU)")
parser.add_argument("--seed", type=int, default=0, help="seed for init and data order")
parser.add_argument("--eval-every", type=int, default=200, help="eval loss every N steps (-1 = only at the end)")
parser.add_argument("--eval-examples", type=int, default=256, help="validation examples per eval")
parser.add_argument("--save-every", type=int, default=500, help="checkpoint every N steps (-1 = only at the end)")
parser.add_argument("--log-every", type=int, default=25, help="print one log line every N steps")
parser.add_argument("--resume", action="store_true", help="continue from --out-dir/train_state.safetensors (exact: same data order)")
parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
parser.add_argument("--halt-after", type=int, default=-1, help="stop after this step as if killed (tests --resume); -1 = off")


def load_examples(path, tok, max_len):
    recs = read_jsonl(path, required=("question", "solution"), types={"question": str, "solution": str})
    if not recs:
        raise DataError(f"{path}: no records")
    seqs, skipped = [], 0
    for r in recs:
        enc = encode_pair(tok, format_prompt(r["question"]), format_response(r["solution"]), max_len)
        if enc is None:
            skipped += 1
        else:
            seqs.append(enc)
    if skipped:
        print0(f"note: {path}: skipped {skipped}/{len(recs)} examples longer than --max-len {max_len}")
    if not seqs:
        raise DataError(f"{path}: every example is longer than --max-len {max_len}")
    return seqs


def main(argv=None):
    try:
        train(parser.parse_args(argv))
    except DataError as e:
        raise SystemExit(f"error: {e}") from None


def train(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    ddp, rank, local_rank, world, device = compute_init(args.device)
    grad_accum = grad_accum_steps(args.batch_size, args.micro_batch_size, world)
    torch.manual_seed(args.seed)

    recover_checkpoint(args.out_dir)
    state = load_train_state(args.out_dir) if args.resume else None
    src = args.out_dir if state else args.model
    tok = load_tokenizer(args.tokenizer if args.tokenizer and not state else src)
    train = load_examples(args.data, tok, args.max_len)  # bad data stops us before any model loads
    val = load_examples(args.val_data, tok, args.max_len)[:args.eval_examples] if args.val_data else []
    model, tok, how = load_model(src, device=device, seed=args.seed, tokenizer=args.tokenizer if not state else None)
    print0(f"model: {how} | {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params | device {device} | world {world}")
    raw_model = model  # save this one: no DDP "module." nor compile "_orig_mod." prefixes
    # forward = summed response log-probs (SeqLogp), compiled / DDP-wrapped as asked
    fwd = training_forward(model, 1024, args.grad_checkpointing, args.compile, ddp, local_rank, device)

    steps = args.max_steps if args.max_steps > 0 else math.ceil(args.epochs * len(train) / args.batch_size)
    print0(f"data: {len(train)} train examples | batch {args.batch_size} = micro {args.micro_batch_size} x accum "
           f"{grad_accum} x world {world} | {steps} steps")

    opt = make_optimizer(raw_model, args.lr, args.weight_decay, device)
    step, history = restore_train_state(state, opt, args.out_dir) if state else (0, [])
    ctx = autocast_ctx(device, args.dtype)

    @torch.no_grad()
    def eval_loss():
        raw_model.eval()
        tot, n = 0.0, 0
        for i in range(0, len(val), args.micro_batch_size):
            x, m, y = collate(val[i:i + args.micro_batch_size], tok.pad_token_id, device)
            with ctx:
                lp, nt = sequence_logps(raw_model, x, m, y)
            tot, n = tot - lp.sum().item(), n + nt.sum().item()
        raw_model.train()
        return tot / max(n, 1)

    def save(val_loss):
        meta = {"stage": "sft", "step": step, "val_loss": val_loss, "parent": args.model, "data": args.data,
                "args": vars(args)}
        save_checkpoint(args.out_dir, raw_model, tok, meta,
                        {"optimizer": opt.state_dict(), "step": step, "history": history, "rng": torch.get_rng_state()})

    raw_model.train()
    pbar = progress(total=steps, initial=step, desc="sft", disable=rank != 0)
    val_loss, t_last = None, time.time()
    while step < steps:
        t0 = time.time()
        lr = get_lr(step, steps, args.lr, args.warmup, args.min_lr_frac)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = step_indices(step, len(train), args.batch_size, args.seed)[rank::world]  # this rank's share
        micro = [[train[i] for i in idx[j:j + args.micro_batch_size]] for j in range(0, len(idx), args.micro_batch_size)]
        # normalise by the response tokens of the whole optimizer step (all micro-batches, all ranks),
        # so micro 1 x accum 4 and micro 4 x accum 1 give the same update (a per-micro mean would not)
        n_tok = torch.tensor(float(sum(sum(t != -100 for t in lab[1:]) for b in micro for _, lab in b)), device=device)
        if ddp:
            torch.distributed.all_reduce(n_tok)
        loss_sum = 0.0
        for k, batch in enumerate(micro):
            x, m, y = collate(batch, tok.pad_token_id, device)
            if ddp:  # only all-reduce on the last micro-batch; must be set before the forward
                fwd.require_backward_grad_sync = k == len(micro) - 1
            with ctx:
                lp, _ = fwd(x, m, y)
                # DDP averages gradients over ranks; x world turns that back into the global token sum
                loss = -lp.sum() / n_tok * world
            loss.backward()
            loss_sum += loss.item() / world
        if ddp:
            t = torch.tensor(loss_sum, device=device)
            torch.distributed.all_reduce(t)
            loss_sum = t.item()
        gnorm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), args.grad_clip if args.grad_clip > 0 else float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)  # free the gradient memory as soon as we can
        step += 1
        dt = time.time() - t0
        history.append({"step": step, "loss": loss_sum, "lr": lr})
        pbar.update(1)
        pbar.set_postfix(loss=f"{loss_sum:.4f}", tok_s=f"{n_tok.item() / dt:.0f}", refresh=False)
        if rank == 0 and (step % args.log_every == 0 or step == steps):
            tqdm.write(f"step {step:5d}/{steps} | loss {loss_sum:.4f} | lr {lr:.2e} | gnorm {gnorm:.2f} | "
                       f"resp tok/s {n_tok.item() / dt:7.0f} | dt {dt * 1000:.0f}ms")
        if val and ((args.eval_every > 0 and step % args.eval_every == 0) or step == steps):
            val_loss = eval_loss()
            history[-1]["val_loss"] = val_loss
            if rank == 0:
                tqdm.write(f"step {step:5d} | val loss {val_loss:.4f}")
        if rank == 0 and ((args.save_every > 0 and step % args.save_every == 0) or step == steps or step == args.halt_after):
            save(val_loss)
        if step == args.halt_after:
            print0(f"halting after step {step} (--halt-after)")
            break
    pbar.close()
    print0(f"done: {steps} steps in {time.time() - t_last:.0f}s | final train loss {history[-1]['loss'] if history else float('nan'):.4f}"
           f" | val loss {'-' if val_loss is None else f'{val_loss:.4f}'} | saved to {args.out_dir}")
    compute_cleanup(ddp)


if __name__ == "__main__":
    main()
