"""
Small shared module for the hardneg scripts: the prompt format, JSONL I/O with
errors that name file:line:field and atomic writes (all three in records.py, torch-free, re-exported here), model/tokenizer loading
(hub id, local dir, config-only dir = random init, or the embedded "toy" default),
torchrun/DDP setup, the LR schedule, progress output and the one masking convention
used everywhere (labels == -100 means "no loss here"). Checkpoint folders and the
--resume train state are checkpoint.py's job.
"""
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent
TOY_DIR = REPO / "data" / "toy"
IGNORE = -100  # the one masking convention: targets equal to IGNORE carry no loss / no log-prob

# prompt format and JSONL I/O live in records.py (no torch: the CPU-only stages import that alone)
from records import (DataError, format_prompt, format_response, read_json, read_jsonl, read_jsonl_tolerant,  # noqa: E402,F401
                     write_json, write_jsonl)

# -----------------------------------------------------------------------------
# tokenizer / model loading

# The embedded model sizes (same Qwen2 architecture class as Qwen2.5-1.5B). 'toy' is the default; 'toy-l'
# (~6.8M params, about 3x the SFT time per step on 1-2 CPU threads) is the capacity lever of the README's experiment.
TOY_SIZES = {"toy": dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2),
             "toy-l": dict(hidden_size=320, intermediate_size=896, num_hidden_layers=6, num_attention_heads=5,
                           num_key_value_heads=1)}

def resolve_model(name):
    """'toy' / 'toy-l' -> the tokenizer dir of the embedded toy world; anything else is passed through
    (a hub id like Qwen/Qwen2.5-1.5B or a local directory)."""
    return str(TOY_DIR / "tokenizer") if name in TOY_SIZES else name

def load_tokenizer(name):
    from transformers import AutoTokenizer
    path = resolve_model(name)
    if name in TOY_SIZES and not Path(path).exists():
        raise SystemExit("toy tokenizer missing: run `python data/toy/prepare.py` first")
    tok = AutoTokenizer.from_pretrained(path)
    if tok.eos_token_id is None:
        raise SystemExit(f"{path}: tokenizer has no eos token")
    if tok.pad_token_id is None:  # Qwen base models pad with <|endoftext|> == eos; we never rely on pad for masking
        tok.pad_token = tok.eos_token
    return tok

def toy_config(vocab_size, eos_id, size="toy"):
    """The embedded default: a tiny Qwen2 (~1.7M params for 'toy' with the toy tokenizer; TOY_SIZES)."""
    from transformers import Qwen2Config
    return Qwen2Config(vocab_size=vocab_size, **TOY_SIZES[size], max_position_embeddings=512,
                       tie_word_embeddings=True, rope_theta=10000.0, rms_norm_eps=1e-6,
                       bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id)

def has_weights(path):
    p = Path(path)
    return p.is_dir() and (any(p.glob("*.safetensors")) or any(p.glob("*.bin")))

def load_model(name, dtype=torch.float32, device="cpu", seed=0, tokenizer=None):
    """Return (model, tokenizer, how) for
      'toy' / 'toy-l'       -> a fresh random tiny Qwen2 for the toy tokenizer (nanoGPT's from-scratch default)
      dir with weights      -> from_pretrained (our checkpoints, or a downloaded model)
      dir with config only  -> random init from config.json (e.g. ../shared/data/qwen2.5_configs/...)
      hub id                -> from_pretrained (needs internet).
    `tokenizer` overrides where the tokenizer comes from (a config-only dir has none)."""
    from transformers import AutoConfig, AutoModelForCausalLM, Qwen2ForCausalLM
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # its "Loading weights" bar would print inside our own progress bars
    tok = load_tokenizer(tokenizer or name)
    torch.manual_seed(seed)
    if name in TOY_SIZES:
        model, how = Qwen2ForCausalLM(toy_config(len(tok), tok.eos_token_id, name)), f"random init ({name} config)"
    elif Path(name).is_dir() and not has_weights(name):
        cfg = AutoConfig.from_pretrained(name)
        model, how = AutoModelForCausalLM.from_config(cfg), f"random init from {name}/config.json"
    else:
        model, how = AutoModelForCausalLM.from_pretrained(name, dtype=dtype), f"pretrained {name}"
    model.to(device=device, dtype=dtype)
    if getattr(model.config, "_attn_implementation", None) not in ("sdpa", "flash_attention_2"):
        model.config._attn_implementation = "sdpa"
    return model, tok, how

# -----------------------------------------------------------------------------
# tokenising prompt/response pairs; the masking convention

