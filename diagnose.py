r"""
Pair diagnostics of a policy (model forwards, CPU-friendly): where do rejected answers leave the chosen ones, is
that rejected token the policy's own greedy choice, and does the policy rank chosen over rejected?

    python diagnose.py --model runs/toy-s0/sft --pairs runs/toy-s0/pairs.jsonl --out runs/toy-s0/diag_pairs_sft.json
    python diagnose.py --model runs/toy-s0/dpo --ref runs/toy-s0/sft --pairs runs/toy-s0/pairs_val.jsonl \
        --out runs/toy-s0/diag_dpo.json --threads 1                  # held-out pair accuracy after DPO
    python diagnose.py --model runs/toy-s0/dpo runs/toy-s0/wdpo --ref runs/toy-s0/sft --pairs held.jsonl \
        --out diag_dpo.json diag_wdpo.json                           # several models, one process (one --out each)
    python diagnose.py --model runs/toy-s0/sft --pairs pairs.jsonl pairs_greedy.jsonl \
        --out diag_pairs.json diag_pairs_greedy.json                 # several pair files, the model loaded once

Per pair (mine.py's JSONL: prompt, chosen, rejected[, rejected_upto]):
  (a) the first token where prompt+rejected differs from prompt+chosen (common.encode_pair, the model's tokenizer)
      and whether the rejected token there is the model's (and the ref's) argmax at that shared prefix: the
      fraction of pairs whose negative is the policy's own greedy error, and the fraction where that rejected
      token holds a digit (else the pair first differs at a word: a wrong path, or no error, e.g. a paraphrase);
  (b) summed log-probs of chosen (encode_pair) and rejected (common.encode_rejected: only tokens before
      rejected_upto count, as in training) under model and ref. Pair accuracy two ways: logp_c > logp_r under the
      model, and implicit reward margin (pi_c - ref_c) - (pi_r - ref_r) > 0 (ties count 1/2: model = ref gives 0.5);
  (c) at every digit of the chosen (correct) response, the model's teacher-forced greedy digit: the fraction of
      digit positions (and of result digits, right after '=') whose argmax is not the true digit, and the most
      frequent signed shifts (argmax - true, e.g. "+2": a global "result digit + 2" direction after DPO).
Writes --out (JSON: per-pair rows + summary fractions); report.py puts every <run>/diag_*.json into summary.md.
"""
import argparse
import json
import math
from collections import Counter
from pathlib import Path

import torch

from checkpoint import read_meta
from common import (IGNORE, DataError, collate, encode_pair, encode_rejected, load_model, progress, read_jsonl, sequence_logps,
                    write_json)

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", required=True, nargs="+", help="policy checkpoint dir(s) (HF format); several are "
                    "diagnosed one after the other on the same pairs, each with its own --out")
parser.add_argument("--ref", default=None, help="reference checkpoint (default: the model's hardneg_meta.json "
                    "'ref', else the model itself)")
parser.add_argument("--pairs", required=True, nargs="+", help="pair JSONL(s) (mine.py): prompt, chosen, rejected[, "
                    "rejected_upto]; several: each --model is diagnosed on each file (the model loads once)")
parser.add_argument("--limit", type=int, default=-1, help="first N pairs only (-1 = all)")
parser.add_argument("--out", default=None, nargs="+", help="output JSON, one per (--model, --pairs) combination, "
                    "models outer, pair files inner (default: <pairs dir>/diag_<model dir name>.json, with several "
                    "--pairs diag_<model dir name>_<pairs file stem>.json)")
parser.add_argument("--batch-size", type=int, default=32, help="pairs per forward")
parser.add_argument("--tokenizer", default=None, help="tokenizer path if the model dir has none")
parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
parser.add_argument("--no-digits", action="store_true", help="skip the greedy-digit check on the chosen responses")
parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")


def divergence(c_ids, r_ids, n_prompt):
    """First index >= n_prompt where two token lists (prompt + response + eos) differ, or None if identical.
    A list that is a prefix of the other diverges where it ends (its EOS is compared with the other's token)."""
    for j in range(n_prompt, min(len(c_ids), len(r_ids))):
        if c_ids[j] != r_ids[j]:
            return j
    return None if len(c_ids) == len(r_ids) else min(len(c_ids), len(r_ids))


