#!/usr/bin/env bash
# Every real-model speed and memory figure in one command (issue 13): Qwen2.5-1.5B, random init, bf16, one GPU,
# no network, <= 8 min on one H100/H200 (a 420 s budget for the measurements, plus start-up).
#
#   bash bench/gpu.sh                 # writes bench/results/gpu-<date>.json and .md (see bench/gpu_bench.py)
#   bash bench/gpu.sh --cpu-smoke     # the same code at tiny shapes on the CPU, < 1 min: keeps the script from rotting
#   bash bench/gpu.sh --only sampler  # one measurement; --help for the rest
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1   # no network
PY=${PYTHON:-$(command -v python3 || command -v python)}
exec "$PY" bench/gpu_bench.py "$@"
