#!/usr/bin/env bash
# The real recipe: Qwen2.5-1.5B, full parameters, one 80 GB GPU (H100/A100-80GB).
#   GSM8K + MATH train (stand-ins for MetaMathQA, see data/metamathqa/prepare.py) -> SFT -> K=8 samples
#   -> verify -> mine -> DPO (verifier-weighted) + DPO (plain ablation) -> GSM8K test and MATH-500.
#
#   MODEL=Qwen/Qwen2.5-1.5B bash run_real.sh            # hub id (internet) or a local HF directory
#   torchrun: replace `python X.py` by `torchrun --nproc_per_node 8 X.py` for train_sft / sample /
#   train_dpo; batch sizes below are global (micro x accum x world), so the recipe stays the same.
#
# Hyper-parameters are written down here, not tuned on these machines (no GPU, no weights).
# Time/memory per stage: see README "Real-model recipe" (what was and was not measured).
set -euo pipefail
cd "$(dirname "$0")"
MODEL=${MODEL:-Qwen/Qwen2.5-1.5B}
RUN=${RUN:-runs/qwen2.5-1.5b}
SEED=${SEED:-0}
mkdir -p "$RUN"
resume() { [ -f "$1/train_state.safetensors" ] && echo --resume || true; }   # rerun the script after a crash: stages continue

python data/gsm8k/prepare.py --val-size 500       # local ../shared/data copy, or --download
python data/math/prepare.py
# SFT mix: GSM8K train (6,973) + MATH train (7,499); with MetaMathQA use data/metamathqa/train.jsonl instead
cat data/gsm8k/train.jsonl data/math/train.jsonl > "$RUN/sft_train.jsonl"

python train_sft.py --model "$MODEL" --data "$RUN/sft_train.jsonl" --val-data data/gsm8k/val.jsonl \
    --out-dir "$RUN/sft" --max-len 1024 --batch-size 64 --micro-batch-size 8 --epochs 3 \
    --lr 1e-5 --warmup 50 --min-lr-frac 0.0 --weight-decay 0.0 --grad-clip 1.0 \
    --grad-checkpointing --dtype bfloat16 --eval-every 100 --save-every 100 --seed "$SEED" $(resume "$RUN/sft")

python sample.py --model "$RUN/sft" --data data/gsm8k/train.jsonl --k 8 --temperature 0.8 \
    --max-new-tokens 512 --batch-size 256 --seed "$SEED" -o "$RUN/samples.jsonl" --resume
python verifier.py "$RUN/samples.jsonl" -o "$RUN/scored.jsonl"
python mine.py "$RUN/scored.jsonl" -o "$RUN/pairs.jsonl" --max-pairs-per-problem 4

for W in verifier none; do
    python train_dpo.py --pairs "$RUN/pairs.jsonl" --weighting "$W" --out-dir "$RUN/dpo_$W" \
        --beta 0.1 --lr 5e-7 --warmup 20 --batch-size 32 --micro-batch-size 8 --epochs 1 --max-len 1024 \
        --grad-checkpointing --dtype bfloat16 --save-every 100 --seed "$SEED" $(resume "$RUN/dpo_$W")
done

for DATA in data/gsm8k/test.jsonl data/math/math500.jsonl; do
    python evaluate.py --models "$RUN/sft" "$RUN/dpo_none" "$RUN/dpo_verifier" --names sft dpo wdpo \
        --data "$DATA" --max-new-tokens 768 --batch-size 256 --out-dir "$RUN/eval_$(basename "$DATA" .jsonl)"
done