@torch.no_grad()
def next_token_logprobs(model, ids_list, where, device="cpu"):
    """log-softmax of the next-token distribution after prefix ids_list[b][:pos] for each (b, pos) in `where`
    (pos >= 1). ids_list: B token lists, one forward for all. Returns (len(where), V) float32; only those rows go
    through lm_head, so (B, T, V) logits never exist."""
    x, m, _ = collate([(ids, ids) for ids in ids_list], 0, device)              # (B, T)
    raw = model.module if hasattr(model, "module") else model
    body = raw.model if hasattr(raw, "model") else raw.base_model                 # the transformer without lm_head
    h = body(input_ids=x, attention_mask=m, use_cache=False).last_hidden_state      # (B, T, H)
    b, t = (torch.tensor(v, device=h.device) for v in zip(*where))
    return torch.log_softmax(raw.lm_head(h[b, t - 1]).float(), -1).cpu()          # position t-1 predicts token t


@torch.no_grad()
def digit_shifts(model, tok, items, device="cpu"):
    """Teacher-forced greedy choice at every digit of the chosen (correct) responses of `items` (load()'s list):
    for each digit token, the model's argmax given the true prefix. Returns, per item, a list of
    (true digit, argmax digit or None when the argmax is not a digit, is a result digit = in a number after '=')."""
    digit_of = {tok.convert_tokens_to_ids(str(d)): d for d in range(10)}
    where, meta = [], []
    for b, (r, c, _) in enumerate(items):
        n_p = n_prompt_tokens(c[1])
        offs = tok(r["chosen"], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        for k, (st, _) in enumerate(offs):
            if c[0][n_p + k] in digit_of:
                where.append((b, n_p + k))
                meta.append((b, digit_of[c[0][n_p + k]], r["chosen"][:st].rstrip("0123456789").rstrip().endswith("=")))
    out = [[] for _ in items]
    if where:
        top = next_token_logprobs(model, [c[0] for _, c, _ in items], where, device).argmax(-1).tolist()
        for (b, d, res), t in zip(meta, top):
            out[b].append((d, digit_of.get(t), res))
    return out


@torch.no_grad()
def pair_logps(model, encoded, device="cpu"):
    """(N, 2) summed log-probs [chosen, rejected] with common.sequence_logps; encoded: list of (c, r) (ids, labels)."""
    c, r = zip(*encoded)
    x, m, y = collate(list(c) + list(r), 0, device)
    lp, _ = sequence_logps(model, x, m, y)
    return torch.stack(lp.float().cpu().split(len(encoded)), 1)


def load(path, tok, limit):
    """Read + tokenise pairs -> [(record, chosen (ids, labels), rejected (ids, labels))]; bad records -> DataError."""
    recs = read_jsonl(path, required=("prompt", "chosen", "rejected"),
                      types={"prompt": str, "chosen": str, "rejected": str})
    if limit > 0:
        recs = recs[:limit]
    if not recs:
        raise DataError(f"{path}: no pairs")
    out = []
    for r in recs:
        upto = r.get("rejected_upto")
        if upto is not None and not (isinstance(upto, int) and 0 < upto <= len(r["rejected"])):
            raise DataError(f"{path}:{r['_line']}: field 'rejected_upto' must be an int in [1, len(rejected)], got {upto!r}")
        c = encode_pair(tok, r["prompt"], r["chosen"])
        rj = encode_rejected(tok, r["prompt"], r["rejected"], upto)
        out.append((r, c, rj))
    return out


def n_prompt_tokens(labels):
    """Leading IGNORE labels = prompt tokens (encode_pair masks the prompt only)."""
    return next(i for i, t in enumerate(labels) if t != IGNORE)


def diagnose(model, ref, tok, items, batch_size, device="cpu", with_digits=True):
    """Per-pair rows (see module docstring). items: load()'s list. ref=None: the model is its own reference."""
    rows, bar = [], progress(total=len(items), desc="diagnose")
    for s in range(0, len(items), batch_size):
        chunk = items[s:s + batch_size]
        bar.update(len(chunk))
        enc = [(c, rj) for _, c, rj in chunk]
        lp = pair_logps(model, enc, device)
        rlp = pair_logps(ref, enc, device) if ref is not None else lp
        div = [divergence(c[0], rj[0], n_prompt_tokens(c[1])) for _, c, rj in chunk]
        digits = digit_shifts(model, tok, chunk, device) if with_digits else [None] * len(chunk)
        have = [i for i, j in enumerate(div) if j is not None]
        top, rtop = {}, {}
        if have:
            ids = [chunk[i][2][0] for i in have]
            pos = [div[i] for i in have]
            for net, dst in ((model, top), (ref, rtop)):
                if net is None:
                    continue
                logp = next_token_logprobs(net, ids, list(enumerate(pos)), device)   # (b, V)
                for k, i in enumerate(have):
                    dst[i] = logp[k]
        for i, (r, c, rj) in enumerate(chunk):
            j = div[i]
            row = {"id": r.get("id"), "problem_id": r.get("problem_id"), "line": r["_line"],
                   "weight": r.get("weight"), "hardness": r.get("hardness"),
                   "logp_c": float(lp[i, 0]), "logp_r": float(lp[i, 1]), "ref_c": float(rlp[i, 0]),
                   "ref_r": float(rlp[i, 1])}
            row["margin"] = (row["logp_c"] - row["ref_c"]) - (row["logp_r"] - row["ref_r"])
            if digits[i] is not None:
                row["digits"] = digits[i]
            if j is not None:
                ct = c[0][j] if j < len(c[0]) else None
                rt = rj[0][j] if j < len(rj[0]) else None
                lpj = top[i]
                am = int(lpj.argmax())
                row.update({"diverge_at": j - n_prompt_tokens(c[1]), "prefix_tail": tok.decode(rj[0][max(0, j - 8):j]),
                            "rejected_token": tok.decode([rt]) if rt is not None else None,
                            "chosen_token": tok.decode([ct]) if ct is not None else None,
                            "top_token": tok.decode([am]), "rejected_is_top": rt == am, "chosen_is_top": ct == am,
                            "p_rejected": math.exp(float(lpj[rt])) if rt is not None else None,
                            "p_chosen": math.exp(float(lpj[ct])) if ct is not None else None,
                            "in_scope": j < len(rj[1]) and rj[1][j] != IGNORE})
                if i in rtop:
                    row["ref_rejected_is_top"] = rt == int(rtop[i].argmax())
            rows.append(row)
    bar.close()
    return rows


def summarize(rows):
    """Fractions over pairs. logp_acc: logp_c > logp_r; reward_acc: margin > 0 (ties 1/2); *_is_top over diverged."""
    n = len(rows)
    dv = [r for r in rows if "rejected_is_top" in r]
    frac = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    out = {"n": n, "diverged": len(dv) / n if n else None,
           "logp_acc": frac([float(r["logp_c"] > r["logp_r"]) for r in rows]),
           "reward_acc": frac([1.0 if r["margin"] > 0 else 0.5 if r["margin"] == 0 else 0.0 for r in rows]),
           "mean_margin": frac([r["margin"] for r in rows]),
           "mean_chosen_shift": frac([r["logp_c"] - r["ref_c"] for r in rows]),
           "mean_rejected_shift": frac([r["logp_r"] - r["ref_r"] for r in rows]),
           "rejected_is_top": frac([float(r["rejected_is_top"]) for r in dv]),
           "chosen_is_top": frac([float(r["chosen_is_top"]) for r in dv]),
           "diverge_in_scope": frac([float(r["in_scope"]) for r in dv]),
           # a number is where an arithmetic error shows; a word is a wrong path (an operator, a skipped step) or no
           # error at all (a paraphrase; on the toy, an item noun an SFT model that cannot copy it gets wrong)
           "diverge_at_digit": frac([float(any(ch.isdigit() for ch in r["rejected_token"] or "")) for r in dv])}
    dg = [d for r in rows for d in r.get("digits", [])]
    if dg:  # the "result digit + 2 becomes the top choice": signed shifts of wrong greedy digits
        for name, sel in (("digit", dg), ("result_digit", [d for d in dg if d[2]])):
            wrong = Counter(f"{a - t:+d}" for t, a, _ in sel if a is not None and a != t)
            out[f"{name}_positions"] = len(sel)
            out[f"{name}_top_wrong"] = frac([float(a != t) for t, a, _ in sel])
            out[f"{name}_top_shift"] = {k: v / len(sel) for k, v in wrong.most_common(5)}
    ws = [r.get("weight") for r in dv]
    if dv and all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in ws) and sum(ws) > 0:
        # the same share under the pair weights: where the verifier-weighted pair term puts its weight
        out["rejected_is_top_weighted"] = sum(w * float(r["rejected_is_top"]) for w, r in zip(ws, dv)) / sum(ws)
    if dv and "ref_rejected_is_top" in dv[0]:
        out["ref_rejected_is_top"] = frac([float(r["ref_rejected_is_top"]) for r in dv])
    return out


