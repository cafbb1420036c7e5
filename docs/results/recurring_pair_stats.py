"""Statistics of the recurring-negative pair sets (mine.py --min-failure-rate 0.5): size, weight CV, blind-spot share,
rejected kinds, overlap with the greedy pairs and with the random-negative set. Usage:
    python docs/results/recurring_pair_stats.py RUN_DIR...     (each holding pairs.jsonl, pairs_randneg.jsonl, pairs_greedy.jsonl)
A blind-spot problem is one whose question mentions 'loose' (the teacher's biased template, data/toy/prepare.py)."""
import json
import sys
from collections import Counter


def load(path):
    try:
        return [json.loads(line) for line in open(path)]
    except FileNotFoundError:
        return None


for run in sys.argv[1:]:
    pairs = load(f"{run}/pairs.jsonl")
    meta = json.load(open(f"{run}/pairs.jsonl.meta.json"))["summary"]
    rand, greedy = load(f"{run}/pairs_randneg.jsonl"), load(f"{run}/pairs_greedy.jsonl")
    blind = [p for p in pairs if "loose" in p["prompt"]]
    w = sum(p["weight"] for p in pairs)
    line = (f"{run}: {len(pairs)} pairs ({meta['problems_covered']} problems with pairs incl. held out), weight CV "
            f"{meta['weight_cv']}, blind spot {100 * len(blind) / len(pairs):.1f}% of pairs / "
            f"{100 * sum(p['weight'] for p in blind) / w:.1f}% of weight, rejected kinds {dict(Counter(meta['rejected_kinds']))}")
    if greedy is not None:
        g = {p["problem_id"]: p["rejected"] for p in greedy}
        shared = [p for p in pairs if p["problem_id"] in g]
        same = sum(g[p["problem_id"]] == p["rejected"] for p in shared)
        line += f"; greedy pairs {len(greedy)}, problems shared {len(shared)}, identical rejected text {same}"
    if rand is not None:
        r = {p["problem_id"]: p["rejected"] for p in rand}
        same = sum(r.get(p["problem_id"]) == p["rejected"] for p in pairs)
        line += f"; random-negative set: {len(rand)} pairs, identical rejected text {same} of {len(pairs)}"
    print(line)
