"""bench/gpu.sh --cpu-smoke: the GPU benchmark's own code (sampler vs generate, SFT step, DPO ours vs naive,
the guards, the report) at tiny shapes on the CPU, so the one-shot GPU command cannot rot between GPU loans."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))


def run(tmp_path, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(["bash", "bench/gpu.sh", "--cpu-smoke", "--out-dir", str(tmp_path), *extra], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    [js] = list(tmp_path.glob("gpu-*-cpu-smoke.json"))
    md = js.with_suffix(".md").read_text()
    return json.loads(js.read_text()), md, res.stdout


@pytest.mark.slow
def test_cpu_smoke_runs_every_measurement(tmp_path):
    rep, md, out = run(tmp_path, "--budget-s", "100000")   # no wall-clock limit here: the machine may be shared
    res = rep["results"]
    assert list(res) == ["sampler", "sft_2x64", "dpo_ours_2x64", "dpo_naive_2x64", "dpo_ours_4x32", "dpo_naive_4x32"]
    assert all(r["status"] == "ok" for r in res.values()), {k: r.get("error") for k, r in res.items()}
    s = res["sampler"]
    assert s["greedy_rows"] == 4 and s["new_tokens"] == 4 * 8 and s["sampler_new_tok_s"] > 0 and s["generate_new_tok_s"] > 0
    assert s["greedy_rows_identical"] == 4          # fp32 on the CPU: the sampler's greedy tokens are HF's, row by row
    for name in ("sft_2x64", "dpo_ours_2x64", "dpo_naive_4x32"):
        r = res[name]
        assert r["tok_s"] > 0 and r["step_s"] > 0 and r["flops"] > 0 and r["mfu"] is None   # no known peak on a CPU
    assert res["dpo_ours_2x64"]["tokens"] == 2 * 2 * 64 and res["sft_2x64"]["tokens"] == 2 * 64
    assert rep["environment"]["torch"] and "vocab 151936" in rep["model"]
    assert "## Sampler vs model.generate" in md and "| dpo_naive_4x32 |" in md and "ours / naive" in md


@pytest.mark.slow
def test_guards_isolation_and_budget(tmp_path):
    """A measurement in its own process reports like an in-process one; an exhausted budget skips, and the report
    is still written."""
    rep, md, _ = run(tmp_path, "--isolate", "--only", "sft_2x64", "--budget-s", "100000")
    r = rep["results"]["sft_2x64"]
    assert r["status"] == "ok" and r["tok_s"] > 0 and r["wall_s_process"] > 0 and rep["isolate"] is True
    for f in tmp_path.iterdir():
        f.unlink()
    rep, md, _ = run(tmp_path, "--only", "sampler", "dpo_ours_2x64", "--budget-s", "0")
    assert [r["status"] for r in rep["results"].values()] == ["skipped", "skipped"] and "skipped: time budget" in md


def test_train_flops_and_peak():
    import gpu_bench
    from bench_dpo import qwen25_config
    cfg = qwen25_config(None)                        # built in code: no shared data needed
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size) == (1536, 28, 151936)
    # one token, no attention context, no head: 3 x 2 x the blocks' matmul parameters (1.31B for Qwen2.5-1.5B)
    f = gpu_bench.train_flops(cfg, 1, 0, 0)
    blocks = 28 * (2 * 1536 * 1536 + 2 * 1536 * 256 + 3 * 1536 * 8960)
    assert f == 6 * blocks and 1.30e9 < blocks < 1.32e9
    assert gpu_bench.train_flops(cfg, 1, 1, 0) - f == 6 * 1536 * 151936
    assert gpu_bench.peak_flops("NVIDIA H200") == gpu_bench.peak_flops("NVIDIA H100 80GB HBM3") == 989.4e12
    assert gpu_bench.peak_flops("NVIDIA H100 PCIe") == 756e12 and gpu_bench.peak_flops("Some GPU") is None
    assert gpu_bench.peak_flops("Some GPU", 100) == 100e12
