#!/usr/bin/env bash
# One device call (the session's GPU lease: ~15 min in all): the real-model GPU bench (bench/gpu.sh), then the toy
# run.sh on the GPU with what time is left. LOCAL=1: the same at CPU-smoke sizes (a rehearsal on the 2-core machine).
# Prepared beside it, both ignored by git and carried to the machine:
#   .whl/      transformers==5.24.0 and tokenizers==0.23.3 wheels for cp312 manylinux (the pinned versions; the
#              GPU image's torch 2.11.0+cu130 is used as it is)
#   .devdata/  cfg/ = ../shared/data/qwen2.5_configs/Qwen2.5-1.5B-Instruct_transformers5_resave, tok/ = qwen2.5_tokenizer
# Used on 2026-11-30 as `OUT=$OUT BUDGET=330 DEADLINE=545 bash .devdata/go.sh` (this file), then a rerun of run.sh on
# the still-warm machine for the last four stages: bench/results/gpu-2026-11-30.md, docs/results/toy_gpu_s0.md.
set -u
cd "$(dirname "$0")/.."
: "${OUT:?}"
exec > >(tee -a "$OUT/log.txt") 2>&1
date -u; uname -m; nproc; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
if [ "${LOCAL:-0}" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
python3 -c "import transformers, tokenizers" || { echo "carried wheels do not import: the image's own"; unset PYTHONPATH; }
python3 -c "import torch, transformers, tokenizers, safetensors, sympy, numpy, tqdm, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, 'cuda', torch.version.cuda, '| transformers', transformers.__version__, '| tokenizers', tokenizers.__version__, '| safetensors', safetensors.__version__, '| sympy', sympy.__version__, '| numpy', numpy.__version__, '| tqdm', tqdm.__version__)"
echo "git $(git rev-parse --short HEAD 2>/dev/null) dirty: $(git status --short 2>/dev/null | grep -v '^??' | wc -l)"
T0=$SECONDS
if [ "${LOCAL:-0}" = 1 ]; then
  bash bench/gpu.sh --cpu-smoke --budget-s 120 --out-dir "$OUT" --config .devdata/cfg --tokenizer .devdata/tok
else
  bash bench/gpu.sh --budget-s "${BUDGET:-330}" --out-dir "$OUT" --config .devdata/cfg --tokenizer .devdata/tok
fi
echo "=== bench wall $((SECONDS - T0)) s"
LEFT=$(( ${DEADLINE:-545} - SECONDS ))
echo "=== toy run.sh with ${LEFT} s left"
T1=$SECONDS
if [ "${LOCAL:-0}" = 1 ]; then
  RUN=runs/toy-dev-smoke SMOKE=1 timeout "$LEFT" bash run.sh > "$OUT/toy_run.log" 2>&1; echo "run.sh rc $? wall $((SECONDS - T1)) s"; R=runs/toy-dev-smoke
else
  RUN=runs/toy-gpu-s0 timeout "$LEFT" bash run.sh > "$OUT/toy_run.log" 2>&1; echo "run.sh rc $? wall $((SECONDS - T1)) s"; R=runs/toy-gpu-s0
fi
tail -5 "$OUT/toy_run.log"
cat "$R"/timings.tsv 2>/dev/null
tar czf "$OUT/toy.tgz" --exclude='*.safetensors' --exclude="$R/data" "$R" && ls -la "$OUT"
