r"""
The decode engine: continue prompts with a Qwen2-style causal LM, one seeded sample per row.
Used by sample.py (K samples per problem) and evaluate.py (greedy answers + k samples); neither imports the other.

Read `reference_generate` first: a plain loop over the Hugging Face model's own forward, one row at a time, no
cache. It defines what a sample is. `Sampler` computes exactly the same tokens (tests check it token for token, greedy and
seeded) but fast:

    sampler = Sampler(model, tok, device)                        # model: a loaded Qwen2ForCausalLM
    results = sampler.generate(prompts, seeds, max_new_tokens=512, temperature=0.8)
    # results[i] = {"completion": str, "finish_reason": "eos" | "stop" | "length", "n_tokens": int, "token_ids": [...]}

What a sample is. Row i draws token t by inverse-CDF sampling (`sample_tokens`) with the uniform
u(seeds[i], t) = splitmix64(splitmix64(seed) + (t + 1) * 0x9E3779B97F4A7C15) >> 40, / 2**24 (`uniforms`): a
counter-based generator, so a sample is a pure function of (model, prompt, seed), whatever the batch size, batch
order, rank count or max_new_tokens (a smaller budget only truncates). temperature 0 = argmax. A row stops at EOS
("eos"), after the line `The answer is: N\n` ("stop"; the completion ends before that newline), or after
max_new_tokens ("length"). n_tokens counts the tokens generated, the final EOS / newline token included.

How the Sampler is fast: `qwen2_forward`, a hand-written Qwen2 forward over the HF module's own weights with a
static KV cache (layers x (B, kv_heads, T_max, head_dim)) written in place; left-padded prompts sorted by length;
one prefill per distinct prompt (the K samples of a problem copy its cache rows); sampling on the device; a host
sync only every `check_every` decode steps (for the stop checks); finished rows compacted away once they are half
the batch; on CUDA the whole decode step (forward + sampling + counters) replayed as one CUDA graph.
"""
import re

import numpy as np
import torch
import torch.nn.functional as F

from common import print0

# the answer line of our format, followed by a newline: everything after it is wasted tokens
ANSWER_LINE = re.compile(r"The answer is:[ \t]*\S[^\n]*\n")

# -----------------------------------------------------------------------------
# counter-based randomness: integers in, integers out (never Python's salted hash(str))

M64 = (1 << 64) - 1

def sample_seed(base_seed, problem_index, sample_idx):
    """Seed of sample `sample_idx` of problem `problem_index` (0-based position in the data file): unique within a
    run for up to 1009 samples per problem."""
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

def eos_token_ids(model, tok):
    """Every id that ends a row: the tokenizer's EOS plus the model config's / generation config's (Qwen lists 2)."""
    eos = {tok.eos_token_id}
    for cfg in (model.config, getattr(model, "generation_config", None)):
        e = getattr(cfg, "eos_token_id", None)
        eos |= set(e) if isinstance(e, (list, tuple)) else ({e} if e is not None else set())
    return eos

def encode(tok, prompt):
    """A prompt as token ids: a str is tokenised (no BOS: our prompt format starts the text), a list passes through."""
    return tok(prompt, add_special_tokens=False)["input_ids"] if isinstance(prompt, str) else list(prompt)

def max_prompt_tokens(model, max_new_tokens):
    """The longest prompt a row may have: the model's positions minus the generation budget."""
    return model.config.max_position_embeddings - max_new_tokens

# -----------------------------------------------------------------------------
# the reference: what a sample is, in plain Python over the HF model's own forward (slow; the tests' yardstick)

