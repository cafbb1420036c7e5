"""
Every real-model speed and memory figure in one command: Qwen2.5-1.5B, random init, bf16, one GPU, no network.

    bash bench/gpu.sh                  # one H100/H200, <= 8 min: bench/results/gpu-<date>.json and .md
    bash bench/gpu.sh --cpu-smoke      # the same code at tiny shapes on the CPU, < 1 min (tests/test_gpu_bench.py)

Measurements, in this order (each guarded: an OOM or a crash is recorded and the next one runs; one that would
not fit the --budget-s left is recorded as skipped; results are rewritten after each one, so a killed run keeps
what it measured):
  sampler       engine.Sampler (CUDA graphs) vs HF model.generate, greedy, batch 256 x prompt 128 + 256 new tokens
                (stops off on both sides): new tokens/s each and the ratio; rows whose greedy tokens are identical
                (up to the first EOS, which HF's min_new_tokens masks) and the mean identical prefix
  sft_16x1024   one SFT optimizer step, train_sft.py's: chunked-head SeqLogp, gradient checkpointing, bf16
                autocast over fp32 weights, clipping, fused AdamW
  dpo_*         one DPO optimizer step, bench/bench_dpo.py's two variants: ours (train_dpo.dpo_micro_loss, cached
                reference log-probs, chunked head) vs naive (full fp32 logits, reference forward every step, no
                chunking), at 8 pairs x 1024 and 32 pairs x 512 tokens
tokens/s counts every token of the batch (prompt + response, chosen + rejected). Peak memory =
torch.cuda.max_memory_allocated (CPU: peak RSS of the process, only meaningful with --isolate). MFU = model FLOPs of
the policy's forward + backward (3 x forward: 2 x block matmul params + 2 x L x H_q x T causal attention per token,
2 x H x V per labelled position; not checkpointing's recompute, not the naive step's reference forward, so the
naive step gets the same credit as ours) / step time / the GPU's dense bf16 peak (989 TFLOP/s for H100 SXM / H200).
Random batches: the first quarter of each sequence is prompt (no loss), as in bench_dpo.py.

The model config: --config (default ../shared/data/qwen2.5_configs/Qwen2.5-1.5B-Instruct_transformers5_resave),
else Qwen2.5-1.5B's published numbers built in code. Tokenizer (the sampler only reads its EOS/pad ids and the
token texts; stops are off): --tokenizer (default ../shared/data/qwen2.5_tokenizer), else the toy tokenizer.
"""
import argparse
import datetime
import gc
import json
import os
import resource
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
import bench_dpo  # noqa: E402
from bench_sample import greedy_agreement, random_prompts, sync, timed  # noqa: E402
from common import IGNORE, SeqLogp, autocast_ctx, load_tokenizer, make_optimizer, write_json  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on the CPU (2 layers, hidden 64, real vocab)")
parser.add_argument("--out-dir", default=None, help="where gpu-<date>.json/.md go (default bench/results; --cpu-smoke: runs/bench-cpu-smoke)")
parser.add_argument("--budget-s", type=float, default=None, help="wall-clock budget of the whole run (default 420 s GPU, 240 s --cpu-smoke)")
parser.add_argument("--only", nargs="+", default=None, help="run only these measurements (names as in the docstring)")
parser.add_argument("--isolate", default=None, action=argparse.BooleanOptionalAction,
                    help="each measurement in its own process (own peak memory, a crash cannot take the others down); default: on for GPU, off for --cpu-smoke")
parser.add_argument("--config", default=str(SHARED / "qwen2.5_configs" / "Qwen2.5-1.5B-Instruct_transformers5_resave"), help="dir with a Qwen2 config.json")
parser.add_argument("--tokenizer", default=str(SHARED / "qwen2.5_tokenizer"), help="tokenizer dir for the sampler")
parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps per training measurement, after 1 warm-up (default 3; --cpu-smoke 1)")
parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the GPU for MFU (default: from its name)")
parser.add_argument("--device", default="auto", help="auto | cuda | cpu")
parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: run one measurement, print its JSON