def main(argv=None):
    args = parser.parse_args(argv)
    n_out = len(args.model) * len(args.pairs)
    if args.out is not None and len(args.out) != n_out:
        raise SystemExit(f"error: --out names {len(args.out)} file(s) for {len(args.model)} --model(s) x "
                         f"{len(args.pairs)} --pairs file(s); give one each ({n_out})")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    for p in args.pairs:
        if not Path(p).exists():
            raise SystemExit(f"error: {p}: file not found")
    refs = {}   # ref path -> loaded model: one load when several models share a reference (the usual case)
    summs = []
    for k, name in enumerate(args.model):
        if args.out:
            outs = [Path(o) for o in args.out[k * len(args.pairs):(k + 1) * len(args.pairs)]]
        else:
            tail = [""] if len(args.pairs) == 1 else [f"_{Path(p).stem}" for p in args.pairs]
            outs = [Path(p).parent / f"diag_{Path(name).name}{t}.json" for p, t in zip(args.pairs, tail)]
        summs += diagnose_one(args, name, outs, device, refs)
    return summs[0] if len(summs) == 1 else summs


def diagnose_one(args, name, outs, device, refs):
    """Diagnose one policy checkpoint on each of args.pairs, writing the JSON of pairs file i to outs[i] (every file
    is read and checked before anything is written); returns the summaries."""
    meta = read_meta(name)
    ref_name = args.ref or meta.get("ref") or name
    model, tok, how = load_model(name, device=device, tokenizer=args.tokenizer)
    try:
        item_sets = [load(p, tok, args.limit) for p in args.pairs]
    except DataError as e:
        raise SystemExit(f"error: {e}") from None
    same = Path(ref_name).resolve() == Path(name).resolve()
    key = str(Path(ref_name).resolve())
    if not same and key not in refs:
        refs[key] = load_model(ref_name, device=device, tokenizer=args.tokenizer)[0].eval()
    ref = None if same else refs[key]
    model.eval()
    summs = []
    for pairs, items, out in zip(args.pairs, item_sets, outs):
        trained_on = bool(meta.get("pairs")) and Path(meta["pairs"]).resolve() == Path(pairs).resolve()
        print(f"model {name} ({how}) | ref {ref_name}{' (= model)' if same else ''} | {len(items)} pairs from "
              f"{pairs}" + (" | NOTE: the model was trained on these pairs (not held-out)" if trained_on else ""))
        rows = diagnose(model, ref, tok, items, args.batch_size, device, not args.no_digits)
        summ = summarize(rows)
        write_json(out, {"model": name, "ref": ref_name, "pairs": pairs, "trained_on_pairs": trained_on,
                         "summary": summ, "rows": rows})
        print(json.dumps(summ, indent=1))
        print(f"wrote {out}")
        summs.append(summ)
    return summs


if __name__ == "__main__":
    main()
