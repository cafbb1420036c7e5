"""
A toy-world diagnostic of an SFT model the accuracy cannot see: does it copy the question's item noun?
Answers are graded on the number only, yet "Ivy buys 2 * 7 = 14 coins." for a question about books is a model that
has not learned to copy. Such a model's samples differ from each other first at that noun, so DPO pairs mined from
them contrast two nouns before they reach the error. Reads a finished run.sh run dir (no model forward, no torch):

    python data/toy/nouns.py runs/toy-s0                     # -> prints a Markdown table
    python data/toy/nouns.py runs/toy-s{0,1,2} --out runs/nouns.md

Per run: the % of each arm's greedy test (--split) answers that name an item other than the question's (eval_test/
results.json), and where the pairs of diag_pairs*.json (diagnose.py) first differ: at an item noun, another
word (a wrong path: 'After' for 'With', ' -' for ' +'; or a paraphrase) or a digit.
"""
import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare import ITEMS  # noqa: E402  (the toy world's item nouns; importing prepare.py runs nothing)
from records import DataError, read_jsonl  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("runs", nargs="+", help="run dirs of run.sh (eval_test/results.json, data/test.jsonl, diag_pairs*.json)")
parser.add_argument("--split", default="test", choices=["val", "test"], help="whose answers: <run>/eval_<split>/results.json")
parser.add_argument("--data", default=None, help="JSONL with the questions (default: <run>/data/<split>.jsonl)")
parser.add_argument("--out", default=None, help="also write the Markdown table here")


def wrong_item(question, answer):
    """True if the answer names an item of the toy world other than the one the question is about."""
    asked = [it for it in ITEMS if re.search(rf"\b{it}\b", question)]
    return bool(asked) and any(w in ITEMS and w != asked[0] for w in re.findall(r"[a-z]+", answer))


def token_kind(tok):
    t = (tok or "").strip()
    if any(ch.isdigit() for ch in t):
        return "digit"
    return "noun" if t and any(it.startswith(t) for it in ITEMS) else "word"


def run_rows(run, data=None, split="test"):
    run = Path(run)
    data = Path(data) if data else run / "data" / f"{split}.jsonl"
    q = {r["id"]: r["question"] for r in read_jsonl(data, required=("id", "question"))}
    res_path = run / f"eval_{split}" / "results.json"
    res = json.loads(res_path.read_text())
    arms = {}
    for m, preds in res["predictions"].items():
        missing = [p["problem_id"] for p in preds if p["problem_id"] not in q]
        if missing:
            raise DataError(f"{res_path}: problem '{missing[0]}' of arm '{m}' is not in {data}")
        arms[m] = sum(wrong_item(q[p["problem_id"]], p["completion"]) for p in preds) / max(len(preds), 1)
    pairs = {}
    for f in sorted(run.glob("diag_pairs*.json")):
        rows = [r for r in json.loads(f.read_text())["rows"] if "rejected_token" in r]
        c = Counter(token_kind(r["rejected_token"]) for r in rows)
        pairs[f.stem] = {k: c[k] / max(len(rows), 1) for k in ("noun", "word", "digit")}
    return arms, pairs


def main(argv=None):
    args = parser.parse_args(argv)
    L = [f"| run | greedy {args.split} answers naming a wrong item, per arm | pairs: first difference at a noun / other word / digit |",
         "|---|---|---|"]
    for run in args.runs:
        try:
            arms, pairs = run_rows(run, args.data, args.split)
        except (OSError, KeyError, json.JSONDecodeError) as e:
            raise SystemExit(f"error: {run}: {type(e).__name__}: {e}")
        except DataError as e:
            raise SystemExit(f"error: {e}")
        L.append(f"| {run} | " + ", ".join(f"{m} {100 * v:.1f}%" for m, v in arms.items()) + " | "
                 + "; ".join(f"{k}: {100 * v['noun']:.0f} / {100 * v['word']:.0f} / {100 * v['digit']:.0f}%"
                             for k, v in pairs.items()) + " |")
    text = "\n".join(L) + "\n"
    print(text, end="")
    if args.out:
        tmp = Path(args.out + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    return text


if __name__ == "__main__":
    main()