def plan(args):
    """Shapes of every measurement (name -> dict) and the model shrink (layers, hidden, vocab; 0 = Qwen2.5-1.5B's)."""
    if args.cpu_smoke:
        shrink = dict(layers=2, hidden=64, vocab=0)    # the real 151,936 vocabulary: the head dominates as on GPU
        sizes = dict(sampler=(4, 8, 8), sft=(2, 64), dpo=[(2, 64), (4, 32)])
    else:
        shrink = dict(layers=0, hidden=0, vocab=0)
        sizes = dict(sampler=(256, 128, 256), sft=(16, 1024), dpo=[(8, 1024), (32, 512)])
    B, P, N = sizes["sampler"]
    m = {"sampler": dict(kind="sampler", batch=B, prompt=P, new=N),
         f"sft_{sizes['sft'][0]}x{sizes['sft'][1]}": dict(kind="sft", batch=sizes["sft"][0], seq_len=sizes["sft"][1])}
    for pairs, T in sizes["dpo"]:
        for v in ("ours", "naive"):
            m[f"dpo_{v}_{pairs}x{T}"] = dict(kind="dpo", variant=v, pairs=pairs, seq_len=T)
    return m, shrink


def config(args, shrink):
    return bench_dpo.shrink_config(bench_dpo.qwen25_config(args.config), **shrink)


def peak_memory_gib(device):
    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def train_flops(cfg, n_tokens, n_labelled, seq_len):
    """Model FLOPs of one forward + backward (= 3 x forward) over n_tokens tokens in sequences of seq_len, n_labelled
    of them through lm_head. Forward per token: 2 x the blocks' matmul parameters + 2 x L x H_q x seq_len (QK^T and
    AV over seq_len / 2 keys on average: causal); per labelled position 2 x H x V."""
    H, L, I, V = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size, cfg.vocab_size
    hd = getattr(cfg, "head_dim", None) or H // cfg.num_attention_heads
    q, kv = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd
    block = 2 * H * q + 2 * H * kv + 3 * H * I                       # q, o, k, v projections + gated MLP
    fwd = 2 * L * block * n_tokens + 2 * L * q * seq_len * n_tokens + 2 * H * V * n_labelled
    return 3 * fwd


def peak_flops(name, override=None):
    """Dense bf16 FLOP/s from the GPU's name (datasheet figures; H200 = H100 SXM), or None when unknown."""
    if override:
        return override * 1e12
    n = name.upper()
    if "H100" in n and "PCIE" in n:
        return 756e12
    if any(k in n for k in ("H100", "H200", "H800", "GH200")):
        return 989.4e12
    if "A100" in n:
        return 312e12
    return None


# -----------------------------------------------------------------------------
# the measurements (each returns a dict; run in-process or in a child process)

def measure_sampler(args, spec, cfg, device):
    from engine import Sampler
    B, P, N = spec["batch"], spec["prompt"], spec["new"]
    cuda = str(device).startswith("cuda")
    model = bench_dpo.init_model(cfg, device).to(torch.bfloat16 if cuda else torch.float32).eval()
    tok_path = args.tokenizer if (Path(args.tokenizer) / "tokenizer_config.json").exists() else "toy"
    tok = load_tokenizer(tok_path)
    prompts = random_prompts(tok, cfg.vocab_size, B, P)                # (B, P) distinct random prompts
    rows = prompts.tolist()
    sampler = Sampler(model, tok, device, cuda_graphs=True)
    kw = dict(temperature=0.0, batch_size=B, stop_at_answer=False, stop_at_eos=False)
    ids, am = prompts.to(device), torch.ones_like(prompts).to(device)
    eos = model.generation_config.eos_token_id
    hf_eos = set(eos if isinstance(eos, (list, tuple)) else [eos])      # what min_new_tokens masks on HF's side
    pad = tok.pad_token_id if tok_path != "toy" else next(iter(hf_eos))

    def run_ours(n):
        return sampler.generate(rows, list(range(B)), max_new_tokens=n, **kw)

    def run_hf(n):
        with torch.inference_mode():
            return model.generate(input_ids=ids, attention_mask=am, max_new_tokens=n, min_new_tokens=n,
                                  do_sample=False, pad_token_id=pad)

    run_ours(min(N, 16))                                              # warm-up: CUDA init, allocator, graph capture
    run_hf(min(N, 16))
    t_ours, ours = timed(run_ours, N, device)
    t_hf, hf = timed(run_hf, N, device)
    n_ours = sum(r["n_tokens"] for r in ours)
    n_hf = (hf.shape[1] - P) * B
    same, prefix = greedy_agreement(ours, hf, P, hf_eos)
    return {"sampler_new_tok_s": n_ours / t_ours, "generate_new_tok_s": n_hf / t_hf,
            "ratio": (n_ours / t_ours) / (n_hf / t_hf), "sampler_s": t_ours, "generate_s": t_hf,
            "new_tokens": n_ours, "greedy_rows_identical": same, "greedy_rows": B,
            "greedy_mean_identical_prefix": sum(prefix) / B, "peak_gib": peak_memory_gib(device),
            "tokenizer": "qwen2.5" if tok_path != "toy" else "toy (only ids used)"}


