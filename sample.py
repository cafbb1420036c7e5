r"""
Stage 2: sample K solutions per problem from a checkpoint, fast and resumable.

    python sample.py --model out/sft --data data/toy/train.jsonl --k 8 --temperature 0.8 -o out/samples.jsonl
    python sample.py ... --resume                          # after a crash/kill: skips the finished samples
    torchrun --nproc_per_node 8 sample.py --model out/sft --data data/gsm8k/train.jsonl --k 8 --temperature 0.8 \
        -o out/samples.jsonl                               # problems sharded over ranks, rank 0 merges

Output: one JSONL record per (problem, sample) in CONVENTIONS.md's schema, sorted by (problem index, sample_idx)
at the end, plus `<out>.meta.json`. While running, each rank appends (flushed per batch) to `<out>.part<rank>`;
--resume reads those and `<out>`, so a killed run loses at most one batch.

How it is fast: a hand-written Qwen2 forward over the HF module's own weights with a static KV cache
(layers x (B, kv_heads, T_max, head_dim)), left-padded prompts sorted by length, one prefill per distinct prompt
(the K samples of a problem share it), sampling on the device, a host sync only every --check-every steps
(for EOS / answer-line stops), finished rows compacted away once they are half the batch, and on CUDA the whole
decode step (forward + sampling + bookkeeping) replayed as one CUDA graph.

How it is reproducible: sample j of problem i uses seed = base_seed * 1_000_003 + i * 1009 + j (i = 0-based
position in --data, stored in the record). Token t of that sample is drawn by inverse-CDF sampling with the
uniform u(seed, t) = splitmix64(splitmix64(seed) + (t + 1) * 0x9E3779B97F4A7C15) >> 40, / 2**24: a
counter-based generator, one number per (row, step), computed for the whole batch in one numpy call. A sample is
therefore a pure function of (model, prompt, seed) -- independent of batch size, batch order, rank count, device
and --max-new-tokens -- and `generate(..., [prompt], [seed])` regenerates any stored sample alone.
"""
import argparse
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import (DataError, compute_cleanup, compute_init, format_prompt, load_model, print0, read_jsonl,
                    read_jsonl_tolerant, write_json, write_jsonl)

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default="out/sft", help="checkpoint dir (HF format), hub id, or 'toy' (random tiny Qwen2)")
parser.add_argument("--tokenizer", default=None, help="tokenizer path if --model has none (a config-only dir)")
parser.add_argument("--data", default="data/toy/train.jsonl", help="problems JSONL with question/answer (+id, solution)")
parser.add_argument("-o", "--out", default="out/samples.jsonl", help="output JSONL (one record per problem x sample)")
parser.add_argument("--k", type=int, default=8, help="samples per problem")
parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature; 0 = greedy")
parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off; < 1 sorts the vocab each step)")
parser.add_argument("--max-new-tokens", type=int, default=512, help="generation budget per sample (finish_reason 'length')")
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

# the answer line of our format, followed by a newline: everything after it is wasted tokens
ANSWER_LINE = re.compile(r"The answer is:[ \t]*\S[^\n]*\n")

# -----------------------------------------------------------------------------
# counter-based randomness: integers in, integers out (never Python's salted hash(str))

M64 = (1 << 64) - 1

def sample_seed(base_seed, problem_index, sample_idx):
    return base_seed * 1_000_003 + problem_index * 1009 + sample_idx

def _splitmix64(x):  # x: np.uint64 array; numpy uint64 arithmetic wraps mod 2**64, which splitmix64 wants
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))

def uniforms(seeds, n_steps):
    """(len(seeds), n_steps) float32 in [0, 1): u[r, t] depends only on (seeds[r], t). 24 bits: exact in fp32."""
    with np.errstate(over="ignore"):
        s = _splitmix64(np.array([int(x) & M64 for x in seeds], dtype=np.uint64))[:, None]
        t = np.arange(1, n_steps + 1, dtype=np.uint64)[None, :] * np.uint64(0x9E3779B97F4A7C15)
        x = _splitmix64(s + t)
    return ((x >> np.uint64(40)).astype(np.float64) / float(1 << 24)).astype(np.float32)