def encode_pair(tok, prompt, response, max_len=None):
    """prompt ids + response ids + eos. labels = IGNORE on prompt tokens, so loss/log-probs
    cover exactly the response and its EOS. Prompt and response are tokenised separately so
    the boundary is the same one the sampler sees. Returns (ids, labels) or None if too long."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    r = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    if max_len is not None and len(p) + len(r) > max_len:
        return None
    return p + r, [IGNORE] * len(p) + r


def encode_rejected(tok, prompt, response, upto):
    """encode_pair, but with `upto` (a character offset into `response`, from mine.py's rejected_upto)
    only the tokens that start before it carry a log-prob: the rest of the rejected text and its EOS
    are masked (-100). upto=None -> the plain encode_pair."""
    ids, labels = encode_pair(tok, prompt, response)
    if upto is None:
        return ids, labels
    offsets = tok(response, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    n_prompt = len(ids) - len(offsets) - 1
    for j, (start, _) in enumerate(offsets):
        if start >= upto:
            labels[n_prompt + j] = IGNORE
    labels[-1] = IGNORE  # no EOS: the solution did not end there
    return ids, labels

def collate(seqs, pad_id, device="cpu"):
    """Right-pad a list of (ids, labels) -> input_ids, attention_mask, labels, all (B, T)."""
    T = max(len(ids) for ids, _ in seqs)
    B = len(seqs)
    x = torch.full((B, T), pad_id, dtype=torch.long)
    y = torch.full((B, T), IGNORE, dtype=torch.long)
    m = torch.zeros((B, T), dtype=torch.long)
    for i, (ids, lab) in enumerate(seqs):
        x[i, :len(ids)] = torch.tensor(ids)
        y[i, :len(lab)] = torch.tensor(lab)
        m[i, :len(ids)] = 1
    return x.to(device), m.to(device), y.to(device)

def sequence_logps(model, input_ids, attention_mask, labels, chunk=1024):
    """Summed log-probs of the labelled tokens of each sequence.
    input_ids, attention_mask, labels: (B, T); labels[t] is the token at position t and is
    predicted from position t-1 (shift inside). Returns (logps (B,) float32, n_tokens (B,)).
    Only the N positions that carry a label go through lm_head (prompt and padding rows are
    skipped), `chunk` rows at a time under activation checkpointing, so full fp32 logits
    (B, T, V) never exist: with V = 151,936 they, not the transformer, dominate memory."""
    raw = model.module if hasattr(model, "module") else model
    out = (raw.model if hasattr(raw, "model") else raw.base_model)(input_ids=input_ids, attention_mask=attention_mask,
                                                                   use_cache=False)
    h = out.last_hidden_state[:, :-1]                       # (B, T-1, H): position t predicts token t+1
    tgt = labels[:, 1:]                                     # (B, T-1)
    mask = tgt != IGNORE
    rows = mask.nonzero(as_tuple=True)                      # (b index, t index) of the N labelled positions
    hs, ts = h[rows], tgt[rows]                             # (N, H), (N,)
    head = raw.lm_head

    def chunk_logp(hc, tc):
        logits = head(hc).float()                           # (c, V) only for this chunk
        return torch.gather(F.log_softmax(logits, dim=-1), 1, tc.unsqueeze(-1)).squeeze(-1)

    parts = []
    for s in range(0, hs.shape[0], chunk):
        hc, tc = hs[s:s + chunk], ts[s:s + chunk]
        if torch.is_grad_enabled() and hc.requires_grad:
            parts.append(torch.utils.checkpoint.checkpoint(chunk_logp, hc, tc, use_reentrant=False))
        else:
            parts.append(chunk_logp(hc, tc))
    lp = torch.cat(parts) if parts else hs.new_zeros(0, dtype=torch.float32)   # (N,)
    logps = torch.zeros(h.shape[0], dtype=torch.float32, device=h.device).index_add(0, rows[0], lp)
    return logps, mask.sum(-1)


def step_indices(step, n, batch, seed):
    """Example indices of optimizer step `step`: a fresh seeded permutation per epoch, so the
    order is a pure function of (seed, step) and --resume replays it exactly. The epoch's tail
    that does not fill a batch is carried into the next batch, never silently dropped."""
    start = step * batch
    out = []
    while len(out) < batch:
        epoch, off = divmod(start + len(out), n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        take = min(batch - len(out), n - off)
        out.extend(perm[off:off + take].tolist())
    return out


class SeqLogp(torch.nn.Module):
    """Wraps a causal LM so that forward(input_ids, attention_mask, labels) returns
    sequence_logps(...). DDP must wrap *this* module: then the whole computation, chunked
    head included, runs inside DDP's forward and its gradient hooks see every use."""
    def __init__(self, lm, chunk=1024):
        super().__init__()
        self.lm, self.chunk = lm, chunk

    def forward(self, input_ids, attention_mask, labels):
        return sequence_logps(self.lm, input_ids, attention_mask, labels, self.chunk)

# -----------------------------------------------------------------------------
# runtime: torchrun/DDP, precision, LR

def compute_init(device_arg="auto"):
    """Detect torchrun (RANK in env) and set up DDP. Returns ddp, rank, local_rank, world_size, device."""
    ddp = int(os.environ.get("RANK", -1)) != -1
    if device_arg == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "cpu"
    if ddp:
        import torch.distributed as dist
        rank, local_rank, world = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
        if device_arg.startswith("cuda"):
            torch.cuda.set_device(local_rank)
            device = f"cuda:{local_rank}"
            dist.init_process_group("nccl", device_id=torch.device(device))
        else:
            device = "cpu"
            dist.init_process_group("gloo")
        return True, rank, local_rank, world, device
    return False, 0, 0, 1, device_arg

def compute_cleanup(ddp):
    """Barrier, then tear the process group down: a rank that is done (e.g. while rank 0 still writes the last
    checkpoint) must not destroy the group under the others' feet."""
    if ddp:
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()

def grad_accum_steps(batch_size, micro_batch_size, world):
    """batch = micro x accumulation x world, asserted: a remainder would silently change the batch."""
    per_rank, rem = divmod(batch_size, world)
    assert rem == 0, f"--batch-size {batch_size} must be divisible by world size {world}"
    accum, rem = divmod(per_rank, micro_batch_size)
    assert rem == 0 and accum >= 1, (f"--batch-size/world ({per_rank}) must be a multiple of "
                                     f"--micro-batch-size ({micro_batch_size})")
    return accum

def enable_checkpointing(model):
    """Recompute each decoder layer in backward (non-reentrant). transformers 5.x renamed the call and warns on the old
    name (removed in v6); older releases, which requirements.txt still admits, only have the old one."""
    kw = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)

