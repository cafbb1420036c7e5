"""The whole pipeline, shrunken (SMOKE=1 bash run.sh): every stage runs through the real
scripts with their real flags and leaves its output file in the run folder."""
import json
import os
import subprocess

import pytest

from conftest import REPO
from common import read_jsonl


@pytest.mark.slow
def test_smoke_pipeline(tmp_path):
    run, data = tmp_path / "run", tmp_path / "data"
    env = {**os.environ, "SMOKE": "1", "RUN": str(run), "DATA": str(data), "THREADS": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(["bash", "run.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for split in ("train", "val", "test"):
        assert read_jsonl(data / f"{split}.jsonl", required=("id", "question", "solution", "answer"))
    for ck in ("sft", "dpo_verifier", "dpo_none"):
        assert (run / ck / "model.safetensors").exists() and (run / ck / "config.json").exists()
        assert json.loads((run / ck / "hardneg_meta.json").read_text())["step"] > 0
    samples = read_jsonl(run / "samples.jsonl", required=("problem_id", "sample_idx", "seed", "completion", "answer"))
    assert len(samples) == 16 * 4
    scored = read_jsonl(run / "scored.jsonl", required=("profile",))
    assert len(scored) == len(samples) and all("wrongness" in r["profile"] for r in scored)
    pairs = read_jsonl(run / "pairs.jsonl", required=("prompt", "chosen", "rejected", "weight"))
    assert pairs and abs(sum(p["weight"] for p in pairs) / len(pairs) - 1) < 1e-6
    assert json.loads((run / "dpo_none" / "hardneg_meta.json").read_text())["weighting"] == "none"
    for ev in ("eval", "eval_val"):
        res_json = json.loads((run / ev / "results.json").read_text())
        assert set(res_json["metrics"]) == {"sft", "dpo", "wdpo"}
    summary = (run / "summary.md").read_text()
    assert "| wdpo |" in summary and "| total |" in summary
    stages = [line.split("\t")[0] for line in (run / "timings.tsv").read_text().splitlines()]
    assert stages == ["prepare", "sft", "sample", "verify", "mine", "dpo_verifier", "dpo_none", "eval_val", "evaluate"]
