#!/usr/bin/env bash
# The main job: the embedded toy experiment (nanochat's speedrun.sh, CPU-sized). One seed:
#   prepare -> SFT -> sample (T=0.8, K per problem) + greedy answers -> verify -> mine three pair sets
#   -> seven arms trained from the SFT model with the same steps (40), lr and seed (one process: train_dpo.py --then):
#        sft+          NLL on the chosen side only (the matched-compute control every DPO arm is judged against)
#        dpo           DPO + the same NLL anchor, uniform weights              (hard negatives)
#        wdpo          the same, verifier weights                               (hard negatives)
#        wdpo-shuffled the same weights randomly permuted over the pairs        (do the weights carry information?)
#        dpo-randneg   uniform weights, a random wrong sample as rejected       (does hardness matter?)
#        sft+-greedy   NLL on the chosen side of the greedy pairs               (dpo-greedy's own control)
#        dpo-greedy    uniform weights, the model's own greedy wrong answer     (the model's own errors)
#   -> greedy evaluation of all eight on val (choices) and test (one process) -> diagnostics -> report (summary.md)
# Every line is a real script with its real flags: read it as the recipe.
#
#   bash run.sh                   # seed 0 -> runs/toy-s0/ (see README for the measured time)
#   THREADS=1 bash run.sh         # on a machine shared with other jobs (THREADS=0 takes every core)
#   SEED=1 bash run.sh            # another seed (SFT init, data order, sampling, pair order); same data splits
#   SMOKE=1 bash run.sh           # tiny sizes, ~1 min (README) -> runs/smoke-s0/ (never touches runs/toy-s*)
#   STOP_AFTER=sft bash run.sh    # run up to a stage only
# A stage that finished is skipped on rerun; its .done file records the command it ran with, and a rerun with
# other settings stops with a message instead of mixing results (delete the .done file, or use another RUN=).
set -euo pipefail
cd "$(dirname "$0")"
SEED=${SEED:-0}
if [ "${SMOKE:-0}" = 1 ]; then   # shrunken sizes for the pipeline test (tests/test_pipeline.py)
    RUN=${RUN:-runs/smoke-s$SEED}
    N_TRAIN=${N_TRAIN:-300}; N_VAL=${N_VAL:-16}; N_TEST=${N_TEST:-24}; SFT_STEPS=${SFT_STEPS:-30}
    N_SAMPLE=${N_SAMPLE:-24}; K=${K:-4}; DPO_STEPS=${DPO_STEPS:-3}; MAX_NEW=${MAX_NEW:-48}
    MINE_ARGS=${MINE_ARGS:-}; MIN_FAIL=${MIN_FAIL:-0}   # 30 SFT steps: errors rarely recur, the filter would leave no pair
    SFT_EVAL=${SFT_EVAL:-10}
    BATCH_ARGS=${BATCH_ARGS:---batch-size 8 --micro-batch-size 8}   # SFT and the arms: 8 sequences / pairs a step
else
    RUN=${RUN:-runs/toy-s$SEED}
    N_TRAIN=${N_TRAIN:-30000}; N_VAL=${N_VAL:-1000}; N_TEST=${N_TEST:-2000}; SFT_STEPS=${SFT_STEPS:-2000}
    N_SAMPLE=${N_SAMPLE:-2000}; K=${K:-4}; DPO_STEPS=${DPO_STEPS:-40}; MAX_NEW=${MAX_NEW:-160}
    MINE_ARGS=${MINE_ARGS:-}; MIN_FAIL=${MIN_FAIL:-0.5}   # sampled negatives: only errors made in >= 2 of the 4 samples
    SFT_EVAL=${SFT_EVAL:-400}
    BATCH_ARGS=${BATCH_ARGS:-}   # empty: the scripts' own batch sizes (SFT 32 sequences, DPO 32 pairs a step)
