#!/usr/bin/env bash
# learning curve on val: sft+, dpo, wdpo (recurrence^4), sft+-greedy, dpo-greedy at 60 and 80 steps: curve.sh RUN SEED
set -euo pipefail
RUN=$1; SEED=$2; CODE=/work/main; O=$RUN/fr/curve; mkdir -p $O
cd $CODE
A=(); add(){ local d=$1 p=$2 n=$3; shift 3; [ ${#A[@]} = 0 ] || A+=(--then); A+=(--pairs $p --model $RUN/sft --out-dir $O/$d --max-steps $n --seed $SEED --threads 1 --lr 3e-5 --sft-alpha 1 "$@"); }
for n in 60 80; do
  add sftplus_$n $RUN/pairs.jsonl $n --loss sft --weighting none
  add dpo_$n $RUN/pairs.jsonl $n --weighting none
  add wdpo_$n $RUN/fr/pairs_R4.jsonl $n --weighting verifier
  add sftplus_greedy_$n $RUN/pairs_greedy.jsonl $n --loss sft --weighting none
  add dpo_greedy_$n $RUN/pairs_greedy.jsonl $n --weighting none
done
[ -f $O/dpo_greedy_80/model.safetensors ] || python train_dpo.py "${A[@]}" > $O/arms.log 2>&1
M=(); N=()
for a in sftplus:sft+@40 dpo:dpo@40 sftplus_greedy:sft+-greedy@40 dpo_greedy:dpo-greedy@40; do M+=($RUN/${a%%:*}); N+=(${a#*:}); done
M+=($RUN/fr/wdpo_R4); N+=(wdpo@40)
for n in 60 80; do for a in sftplus:sft+ dpo:dpo wdpo:wdpo sftplus_greedy:sft+-greedy dpo_greedy:dpo-greedy; do M+=($O/${a%%:*}_$n); N+=(${a#*:}@$n); done; done
python evaluate.py --models "${M[@]}" --names "${N[@]}" --data $RUN/data/val.jsonl --limit 1000 --max-new-tokens 160 --batch-size 256 --threads 1 --out-dir $O/eval_val > $O/eval.log 2>&1
echo done $RUN
