"""
MATH (Hendrycks) and MATH-500 -> the project's JSONL schema {"id", "question", "solution",
"answer"} (+ "level", "subject"). The final answer is the last \\boxed{...} of the solution
(MATH-500 also ships it as "answer"); the solution gets a MetaMathQA-style last line
`The answer is: <answer>` so every dataset ends the same way.

    python data/math/prepare.py                         # from ../shared/data/math (offline)
    python data/math/prepare.py --src-dir path/with/MATH_train.jsonl

Writes data/math/train.jsonl (MATH train, 7,500), test.jsonl (MATH test, 5,000) and
math500.jsonl (the 500-problem PRM800K test subset) for whichever source files exist.
"""
import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from records import DataError, read_jsonl, write_jsonl  # noqa: E402
from verifier import extract_answer  # noqa: E402  (one answer extractor everywhere)

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--src-dir", default=str(HERE.parents[2] / "shared" / "data" / "math"), help="folder with MATH_train.jsonl, MATH_test.jsonl, math500_test.jsonl")
parser.add_argument("--out-dir", default=str(HERE), help="where the converted files go")

FILES = {"train": "MATH_train.jsonl", "test": "MATH_test.jsonl", "math500": "math500_test.jsonl"}


def convert(rec, idx, split):
    """One MATH record -> schema record, or None when the solution has no (or an empty) \\boxed{}
    answer: a few such records exist upstream (e.g. MATH train line 5530), and they are skipped
    with their line numbers reported rather than failing the whole file."""
    answer = rec.get("answer") or extract_answer(rec["solution"])
    if not answer or not answer.strip():
        return None
    # one line: the sampler stops at the newline that ends 'The answer is: ...', so an answer broken over lines
    # (MATH test has one: '90\\text{ square\nunits}') would be cut there; in LaTeX a line break is a space
    answer = re.sub(r"\s*\n\s*", " ", answer.strip())
    return {"id": f"math-{split}-{idx:05d}", "question": rec["problem"].strip(),
            "solution": rec["solution"].strip() + f"\nThe answer is: {answer}", "answer": answer,
            "level": rec.get("level"), "subject": rec.get("subject") or rec.get("type"),
            "source_id": rec.get("unique_id")}


if __name__ == "__main__":
    args = parser.parse_args()
    found = 0
    for split, name in FILES.items():
        src = Path(args.src_dir) / name
        if not src.exists():
            continue
        found += 1
        try:
            recs = read_jsonl(src, required=("problem", "solution"), types={"problem": str, "solution": str})
        except DataError as e:
            raise SystemExit(f"error: {e}")
        rows = [convert(r, i, split) for i, r in enumerate(recs)]
        bad = [r["_line"] for r, row in zip(recs, rows) if row is None]
        if bad:
            print(f"note: {src}: skipped {len(bad)} records whose solution has no \\boxed{{}} answer (lines {bad[:10]})")
        rows = [r for r in rows if r is not None]
        write_jsonl(Path(args.out_dir) / f"{split}.jsonl", rows)
        print(f"wrote {len(rows):5d} problems to {Path(args.out_dir) / (split + '.jsonl')}")
    if not found:
        raise SystemExit(f"error: none of {list(FILES.values())} in {args.src_dir}")
