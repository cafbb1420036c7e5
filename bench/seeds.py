"""
Mean +- spread over seeds of the toy pipeline's evaluation (run.sh with SEED=0,1,2).

    python bench/seeds.py runs/toy-s0 runs/toy-s1 runs/toy-s2            # test split (eval/)
    python bench/seeds.py runs/toy-s0 runs/toy-s1 runs/toy-s2 --split eval_val

Prints a Markdown table: per model, accuracy, accuracy on the near-miss slice (the slice is
defined per run: problems where any of that run's models gave a near miss) and the near-miss
rate, as mean +- sample standard deviation, and the per-seed values.
"""
import argparse
import json
import statistics
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("runs", nargs="+", help="run folders written by run.sh")
parser.add_argument("--split", default="eval", help="eval (test split) or eval_val (validation split)")
args = parser.parse_args()

res = [json.loads((Path(r) / args.split / "results.json").read_text()) for r in args.runs]
models = list(res[0]["metrics"])
cols = [("acc", "accuracy"), ("slice_acc", "near-miss slice acc"), ("near_miss", "near-miss rate")]


def fmt(vals):
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{100 * statistics.mean(vals):.1f} ± {100 * sd:.1f}"


print(f"{len(res)} seeds, {res[0]['n_problems']} problems of {res[0]['data']} (percent, mean ± std)\n")
print("| model | " + " | ".join(c[1] for c in cols) + " | accuracy per seed |")
print("|---|" + "---|" * (len(cols) + 1))
for m in models:
    row = [fmt([r["metrics"][m][k] for r in res]) for k, _ in cols]
    per = " / ".join(f"{100 * r['metrics'][m]['acc']:.1f}" for r in res)
    print(f"| {m} | " + " | ".join(row) + f" | {per} |")
print("\nslice sizes per seed: " + ", ".join(str(r["metrics"][models[0]]["slice_n"]) for r in res))
