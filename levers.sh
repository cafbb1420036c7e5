#!/usr/bin/env bash
# The lever sweep of README "Settings chosen on val": on a finished run of run.sh (its SFT model and pair files),
# train each lever arm from the SFT model, evaluate them all on VAL, and report each against its matched control
# (the NLL-only arm on the same chosen solutions and steps). Test is never touched.
#   bash levers.sh                     # after bash run.sh: uses runs/toy-s0 -> runs/toy-s0/levers/
#   RUN=runs/toy-s1 THREADS=1 bash levers.sh
# Each arm is skipped when its checkpoint exists; delete runs/.../levers/NAME to retrain it.
set -euo pipefail
cd "$(dirname "$0")"
RUN=${RUN:-runs/toy-s0}; OUT=$RUN/levers; THREADS=${THREADS:-0}; SEED=${SEED:-$(python -c "import json; print(json.load(open('$RUN/sft/hardneg_meta.json')).get('seed', 0))")}
N_VAL=${N_VAL:-1000}; MAX_NEW=${MAX_NEW:-160}; STEPS=${STEPS:-"40 70 120"}; FIRST=${STEPS%% *}
mkdir -p "$OUT"
HOLD="--heldout-frac 0.1 --seed $SEED --max-pairs-per-problem 1 --keep-absurd"
# the sampled pairs' recurrence filter as run.sh mined them (read back from pairs.jsonl's sidecar: one source)
# (printed as a Python float, so "0.0" / "0.5" compare as text below)
MIN_FAIL=$(python -c "import json, sys; print(float(json.load(open(sys.argv[1]))['args'].get('min_failure_rate', 0)))" "$RUN/pairs.jsonl.meta.json")
# pair files and arms already in $OUT were mined with the filter recorded here (none recorded: made before it = 0.0)
PREV=$(cat "$OUT/.min_failure_rate" 2>/dev/null || { ls "$OUT"/pairs_*.jsonl > /dev/null 2>&1 && echo 0.0; } || true)
if [ -n "$PREV" ] && [ "$PREV" != "$MIN_FAIL" ]; then
    echo "error: $OUT holds pairs and arms mined with --min-failure-rate $PREV, but $RUN's pairs use $MIN_FAIL;" >&2
    echo "delete $OUT (or use another RUN=) to redo the sweep" >&2
    exit 1
fi
echo "$MIN_FAIL" > "$OUT/.min_failure_rate"
for SC in before-value divergence; do   # the two other rejected scopes, on the same samples
    [ -f "$OUT/pairs_$SC.jsonl" ] || python mine.py "$RUN/scored.jsonl" -o "$OUT/pairs_$SC.jsonl" $HOLD --heldout-out "$OUT/heldout_$SC.jsonl" --negatives all \
        --min-failure-rate "$MIN_FAIL" --rejected-scope $SC > "$OUT/mine_$SC.log" 2>&1
    [ -f "$OUT/pairs_greedy_$SC.jsonl" ] || python mine.py "$RUN/scored.jsonl" -o "$OUT/pairs_greedy_$SC.jsonl" $HOLD --heldout-out "$OUT/heldout_greedy_$SC.jsonl" \
        --rejected-from "$RUN/greedy_scored.jsonl" --negatives all --rejected-scope $SC > "$OUT/mine_greedy_$SC.log" 2>&1
done
NAMES=(sft); MODELS=("$RUN/sft"); CTL=()
arm() {  # arm NAME CONTROL PAIRS flags... : train NAME unless done; CONTROL = the arm it is judged against
    local name=$1 ctl=$2 pairs=$3; shift 3
    if [ ! -f "$OUT/$name/model.safetensors" ]; then
        echo "=== $name: $pairs $*"
        python train_dpo.py --pairs "$pairs" --model "$RUN/sft" --out-dir "$OUT/$name" --seed "$SEED" \
            --threads "$THREADS" --lr 3e-5 --sft-alpha 1 --log-every 20 "$@" > "$OUT/$name.log" 2>&1
    fi
    NAMES+=("$name"); MODELS+=("$OUT/$name")
    [ -z "$ctl" ] || [ "$ctl" = "$name" ] || CTL+=("$name=$ctl")
}
for S in $STEPS; do
    B="--max-steps $S --weighting none"
    arm "sft+@$S"        "sft+@$FIRST"    "$RUN/pairs.jsonl" $B --loss sft
    arm "dpo@$S"         "sft+@$S"        "$RUN/pairs.jsonl" $B
    arm "wdpo@$S"        "sft+@$S"        "$RUN/pairs.jsonl" --max-steps $S --weighting verifier
    arm "dpo-bv@$S"      "sft+@$S"        "$OUT/pairs_before-value.jsonl" $B
    arm "dpo-div@$S"     "sft+@$S"        "$OUT/pairs_divergence.jsonl" $B
    arm "sft+-greedy@$S" "sft+@$S"        "$RUN/pairs_greedy.jsonl" $B --loss sft
    arm "dpo-greedy@$S"  "sft+-greedy@$S" "$RUN/pairs_greedy.jsonl" $B
    arm "dpo-greedy-bv@$S" "sft+-greedy@$S" "$OUT/pairs_greedy_before-value.jsonl" $B
done
B="--max-steps $FIRST --weighting none"   # the objectives, at the smallest budget
arm "dpo-randneg@$FIRST" "sft+@$FIRST" "$RUN/pairs_randneg.jsonl" $B
arm "dpop@$FIRST"        "sft+@$FIRST" "$RUN/pairs.jsonl" $B --loss dpop
arm "ipo@$FIRST"         "sft+@$FIRST" "$RUN/pairs.jsonl" $B --loss ipo
arm "dpo-beta0.5@$FIRST" "sft+@$FIRST" "$RUN/pairs.jsonl" $B --beta 0.5
python evaluate.py --models "${MODELS[@]}" --names "${NAMES[@]}" --data "$RUN/data/val.jsonl" --limit "$N_VAL" \
    --max-new-tokens "$MAX_NEW" --batch-size 256 --threads "$THREADS" --out-dir "$OUT/eval_val" > "$OUT/eval_val.log" 2>&1
python report.py --evals "$OUT/eval_val/results.json" --run "$OUT" --baseline "sft+@$FIRST" --control "${CTL[@]}" \
    --out "$OUT/summary_val.md"