@torch.inference_mode()
def reference_generate(model, tok, prompts, seeds, max_new_tokens=512, temperature=0.0, top_p=1.0, stop_at_answer=True):
    """Same arguments and results as Sampler.generate: one row at a time, the whole sequence through the HF model's
    forward at every step (no cache, no padding, no batching: nothing to get wrong, quadratic cost)."""
    eos, results = eos_token_ids(model, tok), []
    for prompt, seed in zip(prompts, seeds):
        ids, new, reason = encode(tok, prompt), [], "length"
        u = torch.from_numpy(uniforms([seed], max_new_tokens)).to(model.device)  # (1, max_new): one uniform per step
        for t in range(max_new_tokens):
            logits = model(input_ids=torch.tensor([ids + new], device=model.device)).logits[:, -1].float()  # (1, V)
            token = sample_tokens(logits, u[:, t], temperature, top_p).item()
            if token in eos:
                reason = "eos"
                break
            new.append(token)
            if stop_at_answer and "\n" in tok.decode([token]) and \
                    ANSWER_LINE.search(tok.decode(new, clean_up_tokenization_spaces=False)):
                reason = "stop"
                break
        text = tok.decode(new, clean_up_tokenization_spaces=False)
        if reason == "stop":
            text = text[:ANSWER_LINE.search(text).end() - 1]                  # ends before the answer line's newline
        results.append({"completion": text, "finish_reason": reason, "n_tokens": len(new) + (reason == "eos"),
                        "token_ids": new})
    return results

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
# the fast engine