def sample_tokens(logits, u, temperature, top_p=1.0):
    """logits (B, V) float32, u (B,) uniforms -> (B,) token ids. Inverse-CDF sampling: the token whose CDF interval
    holds u * total mass. One uniform per row, all rows in one batched op, exact up to fp32 rounding of the CDF."""
    if temperature <= 0:
        return logits.argmax(-1)  # first max on ties, like HF greedy
    probs = torch.softmax(logits / temperature, dim=-1)                       # (B, V)
    idx = None
    if top_p < 1.0:  # nucleus: keep the smallest prefix of the sorted distribution with mass >= top_p
        probs, idx = probs.sort(dim=-1, descending=True)
        probs = probs * ((probs.cumsum(-1) - probs) < top_p)
    cdf = probs.cumsum(-1)                                                    # (B, V)
    j = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True).clamp_(max=cdf.shape[1] - 1)
    return (idx.gather(1, j) if idx is not None else j).squeeze(1)

# -----------------------------------------------------------------------------
# Qwen2 forward over the HF module's weights with our static cache (verified against HF logits in the tests)

def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)

def qwen2_forward(model, ids, pos, kv, slot, mask, kv_len=None):
    """ids, pos: (B, T) token ids / position ids; kv: per layer (k, v), each (B, Hkv, T_max, D), written in place at
    cache columns `slot` (T,); mask: (B, 1, T, T_max) bool, True = may attend (decode) or (B, 1, T, T) (prefill:
    the T tokens are cache columns 0..T-1). kv_len (int, eager decode only): attend over the first kv_len columns
    instead of all T_max (a CUDA graph needs the static T_max). Returns the last position's final hidden, (B, H)."""
    inner = model.model
    B, T = ids.shape
    x = inner.embed_tokens(ids)                                               # (B, T, H)
    cos, sin = inner.rotary_emb(x, pos)                                       # (B, T, D)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)                             # broadcast over heads
    for layer, (kc, vc) in zip(inner.layers, kv):
        att = layer.self_attn
        D, n_rep = att.head_dim, att.num_key_value_groups
        h = layer.input_layernorm(x)
        q = att.q_proj(h).view(B, T, -1, D).transpose(1, 2)                  # (B, Hq, T, D)
        k = att.k_proj(h).view(B, T, -1, D).transpose(1, 2)                  # (B, Hkv, T, D)
        v = att.v_proj(h).view(B, T, -1, D).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        kc.index_copy_(2, slot, k)
        vc.index_copy_(2, slot, v)
        if T == 1:  # decode: the n_rep query heads of a kv head become n_rep "query positions": no repeat_kv copy
            if kv_len is not None:
                kc, vc = kc[:, :, :kv_len], vc[:, :, :kv_len]
            o = F.scaled_dot_product_attention(q.view(B, -1, n_rep, D), kc, vc, attn_mask=mask, scale=att.scaling)
            o = o.reshape(B, 1, -1)                                          # (B, 1, Hq*D)
        else:       # prefill: plain attention over the T fresh keys, kv heads repeated
            k, v = k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=att.scaling)
            o = o.transpose(1, 2).reshape(B, T, -1)                          # (B, T, Hq*D)
        x = x + att.o_proj(o)
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    return inner.norm(x[:, -1])                                               # (B, H)

# -----------------------------------------------------------------------------
# the sampler

class _State:
    """Device tensors of one running batch; the decode step only mutates them in place (CUDA-graph friendly)."""
    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.graph = None

    def select(self, keep):
        """Drop finished rows: keep (B',) long row indices."""
        for name in ("valid", "tok", "pos", "U", "out"):
            setattr(self, name, getattr(self, name).index_select(0, keep))
        self.kv = [(k.index_select(0, keep), v.index_select(0, keep)) for k, v in self.kv]
        self.graph = None  # new addresses: recapture


