"""
GSM8K -> the project's JSONL schema {"id", "question", "solution", "answer"}, solutions in
MetaMathQA style: the `<<48/2=24>>` calculator notes are dropped (unless --keep-calc) and the
final line `#### 72` becomes `The answer is: 72`.

    python data/gsm8k/prepare.py                                   # from ../shared/data/gsm8k (offline)
    python data/gsm8k/prepare.py --src-dir path/to/grade_school_math/data
    python data/gsm8k/prepare.py --download                        # fetch the official JSONL (internet)

Writes data/gsm8k/train.jsonl and data/gsm8k/test.jsonl (ids gsm8k-train-000000, ...).
"""
import argparse
import json
import re
import sys
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from records import DataError, read_jsonl, write_jsonl  # noqa: E402

URL = "https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data/{split}.jsonl"

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--src-dir", default=str(HERE.parents[2] / "shared" / "data" / "gsm8k"), help="folder with train.jsonl/test.jsonl (question, answer)")
parser.add_argument("--download", action="store_true", help="download the official files instead of reading --src-dir")
parser.add_argument("--out-dir", default=str(HERE), help="where train.jsonl/test.jsonl go")
parser.add_argument("--keep-calc", action="store_true", help="keep the <<a*b=c>> calculator notes in solutions")
parser.add_argument("--val-size", type=int, default=0, help="hold out the last N train problems as val.jsonl (for choices)")


def convert(rec, path, idx, split, keep_calc=False):
    """One GSM8K record -> schema record. Raises DataError naming file:line if the answer has no '####'."""
    body, sep, final = rec["answer"].rpartition("####")
    if not sep:
        raise DataError(f"{path}:{rec.get('_line', idx + 1)}: field 'answer' has no '#### N' final line")
    answer = final.strip().replace(",", "")
    if not keep_calc:
        body = re.sub(r"<<[^<>]*>>", "", body)
    return {"id": f"gsm8k-{split}-{idx:06d}", "question": rec["question"].strip(),
            "solution": body.strip() + f"\nThe answer is: {answer}", "answer": answer}


if __name__ == "__main__":
    args = parser.parse_args()
    out = Path(args.out_dir)
    for split in ["train", "test"]:
        if args.download:
            src = out / f"raw_{split}.jsonl"
            print(f"downloading {URL.format(split=split)}")
            urllib.request.urlretrieve(URL.format(split=split), src)
        else:
            src = Path(args.src_dir) / f"{split}.jsonl"
        try:
            recs = read_jsonl(src, required=("question", "answer"), types={"question": str, "answer": str})
            rows = [convert(r, src, i, split, args.keep_calc) for i, r in enumerate(recs)]
        except DataError as e:
            raise SystemExit(f"error: {e}")
        if split == "train" and args.val_size > 0:
            write_jsonl(out / "val.jsonl", rows[-args.val_size:])
            rows = rows[:-args.val_size]
        write_jsonl(out / f"{split}.jsonl", rows)
        print(f"wrote {len(rows):5d} problems to {out / (split + '.jsonl')}")