def measure_sft(args, spec, cfg, device, shrink):
    """train_sft.py's optimizer step on a random (batch, seq_len) batch, the first quarter of each row prompt."""
    model, cfg = bench_dpo.build(Namespace(config=args.config, **shrink), device)   # grad checkpointing, fp32, train
    fwd = SeqLogp(model, 1024)
    opt = make_optimizer(model, 1e-5, 0.0, device)
    B, T = spec["batch"], spec["seq_len"]
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    y = x.clone()
    y[:, :T // 4] = IGNORE
    x, y, m = x.to(device), y.to(device), torch.ones_like(x).to(device)
    ctx = autocast_ctx(device, "bfloat16")

    def step():
        with ctx:
            lp, n = fwd(x, m, y)
            loss = -lp.sum() / n.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()                                                             # warm-up: allocator, optimizer state
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    dt = (time.perf_counter() - t0) / args.steps
    labelled = int((y[:, 1:] != IGNORE).sum())
    return {"tok_s": B * T / dt, "step_s": dt, "peak_gib": peak_memory_gib(device), "tokens": B * T,
            "labelled": labelled, "flops": train_flops(cfg, B * T, labelled, T)}


def measure_dpo(args, spec, cfg, device, shrink):
    ns = Namespace(config=args.config, pairs=spec["pairs"], seq_len=spec["seq_len"], steps=args.steps,
                   dtype="bfloat16", chunk_rows=1024, compile=False, **shrink)
    r = bench_dpo.run_variant(ns, spec["variant"], str(device))
    r["flops"] = train_flops(cfg, r["tokens"], r["labelled"], spec["seq_len"])
    return r


def run_one(args, name, spec, device, shrink):
    """One measurement in this process: its result dict, with status ok / oom / error."""
    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        cfg = config(args, shrink)
        if spec["kind"] == "sampler":
            res = measure_sampler(args, spec, cfg, device)
        elif spec["kind"] == "sft":
            res = measure_sft(args, spec, cfg, device, shrink)
        else:
            res = measure_dpo(args, spec, cfg, device, shrink)
        res["status"] = "ok"
    except torch.OutOfMemoryError as e:
        res = {"status": "oom", "error": str(e).splitlines()[0][:300]}
    except Exception as e:  # recorded, not fatal: the other measurements still run
        res = {"status": "error", "error": f"{type(e).__name__}: {str(e)[:500]}"}
    res["wall_s"] = time.perf_counter() - t0
    gc.collect()
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
    return res


def run_child(args, name, left_s):
    """The same measurement in a fresh process (own peak memory; a hard crash or a hang stays there)."""
    cmd = [sys.executable, __file__, "--child", name, "--budget-s", str(left_s), "--steps", str(args.steps),
           "--config", args.config, "--tokenizer", args.tokenizer, "--device", args.device]
    cmd += ["--cpu-smoke"] if args.cpu_smoke else []
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=left_s)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": f"killed after {left_s:.0f}s (budget)", "wall_s": time.perf_counter() - t0}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        return {"status": "error", "error": f"exit {r.returncode}: {r.stderr[-1500:]}", "wall_s": time.perf_counter() - t0}
    res = json.loads(lines[-1][len("RESULT "):])
    res["wall_s_process"] = time.perf_counter() - t0
    return res


# -----------------------------------------------------------------------------
# report