def training_forward(model, chunk, grad_checkpointing, compile, ddp, local_rank, device):
    """The module the training loops call: SeqLogp(model) -> optionally compiled -> DDP. DDP wraps
    SeqLogp so the chunked head runs inside DDP's forward; checkpoints are saved from `model` itself
    (no "module." / "_orig_mod." prefixes)."""
    if grad_checkpointing:
        enable_checkpointing(model)
    fwd = SeqLogp(model, chunk)
    if compile:
        fwd = torch.compile(fwd)
    if ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP
        fwd = DDP(fwd, device_ids=[local_rank] if str(device).startswith("cuda") else None)
    return fwd

def make_optimizer(model, lr, weight_decay, device):
    """AdamW with weight decay on matrices only (not norms/biases); fused kernels on GPU."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), fused=str(device).startswith("cuda"))

def autocast_ctx(device, dtype="bfloat16"):
    """bf16 autocast on GPU (weights stay fp32: AdamW master weights), plain fp32 on CPU."""
    if str(device).startswith("cuda") and dtype != "float32":
        return torch.autocast("cuda", dtype=getattr(torch, dtype))
    return nullcontext()

def get_lr(step, total_steps, lr, warmup, min_lr_frac=0.1):
    """Linear warmup for `warmup` steps, then cosine decay to min_lr_frac * lr at total_steps."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return lr * (min_lr_frac + (1 - min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))

class LogProgress:
    """progress() when stderr is not a terminal (run.sh tees every stage into a .log): one plain line every
    `interval` seconds and one at close, rounded figures, never a \r redraw. tqdm's interface, the part we use."""
    def __init__(self, total=None, desc=None, initial=0, interval=30.0):
        self.total, self.desc, self.n, self.n0, self.interval = total, desc, initial, initial, interval
        self.t0 = self.last = time.time()
        self.postfix, self.closed = {}, False

    def update(self, n=1):
        self.n += n
        if time.time() - self.last >= self.interval:
            self.line()

    def set_postfix(self, refresh=False, **kw):
        self.postfix = kw  # shown with the next line, like tqdm's refresh=False

    def line(self):
        self.last = now = time.time()
        dt = now - self.t0
        done = f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else f"{self.n}"
        parts = [f"{self.desc or 'progress'} {done}", f"{dt:.0f} s", f"{(self.n - self.n0) / max(dt, 1e-9):.3g}/s"]
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        print(" | ".join(parts), file=sys.stderr, flush=True)

    def close(self):
        if not self.closed:
            self.closed = True
            self.line()

def progress(total=None, desc=None, disable=False, initial=0, interval=30.0):
    """A tqdm bar on a terminal; elsewhere (a log file, a pipe) LogProgress: one plain line per `interval` seconds.
    disable=True (ranks other than 0) gives a bar that prints nothing."""
    from tqdm import tqdm
    if disable or sys.stderr.isatty():
        return tqdm(total=total, desc=desc, disable=disable, initial=initial, dynamic_ncols=True, mininterval=0.5)
    return LogProgress(total, desc, initial, interval)

def print0(*a, **k):
    if int(os.environ.get("RANK", 0)) == 0:
        print(*a, **k, flush=True)