class Sampler:
    def __init__(self, model, tok, device="cpu", cuda_graphs=True, compile=False, check_every=8):
        self.model, self.tok, self.device = model.eval(), tok, torch.device(device)
        self.graphs = cuda_graphs and self.device.type == "cuda"
        self.check_every = max(1, check_every)
        # prefill runs once per batch with ever-changing shapes: only the decode step is worth compiling
        self.fwd = qwen2_forward
        self.fwd_decode = torch.compile(qwen2_forward) if compile else None
        cfg = model.config
        if cfg.model_type not in ("qwen2", "llama") or getattr(cfg, "use_sliding_window", False):
            raise SystemExit(f"sample.py: hand-written forward supports Qwen2/Llama-style models, got {cfg.model_type}")
        eos = {tok.eos_token_id}
        for src in (cfg, getattr(model, "generation_config", None)):
            e = getattr(src, "eos_token_id", None)
            eos |= set(e) if isinstance(e, (list, tuple)) else ({e} if e is not None else set())
        self.eos_ids = eos
        # token ids whose text holds a newline: only those can complete the answer line
        texts = tok.batch_decode([[i] for i in range(len(tok))])
        self.nl_ids = {i for i, s in enumerate(texts) if "\n" in s}

    # ---- one decode step, all on the device: forward, sample, bookkeeping
    def _step(self, st, temperature, top_p, eager=True):
        st.valid.index_fill_(1, st.cur, True)                          # the column this token goes to
        L = st.n + 1 if eager else None                                # eager: attend over the used columns only
        st.n += 1
        h = (self.fwd_decode or self.fwd)(self.model, st.tok[:, None], st.pos[:, None], st.kv, st.cur,
                                          st.valid[:, None, None, :L], L)
        logits = self.model.lm_head(h).float()                         # (B, V)
        nxt = sample_tokens(logits, st.U.index_select(1, st.t).squeeze(1), temperature, top_p)
        st.out.index_copy_(1, st.t, nxt[:, None])
        st.tok.copy_(nxt)
        st.pos.add_(1)
        st.cur.add_(1)
        st.t.add_(1)

    def _run(self, st, n, temperature, top_p):
        if not self.graphs or n < 4:
            for _ in range(n):
                self._step(st, temperature, top_p)
            return
        if st.graph is None:
            # the first step runs eagerly on a side stream with the graph's static shapes (warm-up: cuBLAS/attention
            # workspaces and --compile's compilation happen outside the graph), then the step is captured (recorded,
            # not run) and replayed
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                self._step(st, temperature, top_p, eager=False)
            torch.cuda.current_stream().wait_stream(s)
            n, n_host = n - 1, st.n
            try:
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    self._step(st, temperature, top_p, eager=False)
                st.graph = g
            except Exception as e:  # best effort: keep going eagerly rather than lose the run
                print0(f"warning: CUDA graph capture failed ({type(e).__name__}: {e}); decoding eagerly")
                self.graphs = False
            st.n = n_host  # capture ran nothing
            if st.graph is None:
                return self._run(st, n, temperature, top_p)
        for _ in range(n):
            st.graph.replay()
        st.n += n

    @torch.inference_mode()
    def generate_batches(self, prompts, seeds, max_new_tokens=512, temperature=0.0, top_p=1.0, batch_size=64,
                         stop_at_answer=True, stop_at_eos=True):
        """prompts: list of str (or lists of token ids), seeds: list of int, one per row. Rows are sorted by prompt
        length and decoded in batches; yields (row indices, results) per batch, results[i] = dict(completion,
        finish_reason 'eos'|'stop'|'length', n_tokens (generated, incl. EOS / the answer line's newline token),
        token_ids). A row's result depends only on (model, prompt, seed)."""
        enc = [self.tok(p, add_special_tokens=False)["input_ids"] if isinstance(p, str) else list(p) for p in prompts]
        order = sorted(range(len(enc)), key=lambda i: (len(enc[i]), i))  # similar lengths together: little padding
        for b in range(0, len(order), batch_size):
            rows = order[b:b + batch_size]
            yield rows, self._generate_batch([enc[i] for i in rows], [seeds[i] for i in rows], max_new_tokens,
                                             temperature, top_p, stop_at_answer, stop_at_eos)

    def generate(self, prompts, seeds, **kw):
        res = [None] * len(prompts)
        for rows, out in self.generate_batches(prompts, seeds, **kw):
            for i, r in zip(rows, out):
                res[i] = r
        return res

    def _generate_batch(self, enc, seeds, max_new, temperature, top_p, stop_at_answer, stop_at_eos):
        dev, cfg, B = self.device, self.model.config, len(enc)
        P = max(len(e) for e in enc)
        T_max = P + max_new - 1            # the last sampled token never needs its K/V
        # one prefill per distinct prompt; the K samples of a problem copy its cache rows
        uniq, src = {}, []
        for e in enc:
            src.append(uniq.setdefault(tuple(e), len(uniq)))
        U_ = list(uniq)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        ids = torch.full((len(U_), P), pad, dtype=torch.long)
        am = torch.zeros((len(U_), P), dtype=torch.bool)
        for i, e in enumerate(U_):         # left padding: every row's next token goes to the same cache column
            ids[i, P - len(e):] = torch.tensor(e, dtype=torch.long)
            am[i, P - len(e):] = True
        ids, am = ids.to(dev), am.to(dev)
        pos = (am.long().cumsum(-1) - 1).clamp_(min=0)                           # (U, P) like HF generate
        causal = torch.ones(P, P, dtype=torch.bool, device=dev).tril()
        # (U, 1, P, P): causal & not a pad key; pad queries see themselves (garbage rows, never read, but no NaN)
        mask = (causal & am[:, None, :]) | torch.eye(P, dtype=torch.bool, device=dev)
        Hkv = cfg.num_key_value_heads
        D = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        dt = self.model.lm_head.weight.dtype
        kv_u = [(torch.zeros(len(U_), Hkv, T_max, D, dtype=dt, device=dev),
                 torch.zeros(len(U_), Hkv, T_max, D, dtype=dt, device=dev)) for _ in range(cfg.num_hidden_layers)]
        h = self.fwd(self.model, ids, pos, kv_u, torch.arange(P, device=dev), mask[:, None])
        logits_u = self.model.lm_head(h).float()                                 # (U, V)
        srcd = torch.tensor(src, device=dev)
        U = torch.from_numpy(uniforms(seeds, max_new)).to(dev)                   # (B, max_new)
        first = sample_tokens(logits_u.index_select(0, srcd), U[:, 0], temperature, top_p)
        out = torch.zeros((B, max_new), dtype=torch.long, device=dev)
        out[:, 0] = first
        st = _State(kv=[(k.index_select(0, srcd), v.index_select(0, srcd)) for k, v in kv_u],
                    valid=torch.cat([am.index_select(0, srcd), torch.zeros(B, T_max - P, dtype=torch.bool, device=dev)], 1),
                    tok=first.clone(), pos=pos[:, -1].index_select(0, srcd) + 1, U=U, out=out,
                    cur=torch.tensor([P], device=dev), t=torch.tensor([1], device=dev), n=P)
        del kv_u, logits_u
        # host side: generated tokens of each alive row; rows = original batch index of each device row
        gen, res, rows = [[] for _ in range(B)], [None] * B, list(range(B))
        special = np.array(sorted((self.eos_ids if stop_at_eos else set()) | (self.nl_ids if stop_at_answer else set())))
        done_steps, seen = 1, 0
        while True:
            win = st.out[:, seen:done_steps].cpu().numpy()                       # (B', w): the one host sync
            hit = np.isin(win, special).any(1) if len(special) else np.zeros(len(rows), bool)
            alive = []
            for r, g in enumerate(rows):
                if res[g] is not None:   # finished earlier, not compacted away yet
                    continue
                w = win[r].tolist()
                if hit[r]:
                    for j, t in enumerate(w):
                        if stop_at_eos and t in self.eos_ids:
                            res[g] = self._result(gen[g] + w[:j], "eos", len(gen[g]) + j + 1)
                            break
                        if stop_at_answer and t in self.nl_ids:
                            text = self.tok.decode(gen[g] + w[:j + 1], clean_up_tokenization_spaces=False)
                            m = ANSWER_LINE.search(text)
                            if m:
                                res[g] = self._result(gen[g] + w[:j + 1], "stop", len(gen[g]) + j + 1, text[:m.end() - 1])
                                break
                if res[g] is None:
                    gen[g].extend(w)
                    if done_steps == max_new:
                        res[g] = self._result(gen[g], "length", max_new)
                    else:
                        alive.append(r)
            if not alive:
                break
            if len(alive) <= len(rows) // 2:  # finished rows are half the batch: stop paying for them
                st.select(torch.tensor(alive, device=dev))
                rows = [rows[r] for r in alive]
            seen = done_steps
            n = min(self.check_every, max_new - done_steps)
            self._run(st, n, temperature, top_p)
            done_steps += n
        return res

    def _result(self, ids, reason, n_tokens, text=None):
        text = self.tok.decode(ids, clean_up_tokenization_spaces=False) if text is None else text
        return {"completion": text, "finish_reason": reason,
                "n_tokens": n_tokens, "token_ids": ids}