def goals(results, cpu):
    """The issue's targets on one H100-class GPU, checked against these results (None: not measurable)."""
    if cpu:
        return {}
    out = {}
    s = results.get("sampler", {})
    if s.get("status") == "ok":
        out["sampler >= 30k new tok/s and >= 8x generate"] = s["sampler_new_tok_s"] >= 30000 and s["ratio"] >= 8
    for shape in ("8x1024", "32x512"):
        o, n = results.get(f"dpo_ours_{shape}", {}), results.get(f"dpo_naive_{shape}", {})
        if o.get("status") == "ok" and n.get("status") == "ok":
            out[f"DPO {shape}: >= 1.6x naive tokens/s"] = o["tok_s"] / n["tok_s"] >= 1.6
        elif o.get("status") == "ok" and n.get("status") == "oom":
            out[f"DPO {shape}: >= 1.6x naive tokens/s"] = "naive OOM"
    o = results.get("dpo_ours_8x1024", {})
    if o.get("status") == "ok":
        out["DPO 8x1024 <= 40 GiB"] = o["peak_gib"] <= 40
    if "dpo_ours_32x512" in results:
        out["DPO 32x512 fits"] = results["dpo_ours_32x512"].get("status") == "ok"
    sft = next((v for k, v in results.items() if k.startswith("sft_")), {})
    if sft.get("mfu") is not None:
        out["SFT >= 40% MFU"] = sft["mfu"] >= 0.40
    return out