fi
DATA=$RUN/data   # each run holds its own copy of the generated splits (2 s to make; deterministic)
# Training flags shared by all seven arms, and DPO_STEPS = 40: chosen on the validation split (README "Settings"):
# at 70 and 120 steps the control sft+ is already at the model's ceiling on val, where no arm can differ.
DPO_ARGS=${DPO_ARGS:---lr 3e-5 --sft-alpha 1}
SFT_ARGS=${SFT_ARGS:-}   # extra train_sft.py flags, e.g. SFT_ARGS="--model toy-l --lr 2e-3" (README: the capacity lever)
THREADS=${THREADS:-0}   # 0 = torch default (all cores); use 1 when other jobs share the machine
STOP_AFTER=${STOP_AFTER:-}
mkdir -p "$RUN"
stage() {  # stage NAME cmd... : run, time, log; skipped when done before with the same command
    local name=$1; shift
    local cmd="$*"
    if [ -f "$RUN/.done_$name" ]; then
        if [ "$(sed -n 2p "$RUN/.done_$name")" != "$cmd" ]; then
            echo "error: stage '$name' of $RUN ran before with other settings:" >&2
            echo "  then: $(sed -n 2p "$RUN/.done_$name")" >&2
            echo "  now:  $cmd" >&2
            echo "delete $RUN/.done_$name (and the stages after it), or pick another RUN=" >&2
            exit 1
        fi
        echo "=== $name: done before with these settings, skipped"
    else
        echo "=== $name: $cmd"
        local t0=$SECONDS
        "$@" 2>&1 | tee "$RUN/$name.log"
        printf "%s\t%d\n%s\n" "$name" $((SECONDS - t0)) "$cmd" > "$RUN/.done_$name"
    fi
    if [ "$name" = "$STOP_AFTER" ]; then echo "stopping after $name (STOP_AFTER)"; exit 0; fi
}
T="--threads $THREADS"

stage prepare python data/toy/prepare.py --out-dir "$DATA" --n-train "$N_TRAIN" --n-val "$N_VAL" --n-test "$N_TEST"
stage sft     python train_sft.py --out-dir "$RUN/sft" --max-steps "$SFT_STEPS" --seed "$SEED" $T \
                  --data "$DATA/train.jsonl" --val-data "$DATA/val.jsonl" --eval-every "$SFT_EVAL" --save-every "$SFT_EVAL" $BATCH_ARGS $SFT_ARGS
stage sample  python sample.py --model "$RUN/sft" --data "$DATA/train.jsonl" --limit "$N_SAMPLE" --k "$K" \
                  --temperature 0.8 --max-new-tokens "$MAX_NEW" --batch-size 256 --seed "$SEED" $T \
                  -o "$RUN/samples.jsonl" --resume
stage greedy  python sample.py --model "$RUN/sft" --data "$DATA/train.jsonl" --limit "$N_SAMPLE" --k 1 \
                  --temperature 0 --max-new-tokens "$MAX_NEW" --batch-size 256 --seed "$SEED" $T \
                  -o "$RUN/greedy.jsonl" --resume
stage verify  python verifier.py "$RUN/samples.jsonl" -o "$RUN/scored.jsonl"
stage verify_greedy python verifier.py "$RUN/greedy.jsonl" -o "$RUN/greedy_scored.jsonl"
# three pair sets; the same 10% of problems are held out of all of them (held-out pair accuracy)
# One pair per problem: its hardest wrong sample by the verifier (any kind: the weights grade them), a random wrong
# sample, or the model's own greedy answer when that is wrong. Chosen: a clean verified-correct sample (else the
# reference, when it verifies: the toy's training references are flawed). The two sampled sets keep only negatives
# whose final answer recurs in >= MIN_FAIL of the problem's samples (--min-failure-rate, chosen on val, README
# "Recurring negatives only"): a one-off T = 0.8 slip is sampling noise, not an error of the model.
HOLD="--heldout-frac 0.1 --seed $SEED --max-pairs-per-problem 1 --keep-absurd"
stage mine         python mine.py "$RUN/scored.jsonl" -o "$RUN/pairs.jsonl" $HOLD --heldout-out "$RUN/heldout.jsonl" \
                       --negatives all --min-failure-rate "$MIN_FAIL" $MINE_ARGS
stage mine_randneg python mine.py "$RUN/scored.jsonl" -o "$RUN/pairs_randneg.jsonl" $HOLD --heldout-out "$RUN/heldout_randneg.jsonl" \
                       --negatives random --min-failure-rate "$MIN_FAIL" $MINE_ARGS
stage mine_greedy  python mine.py "$RUN/scored.jsonl" -o "$RUN/pairs_greedy.jsonl" $HOLD --heldout-out "$RUN/heldout_greedy.jsonl" \
                       --rejected-from "$RUN/greedy_scored.jsonl" --negatives all $MINE_ARGS
