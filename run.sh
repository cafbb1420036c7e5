#!/usr/bin/env bash
# The reference pipeline on the embedded toy world (nanochat's speedrun.sh, CPU-sized):
#   prepare -> SFT -> sample -> verify -> mine -> DPO (verifier-weighted) + DPO (plain, same pairs,
#   same steps) -> evaluate all three side by side on the toy test split.
# Every line is a real script with its real flags: read it as the recipe.
#
#   bash run.sh                      # ~20 min on a 2-core CPU; writes runs/toy-s0/
#   SEED=1 bash run.sh               # another seed (SFT init, data order, sampling, DPO order)
#   SMOKE=1 bash run.sh              # tiny sizes, a minute: checks that every stage runs
set -euo pipefail
cd "$(dirname "$0")"
SEED=${SEED:-0}
RUN=${RUN:-runs/toy-s$SEED}
DATA=${DATA:-data/toy}  # where the toy splits are written (the tokenizer stays in data/toy/tokenizer)
if [ "${SMOKE:-0}" = 1 ]; then   # shrunken sizes for the pipeline test (tests/test_pipeline.py)
    N_TRAIN=${N_TRAIN:-200}; SFT_STEPS=${SFT_STEPS:-20}; N_SAMPLE=${N_SAMPLE:-16}; K=${K:-4}; DPO_STEPS=${DPO_STEPS:-2}
    N_TEST=${N_TEST:-16}; MAX_NEW=${MAX_NEW:-48}
    MINE_ARGS=${MINE_ARGS:---negatives all --keep-absurd}   # an untrained model makes no near misses yet
else
    N_TRAIN=${N_TRAIN:-30000}; SFT_STEPS=${SFT_STEPS:-1800}; N_SAMPLE=${N_SAMPLE:-2000}; K=${K:-4}; DPO_STEPS=${DPO_STEPS:-120}
    N_TEST=${N_TEST:-500}; MAX_NEW=${MAX_NEW:-160}; MINE_ARGS=${MINE_ARGS:-}
fi
# DPO flags, identical for both runs. Chosen on the validation split (README "Results"): lr 3e-5 with an
# NLL anchor on the chosen side (--sft-alpha 1); plain lr 1e-4 DPO lowered val accuracy far more.
DPO_ARGS=${DPO_ARGS:---lr 3e-5 --sft-alpha 1}
THREADS=${THREADS:-0}   # 0 = torch default (all cores)
mkdir -p "$RUN"
STOP_AFTER=${STOP_AFTER:-}   # e.g. STOP_AFTER=sft: run up to that stage only
stage() {  # stage NAME cmd... : run, time, log; a stage that finished before is skipped (rerun after a crash)
    local name=$1; shift
    if [ -f "$RUN/.done_$name" ]; then echo "=== $name: done before, skipped"; else
        echo "=== $name: $*"
        local t0=$SECONDS
        "$@" 2>&1 | tee "$RUN/$name.log"
        printf "%s\t%d\n" "$name" $((SECONDS - t0)) > "$RUN/.done_$name"
    fi
    if [ "$name" = "$STOP_AFTER" ]; then echo "stopping after $name (STOP_AFTER)"; exit 0; fi
}

stage prepare   python data/toy/prepare.py --out-dir "$DATA" --n-train "$N_TRAIN" --n-val "$N_TEST" --n-test "$N_TEST"
stage sft       python train_sft.py --out-dir "$RUN/sft" --max-steps "$SFT_STEPS" --seed "$SEED" --threads "$THREADS" \
                    --data "$DATA/train.jsonl" --val-data "$DATA/val.jsonl" --eval-every 300 --save-every 300
stage sample    python sample.py --model "$RUN/sft" --data "$DATA/train.jsonl" --limit "$N_SAMPLE" --k "$K" \
                    --temperature 0.8 --max-new-tokens "$MAX_NEW" --batch-size 256 --seed "$SEED" --threads "$THREADS" \
                    -o "$RUN/samples.jsonl" --resume
stage verify    python verifier.py "$RUN/samples.jsonl" -o "$RUN/scored.jsonl"
stage mine      python mine.py "$RUN/scored.jsonl" -o "$RUN/pairs.jsonl" $MINE_ARGS
for W in verifier none; do   # same pairs, same steps, same seed: only the weighting differs
    stage "dpo_$W" python train_dpo.py --pairs "$RUN/pairs.jsonl" --weighting "$W" --out-dir "$RUN/dpo_$W" \
                    --max-steps "$DPO_STEPS" --seed "$SEED" --threads "$THREADS" $DPO_ARGS
done
# validation split: the one used for choices (beta, lr, steps); the test split is only reported
stage eval_val  python evaluate.py --models "$RUN/sft" "$RUN/dpo_none" "$RUN/dpo_verifier" --names sft dpo wdpo \
                    --data "$DATA/val.jsonl" --limit "$N_TEST" --max-new-tokens "$MAX_NEW" --batch-size 256 \
                    --threads "$THREADS" --out-dir "$RUN/eval_val"
stage evaluate  python evaluate.py --models "$RUN/sft" "$RUN/dpo_none" "$RUN/dpo_verifier" --names sft dpo wdpo \
                    --data "$DATA/test.jsonl" --limit "$N_TEST" --max-new-tokens "$MAX_NEW" --batch-size 256 \
                    --threads "$THREADS" --out-dir "$RUN/eval"
{
    echo "# toy pipeline, seed $SEED"; echo
    cat "$RUN/eval/results.md"; echo
    echo "| stage | seconds |"; echo "|---|---|"
    for n in prepare sft sample verify mine dpo_verifier dpo_none eval_val evaluate; do cat "$RUN/.done_$n"; done |
        tee "$RUN/timings.tsv" | awk -F'\t' '{s+=$2; printf "| %s | %d |\n", $1, $2} END {printf "| total | %d |\n", s}'
} > "$RUN/summary.md"
cat "$RUN/summary.md"
