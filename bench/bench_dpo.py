"""
One DPO optimizer step, naive vs train_dpo.py's path, on the same random batch in one run: tokens/s and peak memory.

  naive: HF forward -> full (B, T, V) logits -> fp32 log_softmax; chosen and rejected in two forwards; the reference
         model (a second fp32 copy) runs every step; SDPA, gradient checkpointing, fp32 weights + bf16 autocast, AdamW.
  ours:  train_dpo.dpo_micro_loss: chosen+rejected in ONE (2B, T) forward, lm_head + log_softmax in chunks of ~1024
         rows (common.sequence_logps), reference log-probs from the cache (no reference model in memory), gradient
         checkpointing, fused AdamW on GPU, optionally torch.compile.

GPU, Qwen2.5-1.5B shapes (random init from the config; targets: >= 1.6x naive tokens/s, <= 40 GiB at 8 x 1024,
32 x 512 fitting in 80 GB):
    python bench/bench_dpo.py --config ../shared/data/qwen2.5_configs/Qwen2.5-1.5B-Instruct_transformers5_resave \
        --pairs 8 --seq-len 1024 --device cuda
    python bench/bench_dpo.py --config ../shared/data/qwen2.5_configs/Qwen2.5-1.5B-Instruct_transformers5_resave \
        --pairs 32 --seq-len 512 --device cuda
CPU (what the dev machines can run: 2 layers, hidden 256, the real 151,936 vocab, so the logits dominate as on GPU):
    python bench/bench_dpo.py --layers 2 --hidden 256 --pairs 4 --seq-len 256 --device cpu
Each variant runs in its own subprocess, so peak memory is its own: torch.cuda.max_memory_allocated on GPU,
peak RSS (ru_maxrss, includes ~0.3-0.5 GB of Python + torch) on CPU. A variant that runs out of memory says OOM.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from common import IGNORE, SeqLogp, autocast_ctx, enable_checkpointing  # noqa: E402
from train_dpo import PairBatch, dpo_micro_loss, preference_loss  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
# model shape
parser.add_argument("--config", default=str(REPO.parent / "shared/data/qwen2.5_configs/Qwen2.5-1.5B-Instruct_transformers5_resave"),
                    help="dir with a Qwen2 config.json (weights are random); absent: Qwen2.5-1.5B's numbers, built in code")
parser.add_argument("--layers", type=int, default=0, help="override num_hidden_layers (0 = config's)")
parser.add_argument("--hidden", type=int, default=0, help="override hidden_size (0 = config's); intermediate = 3x, heads = hidden/64")
parser.add_argument("--vocab", type=int, default=0, help="override vocab_size (0 = config's, 151,936 for Qwen2.5)")
# batch
parser.add_argument("--pairs", type=int, default=8, help="pairs per step (one micro-batch: 2x sequences)")
parser.add_argument("--seq-len", type=int, default=1024, help="tokens per sequence (prompt = first quarter, masked)")
parser.add_argument("--steps", type=int, default=3, help="timed steps (after 1 warm-up step)")
# runtime
parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
parser.add_argument("--dtype", default="bfloat16", help="autocast dtype on GPU")
parser.add_argument("--chunk-rows", type=int, default=1024, help="ours: rows of logits per lm_head chunk (train_dpo.py --head-chunk-rows)")
parser.add_argument("--compile", action="store_true", help="torch.compile our forward (GPU)")
parser.add_argument("--only", default="both", choices=["both", "naive", "ours"], help="run one variant (used by the subprocesses)")
parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
parser.add_argument("--json", action="store_true", help="print one JSON result line (used by the subprocesses)")


def qwen25_config(path=None):
    """The Qwen2.5-1.5B config: <path>/config.json when it exists (../shared/data/qwen2.5_configs/...), else built
    here from the published numbers (README: hidden 1536, 28 layers, 12 query / 2 KV heads, intermediate 8960,
    vocab 151,936, tied embeddings, rope_theta 1e6, rms_norm_eps 1e-6), so the GPU bench needs no shared data."""
    from transformers import AutoConfig, Qwen2Config
    if path and (Path(path) / "config.json").exists():
        return AutoConfig.from_pretrained(path)
    return Qwen2Config(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                       num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                       tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6, use_sliding_window=False,
                       bos_token_id=151643, eos_token_id=151643)


def shrink_config(cfg, layers=0, hidden=0, vocab=0):
    """Fewer layers / a narrower model / another vocabulary (0 = keep); heads = hidden / 64, intermediate = 3x."""
    if layers:
        cfg.num_hidden_layers = layers
        cfg.layer_types = cfg.layer_types[:layers] if getattr(cfg, "layer_types", None) else None
    if hidden:
        cfg.hidden_size, cfg.intermediate_size = hidden, 3 * hidden
        cfg.num_attention_heads, cfg.num_key_value_heads = max(1, hidden // 64), max(1, hidden // 128)
        cfg.head_dim = hidden // cfg.num_attention_heads
    if vocab:
        cfg.vocab_size = vocab
    cfg._attn_implementation = "sdpa"
    return cfg


def init_model(cfg, device, seed=0):
    """Random-initialised Qwen2ForCausalLM built directly on `device` in fp32 (a 1.5B model initialised on the
    CPU first costs tens of seconds)."""
    from transformers import Qwen2ForCausalLM
    torch.manual_seed(seed)
    with torch.device(device):
        return Qwen2ForCausalLM(cfg)


def build(args, device):
    cfg = shrink_config(qwen25_config(args.config), args.layers, args.hidden, args.vocab)
    model = init_model(cfg, device)  # fp32 master weights
    enable_checkpointing(model)
    model.train()
    return model, cfg


def random_batch(args, V):
    """B pairs of (ids, labels): a shared prompt (first quarter, labels = IGNORE), different responses."""
    g = torch.Generator().manual_seed(1)
    P, T = args.seq_len // 4, args.seq_len
    pairs = []
    for _ in range(args.pairs):
        prompt = torch.randint(0, V, (P,), generator=g).tolist()
        c, r = (torch.randint(0, V, (T - P,), generator=g).tolist() for _ in range(2))
        pairs.append({"c": (prompt + c, [IGNORE] * P + c), "r": (prompt + r, [IGNORE] * P + r), "w": 1.0})
    ref = torch.randn(args.pairs, 2, generator=g) - 5.0 * (T - P)  # stands in for the cached reference log-probs
    return pairs, ref


def naive_logps(model, x, y):
    """eric-mitchell's _get_batch_logps: full fp32 logits (B, T, V) and log_softmax over all of them."""
    logits = model(input_ids=x, use_cache=False).logits.float()                   # (B, T, V)
    lp = torch.gather(logits[:, :-1].log_softmax(-1), 2, y[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (lp * (y[:, 1:] != IGNORE)).sum(-1)


def run_variant(args, which, device):
    model, cfg = build(args, device)
    pairs, ref = random_batch(args, cfg.vocab_size)
    ctx = autocast_ctx(device, args.dtype)
    cuda = device.startswith("cuda")
    if which == "naive":
        ref_model = build(args, device)[0].eval()
        ref_model.requires_grad_(False)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
        xc = torch.tensor([p["c"][0] for p in pairs], device=device)
        yc = torch.tensor([p["c"][1] for p in pairs], device=device)
        xr = torch.tensor([p["r"][0] for p in pairs], device=device)
        yr = torch.tensor([p["r"][1] for p in pairs], device=device)

        def step():
            with ctx:
                with torch.no_grad():
                    ref_c, ref_r = naive_logps(ref_model, xc, yc), naive_logps(ref_model, xr, yr)
                loss = preference_loss(naive_logps(model, xc, yc), naive_logps(model, xr, yr), ref_c, ref_r, 0.1)[0].mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    else:
        fwd = SeqLogp(model, args.chunk_rows)  # the same chunk rule as train_dpo.py
        if args.compile:
            fwd = torch.compile(fwd)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=cuda)

        def step():
            with ctx:
                batch = PairBatch.of(pairs, 0, device, ref, float(args.pairs), 1.0)
                loss, _ = dpo_micro_loss(fwd, batch, 0.1)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    step()  # warm-up: allocator, optimizer state, compile
    if cuda:
        torch.cuda.synchronize()
    t0 = time.time()
    for _ in range(args.steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    dt = (time.time() - t0) / args.steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    n_lab = sum(sum(t != IGNORE for t in p[s][1][1:]) for p in pairs for s in "cr")   # labelled positions
    return {"variant": which, "tok_s": 2 * args.pairs * args.seq_len / dt, "step_s": dt, "peak_gib": peak,
            "rss_before_gib": None if cuda else rss0, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "tokens": 2 * args.pairs * args.seq_len, "labelled": n_lab}


def main():
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.only != "both":
        try:
            res = run_variant(args, args.only, device)
        except torch.OutOfMemoryError:
            res = {"variant": args.only, "oom": True}
        print(json.dumps(res) if args.json else res, flush=True)
        return
    what = (f"{args.pairs} pairs x {args.seq_len} tokens | {device} "
            f"({torch.cuda.get_device_name() if device.startswith('cuda') else f'{os.cpu_count()} CPU cores, no GPU'}) | "
            f"config {Path(args.config).name} layers {args.layers or 'cfg'} hidden {args.hidden or 'cfg'} "
            f"vocab {args.vocab or 'cfg'} | ours: {args.chunk_rows} logit rows per head chunk")
    print(what, flush=True)
    res = {}
    for which in ("naive", "ours"):  # a fresh process each, so each peak is its own
        argv = [a for a in sys.argv[1:]] + ["--only", which, "--json"]
        r = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{which} failed:\n{r.stderr[-3000:]}")
        res[which] = json.loads(r.stdout.strip().splitlines()[-1])
    mem = "peak GiB (cuda max allocated)" if device.startswith("cuda") else "peak RSS GiB"
    print(f"{'variant':8s} {'tokens/s':>10s} {'step s':>8s} {mem:>30s}")
    for k, r in res.items():
        if r.get("oom"):
            print(f"{k:8s} {'OOM':>10s}")
        else:
            print(f"{k:8s} {r['tok_s']:10.0f} {r['step_s']:8.3f} {r['peak_gib']:30.2f}"
                  + (f"   (RSS before the first step {r['rss_before_gib']:.2f})" if r["rss_before_gib"] else ""))
    n, o = res["naive"], res["ours"]
    if not n.get("oom") and not o.get("oom"):
        print(f"ours / naive: {o['tok_s'] / n['tok_s']:.2f}x tokens/s, {o['peak_gib'] / n['peak_gib']:.2f}x peak memory "
              f"| model {o['params_m']:.1f}M params")


if __name__ == "__main__":
    main()