ARM_RUNS=()
arm() {  # arm DIR PAIRS extra-flags... : adds one training run from the SFT model (same steps / lr / seed) to stage arms
    local dir=$1 pairs=$2; shift 2
    [ ${#ARM_RUNS[@]} = 0 ] || ARM_RUNS+=(--then)
    ARM_RUNS+=(--pairs "$RUN/$pairs" --model "$RUN/sft" --out-dir "$RUN/$dir" \
        --max-steps "$DPO_STEPS" --seed "$SEED" $T $DPO_ARGS $BATCH_ARGS "$@")
}
arm sftplus      pairs.jsonl         --loss sft --weighting none
arm dpo          pairs.jsonl         --weighting none
arm wdpo         pairs.jsonl         --weighting verifier
arm wdpo_shuf    pairs.jsonl         --weighting shuffled
arm dpo_randneg  pairs_randneg.jsonl --weighting none
arm sftplus_greedy pairs_greedy.jsonl --loss sft --weighting none
arm dpo_greedy   pairs_greedy.jsonl  --weighting none
# the seven runs one after the other in one process (train_dpo.py --then): each writes what it writes alone
stage arms python train_dpo.py "${ARM_RUNS[@]}"
ARMS=(sft sftplus dpo wdpo wdpo_shuf dpo_randneg sftplus_greedy dpo_greedy)
NAMES=(sft sft+ dpo wdpo wdpo-shuffled dpo-randneg sft+-greedy dpo-greedy)
MODELS=(); for a in "${ARMS[@]}"; do MODELS+=("$RUN/$a"); done
# validation split: the one used for choices (lr, beta, steps, objective); test is only reported. One process: each
# model loads once and answers both (eval_val/ and eval_test/ hold the same files as two separate runs would)
stage eval python evaluate.py --models "${MODELS[@]}" --names "${NAMES[@]}" --data "$DATA/val.jsonl" "$DATA/test.jsonl" \
                  --limit "$N_VAL" "$N_TEST" --max-new-tokens "$MAX_NEW" --batch-size 256 $T \
                  --out-dir "$RUN/eval_val" "$RUN/eval_test"
# diagnostics: are the negatives the SFT model's own greedy choices? (the three pair sets in one process)
stage diag_pairs python diagnose.py --model "$RUN/sft" --ref "$RUN/sft" \
                  --pairs "$RUN/pairs.jsonl" "$RUN/pairs_randneg.jsonl" "$RUN/pairs_greedy.jsonl" $T \
                  --out "$RUN/diag_pairs.json" "$RUN/diag_pairs_randneg.json" "$RUN/diag_pairs_greedy.json"
OUTS=(); for a in "${ARMS[@]}"; do OUTS+=("$RUN/diag_heldout_$a.json"); done
# pairs of the held-out 10% of problems: no arm trained on them (all eight models in one process)
stage diag_heldout python diagnose.py --model "${MODELS[@]}" --ref "$RUN/sft" --pairs "$RUN/heldout.jsonl" \
                  --no-digits $T --out "${OUTS[@]}"
# the toy's SFT check accuracy cannot see: do the models copy the question's item noun, and where do pairs first differ?
stage nouns python data/toy/nouns.py "$RUN" --out "$RUN/nouns.md"
# the greedy pairs hold other problems' chosen solutions (mostly the blind spot's): dpo-greedy's control is sft+-greedy
CTL="--control dpo-greedy=sft+-greedy"
stage report_val python report.py --evals "$RUN/eval_val/results.json" --run "$RUN" --baseline sft+ $CTL --changes-vs sft \
                  --out "$RUN/summary_val.md"
stage report python report.py --evals "$RUN/eval_test/results.json" --run "$RUN" --baseline sft+ $CTL --changes-vs sft \
                  --out "$RUN/summary.md"
for f in "$RUN"/.done_*; do head -1 "$f"; done > "$RUN/timings.tsv"
awk -F'\t' -v t="$THREADS" '{s+=$2} END {printf "stage seconds total: %d (THREADS=%s)\n", s, t}' "$RUN/timings.tsv"
cat "$RUN/summary.md" "$RUN/nouns.md"