class DecodeState:
    """Device tensors of one running batch of B rows; a decode step only mutates them in place (CUDA-graph friendly).
    kv: per layer (k, v) caches (B, Hkv, T_max, D); key_mask (B, T_max): cache columns a row may attend to;
    token (B,): the last drawn token; pos (B,): its position id; uniforms (B, max_new); tokens (B, max_new): every
    drawn token; col (1,): the cache column the next token goes to; step (1,): its index in `tokens`;
    n_cols (host int): columns in use (an eager step attends over those only)."""
    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.graph = None

    def keep_rows(self, keep):
        """Drop finished rows: keep (B',) long row indices."""
        for name in ("key_mask", "token", "pos", "uniforms", "tokens"):
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
            raise SystemExit(f"engine.py: hand-written forward supports Qwen2/Llama-style models, got {cfg.model_type}")
        self.eos_ids = eos_token_ids(model, tok)
        # token ids whose text holds a newline: only those can complete the answer line
        texts = tok.batch_decode([[i] for i in range(len(tok))])
        self.nl_ids = {i for i, s in enumerate(texts) if "\n" in s}
        # no token spans more bytes than this: a text of more characters than limit x this is over `limit` tokens
        self.max_token_bytes = max(len(s.encode()) for s in texts)

    def max_prompt_tokens(self, max_new_tokens):
        return max_prompt_tokens(self.model, max_new_tokens)

    # ---- the public API

    @torch.inference_mode()
    def generate_batches(self, prompts, seeds, max_new_tokens=512, temperature=0.0, top_p=1.0, batch_size=64,
                         stop_at_answer=True, stop_at_eos=True):
        """prompts: list of str (or lists of token ids), seeds: list of int, one per row. Rows are sorted by prompt
        length and decoded in batches; yields (row indices, results) per batch, results[i] = dict(completion,
        finish_reason 'eos'|'stop'|'length', n_tokens (generated, incl. EOS / the answer line's newline token),
        token_ids). A row's result depends only on (model, prompt, seed). A prompt longer than the model's
        positions minus max_new_tokens raises ValueError (the stage scripts refuse such files up front)."""
        enc = [encode(self.tok, p) for p in prompts]
        longest, limit = max(map(len, enc), default=0), self.max_prompt_tokens(max_new_tokens)
        if longest > limit:
            raise ValueError(f"a prompt of {longest} tokens exceeds {limit} (the model's "
                             f"{self.model.config.max_position_embeddings} positions minus {max_new_tokens} new tokens)")
        order = sorted(range(len(enc)), key=lambda i: (len(enc[i]), i))  # similar lengths together: little padding
        for b in range(0, len(order), batch_size):
            rows = order[b:b + batch_size]
            yield rows, self._generate_batch([enc[i] for i in rows], [seeds[i] for i in rows], max_new_tokens,
                                             temperature, top_p, stop_at_answer, stop_at_eos)

    def generate(self, prompts, seeds, **kw):
        """Like generate_batches, results in the order of `prompts`."""
        res = [None] * len(prompts)
        for rows, out in self.generate_batches(prompts, seeds, **kw):
            for i, r in zip(rows, out):
                res[i] = r
        return res

    # ---- one batch: prefill + first token (_start_rows), then rounds of decode steps and a stop check

    def _generate_batch(self, enc, seeds, max_new, temperature, top_p, stop_at_answer, stop_at_eos):
        st = self._start_rows(enc, seeds, max_new, temperature, top_p)
        stops = (self.eos_ids if stop_at_eos else set()) | (self.nl_ids if stop_at_answer else set())
        stops = np.array(sorted(stops))
        # host side: batch index of each device row, tokens generated so far per row, the finished results
        rows, generated, results = list(range(len(enc))), [[] for _ in enc], [None] * len(enc)
        steps_done, steps_seen = 1, 0
        while True:
            new = st.tokens[:, steps_seen:steps_done].cpu().numpy()            # (B', w): the one host sync
            running = self._check_stops(new, stops, rows, generated, results, steps_done == max_new,
                                        stop_at_answer, stop_at_eos)
            if not running:
                return results
            if len(running) <= len(rows) // 2:  # finished rows are half the batch: stop paying for them
                st.keep_rows(torch.tensor(running, device=self.device))
                rows = [rows[r] for r in running]
            steps_seen = steps_done
            n = min(self.check_every, max_new - steps_done)
            self._decode(st, n, temperature, top_p)
            steps_done += n

    def _start_rows(self, enc, seeds, max_new, temperature, top_p):
        """Prefill each distinct prompt once (the K samples of a problem share it), copy its cache rows to every row
        sampling from it, draw each row's first token. Returns the DecodeState of the batch."""
        dev, B = self.device, len(enc)
        P = max(len(e) for e in enc)
        T_max = P + max_new - 1            # the last drawn token never needs its K/V
        distinct, prompt_of_row = {}, []   # distinct prompt -> its index; row -> index of its prompt
        for e in enc:
            prompt_of_row.append(distinct.setdefault(tuple(e), len(distinct)))
        logits, kv, prompt_mask, pos = self._prefill(list(distinct), T_max)
        row_prompt = torch.tensor(prompt_of_row, device=dev)                      # (B,)
        u = torch.from_numpy(uniforms(seeds, max_new)).to(dev)                   # (B, max_new)
        first = sample_tokens(logits.index_select(0, row_prompt), u[:, 0], temperature, top_p)
        tokens = torch.zeros((B, max_new), dtype=torch.long, device=dev)
        tokens[:, 0] = first
        key_mask = torch.cat([prompt_mask.index_select(0, row_prompt),
                              torch.zeros(B, T_max - P, dtype=torch.bool, device=dev)], 1)
        return DecodeState(kv=[(k.index_select(0, row_prompt), v.index_select(0, row_prompt)) for k, v in kv],
                           key_mask=key_mask, token=first.clone(), pos=pos[:, -1].index_select(0, row_prompt) + 1,
                           uniforms=u, tokens=tokens, col=torch.tensor([P], device=dev),
                           step=torch.tensor([1], device=dev), n_cols=P)

    def _prefill(self, prompts, T_max):
        """Run n distinct prompts (token-id sequences) left-padded to the longest, P, through the model: fills a fresh
        cache, per layer (k, v) each (n, Hkv, T_max, D), at columns 0..P-1. Returns (next-token logits (n, V) fp32,
        the cache, prompt_mask (n, P) bool: True on real tokens, position ids (n, P))."""
        dev, cfg, n, P = self.device, self.model.config, len(prompts), max(len(e) for e in prompts)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        ids = torch.full((n, P), pad, dtype=torch.long)
        prompt_mask = torch.zeros((n, P), dtype=torch.bool)
        for i, e in enumerate(prompts):    # left padding: every row's next token goes to the same cache column
            ids[i, P - len(e):] = torch.tensor(e, dtype=torch.long)
            prompt_mask[i, P - len(e):] = True
        ids, prompt_mask = ids.to(dev), prompt_mask.to(dev)
        pos = (prompt_mask.long().cumsum(-1) - 1).clamp_(min=0)                  # (n, P) like HF generate
        causal = torch.ones(P, P, dtype=torch.bool, device=dev).tril()
        # (n, P, P): causal & not a pad key; pad queries see themselves (garbage rows, never read, but no NaN)
        mask = (causal & prompt_mask[:, None, :]) | torch.eye(P, dtype=torch.bool, device=dev)
        Hkv = cfg.num_key_value_heads
        D = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        dt = self.model.lm_head.weight.dtype
        kv = [(torch.zeros(n, Hkv, T_max, D, dtype=dt, device=dev), torch.zeros(n, Hkv, T_max, D, dtype=dt, device=dev))
              for _ in range(cfg.num_hidden_layers)]
        h = self.fwd(self.model, ids, pos, kv, torch.arange(P, device=dev), mask[:, None])
        return self.model.lm_head(h).float(), kv, prompt_mask, pos

    def _check_stops(self, new, stops, rows, generated, results, budget_spent, stop_at_answer, stop_at_eos):
        """The host side of a stop check. new: (B', w) numpy, the tokens each device row drew since the last check;
        rows[r] = batch index of device row r; `stops` = the ids that can end a row (EOS, newline tokens). Extends
        generated[...], fills results[...] of rows that finished. Returns the device rows still running."""
        hit = np.isin(new, stops).any(1) if len(stops) else np.zeros(len(rows), bool)
        running = []
        for r, g in enumerate(rows):
            if results[g] is not None:   # finished earlier, not compacted away yet
                continue
            w, gen = new[r].tolist(), generated[g]
            if hit[r]:
                for j, t in enumerate(w):
                    if stop_at_eos and t in self.eos_ids:
                        results[g] = self._result(gen + w[:j], "eos", len(gen) + j + 1)
                        break
                    if stop_at_answer and t in self.nl_ids:
                        text = self.tok.decode(gen + w[:j + 1], clean_up_tokenization_spaces=False)
                        m = ANSWER_LINE.search(text)
                        if m:
                            results[g] = self._result(gen + w[:j + 1], "stop", len(gen) + j + 1, text[:m.end() - 1])
                            break
            if results[g] is None:
                gen.extend(w)
                if budget_spent:
                    results[g] = self._result(gen, "length", len(gen))
                else:
                    running.append(r)
        return running

    def _result(self, ids, reason, n_tokens, text=None):
        text = self.tok.decode(ids, clean_up_tokenization_spaces=False) if text is None else text
        return {"completion": text, "finish_reason": reason, "n_tokens": n_tokens, "token_ids": ids}

    # ---- decode steps, all on the device: eagerly or replayed as a CUDA graph

    def _decode_step(self, st, temperature, top_p, eager=True):
        """One token per row: forward the last token, draw the next one, advance the counters (in place)."""
        st.key_mask.index_fill_(1, st.col, True)                       # the column this token goes to
        L = st.n_cols + 1 if eager else None                           # eager: attend over the used columns only
        st.n_cols += 1
        h = (self.fwd_decode or self.fwd)(self.model, st.token[:, None], st.pos[:, None], st.kv, st.col,
                                          st.key_mask[:, None, None, :L], L)
        logits = self.model.lm_head(h).float()                         # (B, V)
        nxt = sample_tokens(logits, st.uniforms.index_select(1, st.step).squeeze(1), temperature, top_p)
        st.tokens.index_copy_(1, st.step, nxt[:, None])
        st.token.copy_(nxt)
        st.pos.add_(1)
        st.col.add_(1)
        st.step.add_(1)

    def _decode(self, st, n, temperature, top_p):
        """n decode steps. On CUDA the step is captured once per batch shape and replayed."""
        if not self.graphs or n < 4:
            for _ in range(n):
                self._decode_step(st, temperature, top_p)
            return
        if st.graph is None:
            # the first step runs eagerly on a side stream with the graph's static shapes (warm-up: cuBLAS/attention
            # workspaces and --compile's compilation happen outside the graph), then the step is captured (recorded,
            # not run) and replayed
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                self._decode_step(st, temperature, top_p, eager=False)
            torch.cuda.current_stream().wait_stream(s)
            n, n_cols = n - 1, st.n_cols
            try:
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    self._decode_step(st, temperature, top_p, eager=False)
                st.graph = g
            except Exception as e:  # best effort: keep going eagerly rather than lose the run
                print0(f"warning: CUDA graph capture failed ({type(e).__name__}: {e}); decoding eagerly")
                self.graphs = False
            st.n_cols = n_cols  # capture ran nothing
            if st.graph is None:
                return self._decode(st, n, temperature, top_p)
        for _ in range(n):
            st.graph.replay()
        st.n_cols += n
