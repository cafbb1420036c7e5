"""
MetaMathQA (meta-math/MetaMathQA, 395k augmented GSM8K/MATH problems) -> the project's JSONL
schema {"id", "question", "solution", "answer"} (+ "type"). Its responses already end with
`The answer is: X`, the format the whole project uses.

    python data/metamathqa/prepare.py --src MetaMathQA-395K.json     # a local copy (JSON list or JSONL)
    python data/metamathqa/prepare.py --download                     # from the Hugging Face hub (internet)
    python data/metamathqa/prepare.py --download --types GSM_Rephrased,GSM_SV --limit 100000

Writes data/metamathqa/train.jsonl. Not available offline here: use data/gsm8k or data/math
as the SFT stand-in (see README).
"""
import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from records import DataError, read_jsonl, write_jsonl  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--src", default=None, help="local MetaMathQA file: JSON list or JSONL with query/response")
parser.add_argument("--download", action="store_true", help="download MetaMathQA-395K.json from the hub")
parser.add_argument("--out", default=str(HERE / "train.jsonl"), help="output JSONL")
parser.add_argument("--types", default="", help="comma-separated MetaMathQA 'type' values to keep ('' = all)")
parser.add_argument("--limit", type=int, default=-1, help="keep the first N records after filtering (-1 = all)")


def load(path):
    path = Path(path)
    if path.suffix == ".json":
        try:
            recs = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(recs, list):
            raise DataError(f"{path}: expected a JSON list of records")
        for i, r in enumerate(recs):
            for k in ("query", "response"):
                if not isinstance(r, dict) or not isinstance(r.get(k), str):
                    raise DataError(f"{path}: record {i}: missing field '{k}'")
        return recs
    return read_jsonl(path, required=("query", "response"), types={"query": str, "response": str})


def convert(rec, idx, path):
    body, sep, final = rec["response"].rpartition("The answer is:")
    if not sep:
        raise DataError(f"{path}: record {rec.get('_line', idx)}: field 'response' has no 'The answer is:' line")
    answer = final.strip()
    return {"id": f"metamath-{idx:06d}", "question": rec["query"].strip(),
            "solution": body.strip() + f"\nThe answer is: {answer}", "answer": answer, "type": rec.get("type")}


if __name__ == "__main__":
    args = parser.parse_args()
    if args.download:
        from huggingface_hub import hf_hub_download
        src = hf_hub_download("meta-math/MetaMathQA", "MetaMathQA-395K.json", repo_type="dataset")
    elif args.src:
        src = args.src
    else:
        raise SystemExit("error: pass --src FILE or --download")
    try:
        recs = load(src)
        keep = set(t for t in args.types.split(",") if t)
        recs = [r for r in recs if not keep or r.get("type") in keep]
        recs = recs[:args.limit] if args.limit > 0 else recs
        rows = [convert(r, i, src) for i, r in enumerate(recs)]
    except DataError as e:
        raise SystemExit(f"error: {e}")
    write_jsonl(args.out, rows)
    print(f"wrote {len(rows)} problems to {args.out}")
