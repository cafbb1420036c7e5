"""Pair statistics behind README "Weights that find the model's own errors" (toy world only: a 'blind-spot pair' is
a 'packs ... loose' problem whose rejected answer skips the loose items). Usage:
    python docs/results/failure_weights_pair_stats.py RUN_DIR...   (each holds scored.jsonl, pairs.jsonl, pairs_greedy.jsonl and
                                                                     fr/pairs_q0.jsonl = the same pairs, hardness² weights)
Prints per run: pairs, blind-spot share, identical rejected texts with the greedy pair set, mean weight of blind-spot vs
other pairs and the blind-spot share of the total weight under uniform / hardness² / the run's pairs.jsonl weights,
and pairs.jsonl's weight coefficient of variation."""
import json
import sys
from pathlib import Path


def load(p):
    return [json.loads(line) for line in open(p)]


for run in map(Path, sys.argv[1:]):
    pairs, greedy = load(run / "pairs.jsonl"), {p["problem_id"]: p for p in load(run / "pairs_greedy.jsonl")}
    q0 = {p["id"]: p["weight"] for p in load(run / "fr" / "pairs_q0.jsonl")}
    blind = [("loose" in p["prompt"] and "loose" not in p["rejected"]) for p in pairs]
    shared = [p for p in pairs if p["problem_id"] in greedy]
    same = sum(p["rejected"] == greedy[p["problem_id"]]["rejected"] for p in shared)
    print(f"{run}: {len(pairs)} pairs, {sum(blind)} blind-spot ({100 * sum(blind) / len(pairs):.1f}%); "
          f"{same} of {len(shared)} problems shared with the greedy pairs have the identical rejected text")
    for name, w in (("uniform", [1.0] * len(pairs)), ("hardness^2", [q0[p["id"]] for p in pairs]),
                    ("pairs.jsonl", [p["weight"] for p in pairs])):
        wb = [x for x, b in zip(w, blind) if b]
        wo = [x for x, b in zip(w, blind) if not b]
        print(f"  {name:12s} mean weight blind {sum(wb) / len(wb):.2f} other {sum(wo) / len(wo):.2f} | "
              f"blind share of the weight {100 * sum(wb) / sum(w):.1f}%")
    scored = [json.loads(line) for line in open(run / "scored.jsonl")]
    wrong = {}
    for r in scored:
        wrong.setdefault(r["problem_id"], []).append(not r["profile"]["correct"])
    for kind, sel in (("blind-spot", True), ("other", False)):
        n = [sum(wrong[p["problem_id"]]) for p, b in zip(pairs, blind) if b == sel]
        print(f"  {kind} pairs: problem's samples wrong (any answer) 1/2/3/4 of 4: "
              + " / ".join(str(n.count(k)) for k in (1, 2, 3, 4)))
    ws = [p["weight"] for p in pairs]
    m = sum(ws) / len(ws)
    print(f"  pairs.jsonl weight CV {(sum((x - m) ** 2 for x in ws) / len(ws)) ** 0.5 / m:.2f}")
