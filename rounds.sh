#!/usr/bin/env bash
# On-policy rounds of the greedy arms (issue 10's lever: "2-3 on-policy rounds with the reference = the previous
# round's model"), on a finished run of run.sh, evaluated on VAL only (test is never touched).
# Round 1 is run.sh's pair of arms, sft+-greedy and dpo-greedy. In round R >= 2 each arm answers the same sampled train
# problems greedily, its own wrong answers become the rejected side (chosen: a verified-correct SFT sample, exactly
# as run.sh's mine_greedy stage), and it trains DPO_STEPS more steps from where it stopped:
#   dpo-greedy-rR   DPO + the NLL anchor, from dpo-greedy-r(R-1), reference = dpo-greedy-r(R-1)
#   sft+-greedy-rR  NLL on the chosen side of its own round-R pairs, from sft+-greedy-r(R-1): the matched control
# so both arms see their own errors and the same steps, tokens and lr per round; only the pair term differs.
#   bash rounds.sh                              # after bash run.sh: runs/toy-s0 -> runs/toy-s0/rounds/
#   RUN=runs/toy-s1 THREADS=1 ROUNDS=3 bash rounds.sh
# A round's files are skipped when they exist; delete runs/.../rounds/ to redo it.
set -euo pipefail
cd "$(dirname "$0")"
RUN=${RUN:-runs/toy-s0}; OUT=$RUN/rounds; THREADS=${THREADS:-0}; ROUNDS=${ROUNDS:-3}
SEED=${SEED:-$(python -c "import json; print(json.load(open('$RUN/sft/hardneg_meta.json')).get('seed', 0))")}
# the same sizes and flags as run.sh's full run (read from its samples' meta: the problems it sampled)
N_SAMPLE=$(python -c "import json; print(json.load(open('$RUN/samples.jsonl.meta.json'))['stats']['n_problems'])")
N_VAL=${N_VAL:-1000}; MAX_NEW=${MAX_NEW:-160}; DPO_STEPS=${DPO_STEPS:-40}; DPO_ARGS=${DPO_ARGS:---lr 3e-5 --sft-alpha 1}
HOLD="--heldout-frac 0.1 --seed $SEED --max-pairs-per-problem 1 --keep-absurd"
T="--threads $THREADS"
mkdir -p "$OUT"
ln -sfn "$(realpath "$RUN/sftplus_greedy")" "$OUT/sftplus_greedy-r1"
ln -sfn "$(realpath "$RUN/dpo_greedy")" "$OUT/dpo_greedy-r1"
NAMES=(sft sft+-greedy-r1 dpo-greedy-r1); MODELS=("$RUN/sft" "$OUT/sftplus_greedy-r1" "$OUT/dpo_greedy-r1")
CTL=("dpo-greedy-r1=sft+-greedy-r1")
for ((R = 2; R <= ROUNDS; R++)); do
    P=$((R - 1))
    for A in sftplus_greedy dpo_greedy; do
        prev=$OUT/$A-r$P; cur=$OUT/$A-r$R
        if [ ! -f "$cur/model.safetensors" ]; then
            echo "=== round $R, $A: greedy answers of $prev, mine, train $DPO_STEPS steps"
            python sample.py --model "$prev" --data "$RUN/data/train.jsonl" --limit "$N_SAMPLE" --k 1 --temperature 0 \
                --max-new-tokens "$MAX_NEW" --batch-size 256 --seed "$SEED" $T -o "$cur.greedy.jsonl" --resume > "$cur.log" 2>&1
            python verifier.py "$cur.greedy.jsonl" -o "$cur.greedy_scored.jsonl" >> "$cur.log" 2>&1
            python mine.py "$RUN/scored.jsonl" -o "$cur.pairs.jsonl" $HOLD --heldout-out "$cur.heldout.jsonl" \
                --rejected-from "$cur.greedy_scored.jsonl" --negatives all >> "$cur.log" 2>&1
            if [ "$A" = sftplus_greedy ]; then LOSS="--loss sft"; else LOSS=""; fi
            python train_dpo.py --pairs "$cur.pairs.jsonl" --model "$prev" --ref "$prev" --out-dir "$cur" \
                --max-steps "$DPO_STEPS" --seed "$SEED" $T $DPO_ARGS --weighting none $LOSS --log-every 20 >> "$cur.log" 2>&1
        fi
        python -c "import json; m = json.load(open('$cur.pairs.jsonl.meta.json'))['summary']; print('round $R $A:', m['pairs'], 'pairs', m['rejected_kinds'])"
    done
    NAMES+=("sft+-greedy-r$R" "dpo-greedy-r$R"); MODELS+=("$OUT/sftplus_greedy-r$R" "$OUT/dpo_greedy-r$R")
    CTL+=("dpo-greedy-r$R=sft+-greedy-r$R")
done
python evaluate.py --models "${MODELS[@]}" --names "${NAMES[@]}" --data "$RUN/data/val.jsonl" --limit "$N_VAL" \
    --max-new-tokens "$MAX_NEW" --batch-size 256 $T --out-dir "$OUT/eval_val" > "$OUT/eval_val.log" 2>&1
python report.py --evals "$OUT/eval_val/results.json" --run "$OUT" --baseline sft+-greedy-r1 --control "${CTL[@]}" \
    --out "$OUT/summary_val.md"
echo "wrote $OUT/summary_val.md"