def markdown(report):
    f = lambda v, d=0: "-" if v is None else f"{v:,.{d}f}"  # noqa: E731
    env, res = report["environment"], report["results"]
    lines = [f"# GPU benchmark, {report['date']}", "",
             f"`{report['command']}` on {env['device_name']} | torch {env['torch']} | transformers {env['transformers']} "
             f"| model {report['model']} | wall {report['wall_s']:.0f} s of a {report['budget_s']:.0f} s budget", ""]
    s = res.get("sampler", {})
    lines += ["## Sampler vs model.generate (greedy, stops off)", ""]
    if s.get("status") == "ok":
        sp = report["plan"]["sampler"]
        lines += [f"batch {sp['batch']} x prompt {sp['prompt']} + {sp['new']} new tokens", "",
                  "| | new tokens/s | seconds |", "|---|---|---|",
                  f"| engine.Sampler | {f(s['sampler_new_tok_s'])} | {s['sampler_s']:.2f} |",
                  f"| model.generate | {f(s['generate_new_tok_s'])} | {s['generate_s']:.2f} |", "",
                  f"ratio **{s['ratio']:.2f}x**; greedy tokens identical (up to the first EOS) on "
                  f"{s['greedy_rows_identical']}/{s['greedy_rows']} rows, mean identical prefix "
                  f"{s['greedy_mean_identical_prefix']:.1f} tokens; peak {s['peak_gib']:.1f} GiB", ""]
    else:
        lines += [f"{s.get('status', 'not run')}: {s.get('error', '')}", ""]
    lines += ["## Training steps (one optimizer step, bf16 autocast over fp32 weights, AdamW)", "",
              "| measurement | tokens/step | tokens/s | step s | peak GiB | MFU | status |", "|---|---|---|---|---|---|---|"]
    for name, r in res.items():
        if name == "sampler":
            continue
        if r.get("status") == "ok":
            mfu = "-" if r.get("mfu") is None else f"{100 * r['mfu']:.1f}%"
            lines.append(f"| {name} | {r['tokens']:,} | {f(r['tok_s'])} | {r['step_s']:.3f} | {r['peak_gib']:.1f} | {mfu} | ok |")
        else:
            lines.append(f"| {name} | | | | | | {r.get('status')}: {str(r.get('error', ''))[:120]} |")
    for shape in ("8x1024", "32x512", "2x64", "4x32"):
        o, n = res.get(f"dpo_ours_{shape}", {}), res.get(f"dpo_naive_{shape}", {})
        if o.get("status") == "ok" and n.get("status") == "ok":
            lines.append(f"\nDPO {shape}: ours / naive = **{o['tok_s'] / n['tok_s']:.2f}x** tokens/s, "
                         f"{o['peak_gib'] / n['peak_gib']:.2f}x peak memory")
    if report["goals"]:
        lines += ["", "## Goals (issue 13)", "", "| goal | met |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in report["goals"].items()]
    lines += ["", "MFU: " + report["mfu_definition"]]
    return "\n".join(lines) + "\n"


def main():
    args = parser.parse_args()
    args.steps = args.steps or (1 if args.cpu_smoke else 3)
    if args.budget_s is None:
        args.budget_s = 240.0 if args.cpu_smoke else 420.0
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.cpu_smoke:
        device = "cpu"
    elif not device.startswith("cuda"):
        raise SystemExit("error: no GPU here; `bash bench/gpu.sh --cpu-smoke` runs the same code at tiny shapes on the CPU")
    specs, shrink = plan(args)
    if args.child:  # one measurement, its JSON on the last line
        print("RESULT " + json.dumps(run_one(args, args.child, specs[args.child], device, shrink)), flush=True)
        return
    names = args.only or list(specs)
    bad = [n for n in names if n not in specs]
    if bad:
        raise SystemExit(f"error: unknown measurement(s) {bad}; known: {list(specs)}")
    isolate = args.isolate if args.isolate is not None else not args.cpu_smoke
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    out_dir = Path(args.out_dir or (REPO / ("runs/bench-cpu-smoke" if args.cpu_smoke else "bench/results")))
    stem = out_dir / f"gpu-{date}{'-cpu-smoke' if args.cpu_smoke else ''}"
    cfg = config(args, shrink)
    dev_name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    pk = peak_flops(dev_name, args.peak_tflops) if device.startswith("cuda") else None
    import transformers
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        rev = None
    report = {"date": date, "command": "bash bench/gpu.sh" + (" --cpu-smoke" if args.cpu_smoke else ""), "git": rev,
              "argv": sys.argv[1:], "budget_s": args.budget_s, "isolate": isolate,
              "model": (f"Qwen2.5-1.5B config, random init ({cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, "
                        f"vocab {cfg.vocab_size}{'' if (Path(args.config) / 'config.json').exists() else ', built in code'})"),
              "environment": {"device_name": dev_name, "torch": torch.__version__, "transformers": transformers.__version__,
                              "cuda": torch.version.cuda, "peak_bf16_flops": pk},
              "plan": specs, "results": {}, "goals": {},
              "mfu_definition": ("model FLOPs of the policy's forward + backward (3 x forward: 2 x block matmul params "
                                 "+ 2 x layers x query width x seq_len per token, 2 x hidden x vocab per labelled "
                                 "position; no recompute, no reference forward) / step time / "
                                 + (f"{pk / 1e12:.1f} TFLOP/s dense bf16 ({dev_name})" if pk else "peak (unknown here)"))}
    t_start = time.perf_counter()
    print(f"{report['command']}: {dev_name} | {report['model']} | budget {args.budget_s:.0f}s | "
          f"{'one process per measurement' if isolate else 'in-process'}", flush=True)
    for name in names:
        left = args.budget_s - (time.perf_counter() - t_start)
        if left < (10 if args.cpu_smoke else 45):
            res = {"status": "skipped", "error": f"time budget ({left:.0f}s left)"}
        elif isolate:
            res = run_child(args, name, left)
        else:
            res = run_one(args, name, specs[name], device, shrink)
        if res.get("status") == "ok" and "flops" in res:
            res["achieved_tflops"] = res["flops"] / res["step_s"] / 1e12
            res["mfu"] = res["flops"] / res["step_s"] / pk if pk else None
        report["results"][name] = res
        report["wall_s"] = time.perf_counter() - t_start
        report["goals"] = goals(report["results"], args.cpu_smoke)
        write_json(stem.with_suffix(".json"), report)                     # after every measurement: a kill keeps them
        (stem.with_suffix(".md")).write_text(markdown(report), encoding="utf-8")
        brief = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()
                 if k in ("status", "tok_s", "step_s", "peak_gib", "mfu", "sampler_new_tok_s", "generate_new_tok_s",
                          "ratio", "greedy_rows_identical", "error", "wall_s", "wall_s_process")}
        print(f"[{time.perf_counter() - t_start:6.1f}s] {name}: {brief}", flush=True)
    print(markdown(report))
    print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
