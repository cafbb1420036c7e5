r"""
Throughput of engine.py's Sampler (used by sample.py and evaluate.py) vs transformers' model.generate on the same prompts, in one run:
new tokens/s for each and the ratio, plus a greedy token-for-token agreement check.

    python bench/bench_sample.py                       # CPU default: toy Qwen2, batch 64, prompt 64, 64 new tokens

The H100 target (random-init Qwen2.5-1.5B shapes, bf16, batch 256, 128-token prompts, 256 new tokens):

    python bench/bench_sample.py --model ../shared/data/qwen2.5_configs/Qwen2.5-1.5B-Instruct_transformers5_resave \
        --tokenizer ../shared/data/qwen2.5_tokenizer --device cuda --batch-size 256 --prompt-len 128 --new-tokens 256

    # + `--compile` (fused elementwise ops inside the graph; ~1 min compile in the warm-up), `--temperature 0.8`

(target: >= 30k new tokens/s and >= 8x model.generate; not measured yet: the machine this was written on has no GPU).
Both sides decode exactly --new-tokens tokens per row
(EOS / answer-line stops off: HF gets min_new_tokens = max_new_tokens), start from the same random prompts
(distinct per row, so no prefill sharing is credited to the sampler) and are timed after one warm-up call
(CUDA init, graph capture, allocator). --temperature 0 (default) also reports how many rows of the sampler's
greedy output equal model.generate's up to the sampler's first EOS (HF's min_new_tokens masks EOS); in fp32 on
CPU that is every row, in bf16 on GPU a row can part ways after a near-tie (different kernels, same math).
--layers / --hidden / --intermediate shrink the config (e.g. a 0.5B-ish model on a CPU box).
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import load_model  # noqa: E402
from engine import Sampler  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default="toy", help="'toy', a config-only dir (random init) or a checkpoint dir")
parser.add_argument("--tokenizer", default=None, help="tokenizer path when --model has none")
parser.add_argument("--batch-size", type=int, default=64, help="rows decoded together (both sides)")
parser.add_argument("--prompt-len", type=int, default=64, help="prompt tokens per row (random ids)")
parser.add_argument("--new-tokens", type=int, default=64, help="new tokens per row")
parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (+ agreement check); > 0 samples")
parser.add_argument("--layers", type=int, default=0, help="override num_hidden_layers (0 = config's)")
parser.add_argument("--hidden", type=int, default=0, help="override hidden_size (0 = config's)")
parser.add_argument("--intermediate", type=int, default=0, help="override intermediate_size (0 = config's)")
parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
parser.add_argument("--dtype", default="bfloat16", help="weights dtype on GPU (CPU: float32)")
parser.add_argument("--cuda-graphs", default=True, action=argparse.BooleanOptionalAction, help="sampler: CUDA graphs (GPU)")
parser.add_argument("--compile", action="store_true", help="sampler: torch.compile the decode forward")
parser.add_argument("--repeats", type=int, default=3, help="timed runs per side, interleaved; the best is reported (shared CPUs are noisy)")
parser.add_argument("--skip-generate", action="store_true", help="time the sampler only")
parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")


def shrink(model_dir, args):
    """A config-only copy of --model's config with fewer layers / a smaller width (random init anyway)."""
    import atexit
    import json
    import shutil
    import tempfile
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    for key, v in (("num_hidden_layers", args.layers), ("hidden_size", args.hidden), ("intermediate_size", args.intermediate)):
        if v:
            cfg[key] = v
    cfg.pop("layer_types", None)  # derived from num_hidden_layers
    d = Path(tempfile.mkdtemp(prefix="bench_cfg_"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    (d / "config.json").write_text(json.dumps(cfg))
    return str(d)


# the sampler-vs-generate pieces bench/gpu_bench.py's "sampler" measurement also uses

def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, n, device):
    """(seconds, fn(n)), the device synchronised on both sides: queued GPU work is not done when fn returns."""
    sync(device)
    t0 = time.perf_counter()
    out = fn(n)
    sync(device)
    return time.perf_counter() - t0, out


def random_prompts(tok, vocab_size, B, P, seed=0):
    """(B, P) random non-special token ids, distinct per row: no prefill sharing is credited to the sampler."""
    special = set(tok.all_special_ids) | {tok.eos_token_id}
    ok = torch.tensor([i for i in range(min(len(tok), vocab_size)) if i not in special])
    return ok[torch.randint(len(ok), (B, P), generator=torch.Generator().manual_seed(seed))]


def greedy_agreement(ours, hf, P, eos):
    """Row by row, how many of the sampler's greedy tokens equal model.generate's (hf: (B, P + new)), up to the
    sampler's first EOS (HF's min_new_tokens masks EOS). Returns (rows identical, [identical prefix per row])."""
    same, prefix = 0, []
    for i, r in enumerate(ours):
        m = r["token_ids"]
        cut = next((j for j, t in enumerate(m) if t in eos), len(m))
        h = hf[i, P:P + cut].tolist()
        k = next((j for j in range(cut) if j >= len(h) or m[j] != h[j]), cut)
        same += k == cut
        prefix.append(k)
    return same, prefix


def main():
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtype = getattr(torch, args.dtype) if device.startswith("cuda") else torch.float32
    name = shrink(args.model, args) if (args.layers or args.hidden or args.intermediate) and args.model != "toy" else args.model
    model, tok, how = load_model(name, dtype=dtype, device=device, tokenizer=args.tokenizer)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    B, P, N = args.batch_size, args.prompt_len, args.new_tokens
    prompts = random_prompts(tok, model.config.vocab_size, B, P)                # (B, P) distinct random prompts
    dev_name = torch.cuda.get_device_name() if device.startswith("cuda") else f"{torch.get_num_threads()}-thread CPU"
    print(f"model: {how} | {n_params / 1e6:.1f}M params | {dtype} | {dev_name} | batch {B} x prompt {P} + {N} new | "
          f"temperature {args.temperature}")

    sampler = Sampler(model, tok, device, cuda_graphs=args.cuda_graphs, compile=args.compile)
    kw = dict(temperature=args.temperature, batch_size=B, stop_at_answer=False, stop_at_eos=False)
    rows = prompts.tolist()
    ids, am = prompts.to(device), torch.ones_like(prompts).to(device)
    hkw = dict(max_new_tokens=N, min_new_tokens=N, pad_token_id=tok.pad_token_id, do_sample=args.temperature > 0)
    if args.temperature > 0:
        hkw.update(temperature=args.temperature, top_k=0, top_p=1.0)

    def run_mine(n):
        return sampler.generate(rows, list(range(B)), max_new_tokens=n, **kw)

    def run_hf(n):
        with torch.inference_mode():
            return model.generate(input_ids=ids, attention_mask=am, **{**hkw, "max_new_tokens": n, "min_new_tokens": n})

    run_mine(min(N, 16))                                                         # warm-up: CUDA init, graph capture
    if not args.skip_generate:
        run_hf(min(N, 16))
    t_mine, t_hf = float("inf"), float("inf")
    for _ in range(args.repeats):                                                # interleaved: same background load
        t, mine = timed(run_mine, N, device)
        t_mine = min(t_mine, t)
        if not args.skip_generate:
            t, out = timed(run_hf, N, device)
            t_hf = min(t_hf, t)
    n_new = sum(r["n_tokens"] for r in mine)
    print(f"engine.Sampler : {n_new / t_mine:10.0f} new tok/s  ({n_new} tokens in {t_mine:.2f}s, best of {args.repeats})")
    if args.skip_generate:
        return
    n_hf = (out.shape[1] - P) * B
    print(f"model.generate : {n_hf / t_hf:10.0f} new tok/s  ({n_hf} tokens in {t_hf:.2f}s, best of {args.repeats})")
    print(f"speed-up       : {(n_new / t_mine) / (n_hf / t_hf):10.2f}x")
    if args.temperature == 0:
        same, _ = greedy_agreement(mine, out, P, sampler.eos_ids)
        print(f"greedy agreement with model.generate: {same}/{B} rows identical (up to the sampler's first EOS)")


if __name__ == "__main__":
    main()