# -----------------------------------------------------------------------------
# data and output files

def load_problems(path, limit=-1):
    """Problems JSONL (data/*/prepare.py schema) -> records with problem_index; errors name file:line:field."""
    recs = read_jsonl(path, required=("question", "answer"),
                      types={"question": str, "answer": (str, int, float), "id": (str, int), "solution": str})
    if not recs:
        raise DataError(f"{path}: no records")
    recs = recs[:limit] if limit >= 0 else recs
    seen = {}
    for i, r in enumerate(recs):
        if not r["question"].strip():
            raise DataError(f"{path}:{r['_line']}: field 'question' is empty")
        r["id"] = str(r.get("id", f"{Path(path).stem}-{i}"))
        if r["id"] in seen:
            raise DataError(f"{path}:{r['_line']}: duplicate id '{r['id']}' (first on line {seen[r['id']]})")
        seen[r["id"]] = r["_line"]
        r["answer"], r["problem_index"] = str(r["answer"]), i
    return recs

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


def main(argv=None):
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.k < 1 or args.max_new_tokens < 1 or args.batch_size < 1 or not 0 < args.top_p <= 1:
        raise SystemExit("error: --k, --max-new-tokens, --batch-size must be >= 1 and 0 < --top-p <= 1")
    ddp, rank, _, world, device = compute_init(args.device)
    problems = load_problems(args.data, args.limit)
    out, part = Path(args.out), part_path(args.out, rank)
    out.parent.mkdir(parents=True, exist_ok=True)

    # ---- resume: which (problem, sample) rows exist already; validate they come from the same run settings
    done, meta_path = {}, Path(f"{out}.meta.json")
    if args.resume and meta_path.exists():  # --k and --limit may grow on resume; what a sample IS may not change
        old = json.loads(meta_path.read_text()).get("args", {})
        diff = [k for k in SAME_ON_RESUME if k in old and old[k] != getattr(args, k)]
        if diff:
            was = ", ".join(f"--{d.replace('_', '-')} {old[d]!r}" for d in diff)
            raise SystemExit(f"error: --resume: {meta_path} was written with {was}; use another -o or drop --resume")
    if args.resume:
        good = read_jsonl_tolerant(part)[1]
        if part.exists() and good < part.stat().st_size:
            with open(part, "r+b") as f:  # cut the torn last line of a killed writer before appending again
                f.truncate(good)
        if ddp:
            torch.distributed.barrier()  # every rank has cut its torn tail before anyone reads
        by_id = {p["id"]: p for p in problems}
        for r in read_done(out):
            p = by_id.get(r.get("problem_id"))
            if p is None or r.get("sample_idx", args.k) >= args.k:
                continue
            if r.get("seed") != sample_seed(args.seed, p["problem_index"], r["sample_idx"]) or r.get("model") != args.model:
                raise SystemExit(f"error: --resume: {out}: record {r.get('id')} was made with another --seed/--model/"
                                 f"--data order; use another -o or drop --resume")
            done[(r["problem_id"], r["sample_idx"])] = r
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
    dtype = getattr(torch, args.dtype) if str(device).startswith("cuda") else torch.float32
    model, tok, how = load_model(args.model, dtype=dtype, device=device, tokenizer=args.tokenizer)
    print0(f"model: {how} | data: {len(problems)} problems x {args.k} | world {world} | resume: {len(done)} done | "
           f"device {device}")
    sampler = Sampler(model, tok, device, cuda_graphs=args.cuda_graphs, compile=args.compile,
                      check_every=args.check_every)
    prompts = [format_prompt(p["question"]) for p, _ in todo]
    seeds = [sample_seed(args.seed, p["problem_index"], j) for p, j in todo]
    try:
        from common import progress
    except ImportError:
        from tqdm import tqdm as progress
    pbar = progress(total=n_mine, initial=n_mine - len(todo), desc=f"sample[{rank}]", disable=rank != 0)
    t0, n_tok = time.time(), 0
    with open(part, "a", encoding="utf-8") as f:
        for rows, results in sampler.generate_batches(prompts, seeds, max_new_tokens=args.max_new_tokens,
                                                      temperature=args.temperature, top_p=args.top_p,
                                                      batch_size=args.batch_size, stop_at_answer=not args.no_stop_at_answer):
            for i, r in zip(rows, results):
                p, j = todo[i]
                f.write(json.dumps(make_record(p, j, seeds[i], prompts[i], r, args.model), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())  # a kill loses at most the batch in flight
            n_tok += sum(r["n_tokens"] for r in results)
            pbar.update(len(rows))
            pbar.set_postfix(tok_s=f"{n_tok / (time.time() - t0):.0f}")
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
