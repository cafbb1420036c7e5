"""The whole experiment, shrunken (SMOKE=1 bash run.sh): every stage runs through the real scripts with their
real flags, leaves its output in its own run folder (data included) and nowhere else, and a rerun with other
settings stops instead of mixing results."""
import hashlib
import json
import os
import subprocess

import pytest

from conftest import REPO
from common import read_jsonl

ARMS = ["sftplus", "dpo", "wdpo", "wdpo_shuf", "dpo_randneg", "sftplus_greedy", "dpo_greedy"]
NAMES = {"sft", "sft+", "dpo", "wdpo", "wdpo-shuffled", "dpo-randneg", "sft+-greedy", "dpo-greedy"}


def tree_digest(path):
    """Names, sizes and contents of every file under path (or '' when it does not exist)."""
    if not path.exists():
        return ""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_smoke_pipeline(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "SMOKE": "1", "RUN": str(run), "THREADS": "1", "OMP_NUM_THREADS": "1"}
    guarded = [REPO / "data" / "toy", REPO / "runs" / "toy-s0"]   # a normal run's data and run folder
    before = [tree_digest(p) for p in guarded]
    res = subprocess.run(["bash", "run.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert [tree_digest(p) for p in guarded] == before        # SMOKE touched nothing outside its own folder
    data = run / "data"
    for split in ("train", "val", "test"):
        assert read_jsonl(data / f"{split}.jsonl", required=("id", "question", "solution", "answer"))
    for ck in ["sft"] + ARMS:
        assert (run / ck / "model.safetensors").exists() and (run / ck / "config.json").exists()
        assert json.loads((run / ck / "hardneg_meta.json").read_text())["step"] > 0
    for ck in ARMS:
        assert len(json.loads((run / ck / "history.json").read_text())) == 3
    metas = {ck: json.loads((run / ck / "hardneg_meta.json").read_text()) for ck in ARMS}
    assert metas["sftplus"]["loss"] == "sft" and metas["dpo"]["weighting"] == "none"
    assert metas["wdpo_shuf"]["weighting"] == "shuffled" and metas["dpo_greedy"]["pairs"].endswith("pairs_greedy.jsonl")
    samples = read_jsonl(run / "samples.jsonl", required=("problem_id", "sample_idx", "seed", "completion", "answer"))
    assert len(samples) == 24 * 4 and len(read_jsonl(run / "greedy.jsonl")) == 24
    scored = read_jsonl(run / "scored.jsonl", required=("profile",))
    assert len(scored) == len(samples) and all("wrongness" in r["profile"] for r in scored)
    for name in ("pairs", "pairs_randneg", "pairs_greedy"):
        pairs = read_jsonl(run / f"{name}.jsonl", required=("prompt", "chosen", "rejected", "weight"))
        assert pairs and len({p["problem_id"] for p in pairs}) == len(pairs)   # one pair per problem
    for ev in ("eval_test", "eval_val"):
        assert set(json.loads((run / ev / "results.json").read_text())["metrics"]) == NAMES
    for f in ["diag_pairs", "diag_pairs_randneg", "diag_pairs_greedy"] + [f"diag_heldout_{a}" for a in ["sft"] + ARMS]:
        assert json.loads((run / f"{f}.json").read_text())["summary"]
    summary = (run / "summary.md").read_text()
    assert "| wdpo |" in summary and "sft+" in summary and (run / "summary_val.md").exists()
    assert "`dpo-greedy` is judged against its own control `sft+-greedy`" in summary
    assert metas["sftplus_greedy"]["loss"] == "sft" and metas["sftplus_greedy"]["pairs"].endswith("pairs_greedy.jsonl")
    stages = {line.split("\t")[0] for line in (run / "timings.tsv").read_text().splitlines()}
    assert {"prepare", "sft", "sample", "greedy", "mine", "mine_greedy", "arms", "eval", "diag_pairs", "nouns", "report"} <= stages
    assert f"| {run} | sft " in (run / "nouns.md").read_text()          # the toy's noun check ran on the run
    assert json.loads((run / "report_val.json").read_text())["baseline"] == "sft+"   # the val report keeps its own JSON
    assert (run / "arms.log").read_text().count("done: step 3/3") == len(ARMS)   # the seven runs of one process
    assert json.loads((run / "eval_val" / "results.json").read_text())["n_problems"] == 16    # N_VAL; test: N_TEST
    assert json.loads((run / "eval_test" / "results.json").read_text())["n_problems"] == 24
    logs = sorted(run.glob("*.log"))
    assert len(logs) >= len(stages) and not [p.name for p in logs if "\r" in p.read_text()]  # plain lines, no redraws
    # a rerun with the same settings skips every stage; with other settings it stops and names the stage
    again = subprocess.run(["bash", "run.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "done before with these settings, skipped" in again.stdout
    other = subprocess.run(["bash", "run.sh"], cwd=REPO, env={**env, "N_TRAIN": "301"}, capture_output=True,
                           text=True, timeout=600)
    assert other.returncode != 0 and "stage 'prepare'" in other.stderr and "other settings" in other.stderr
    # rounds.sh on the finished run: round 2 of each greedy arm starts from its round-1 model, which is also DPO's
    # reference, trains on pairs mined from its own greedy answers, and both rounds are judged against their controls
    env_r = {**env, "ROUNDS": "2", "N_VAL": "8", "MAX_NEW": "48", "DPO_STEPS": "2",
             "DPO_ARGS": "--lr 3e-5 --sft-alpha 1 --batch-size 8 --micro-batch-size 8"}
    rr = subprocess.run(["bash", "rounds.sh"], cwd=REPO, env=env_r, capture_output=True, text=True, timeout=900)
    assert rr.returncode == 0, rr.stdout[-3000:] + rr.stderr[-3000:]
    rounds = run / "rounds"
    for arm, loss in (("dpo_greedy", "dpo"), ("sftplus_greedy", "sft")):
        meta = json.loads((rounds / f"{arm}-r2" / "hardneg_meta.json").read_text())
        assert meta["loss"] == loss and meta["step"] == 2 and meta["pairs"].endswith(f"{arm}-r2.pairs.jsonl")
        assert os.path.realpath(meta["parent"]) == os.path.realpath(rounds / f"{arm}-r1") == os.path.realpath(run / arm)
        assert os.path.realpath(meta["ref"]) == os.path.realpath(meta["parent"])
        greedy = read_jsonl(rounds / f"{arm}-r2.greedy.jsonl")
        assert len(greedy) == 24 and {g["model"] for g in greedy} == {str(rounds / f"{arm}-r1")}
    res_r = json.loads((rounds / "eval_val" / "results.json").read_text())
    assert list(res_r["metrics"]) == ["sft", "sft+-greedy-r1", "dpo-greedy-r1", "sft+-greedy-r2", "dpo-greedy-r2"]
    assert "`dpo-greedy-r2` is judged against its own control `sft+-greedy-r2`" in (rounds / "summary_val.md").read_text()
