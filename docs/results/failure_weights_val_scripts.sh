### fr.sh
#!/usr/bin/env bash
# failure-rate weights lever, val only: fr.sh RUN SEED  (code: /work/main working tree)
set -euo pipefail
RUN=$1; SEED=$2; CODE=/work/main; O=$RUN/fr; mkdir -p $O
cd $CODE
HOLD="--heldout-frac 0.1 --seed $SEED --max-pairs-per-problem 1 --keep-absurd"
for q in 0 1 2; do
  [ -f $O/pairs_q$q.jsonl ] || python mine.py $RUN/scored.jsonl -o $O/pairs_q$q.jsonl $HOLD --heldout-out $O/heldout_q$q.jsonl --negatives all --failure-power $q --failure-kind any --min-weight 0.05 > $O/mine_q$q.log  # the defaults when it ran (c5f4845), pinned
done
python - $RUN $O <<'PY'
import json,sys
run,o=sys.argv[1:]
ids=lambda f:[json.loads(l)['id'] for l in open(f)]
base=ids(run+'/pairs.jsonl')
for q in (0,1,2):
    assert ids(f'{o}/pairs_q{q}.jsonl')==base, q
print('pair ids identical to', run+'/pairs.jsonl')
PY
A=(); add(){ local d=$1 p=$2; shift 2; [ ${#A[@]} = 0 ] || A+=(--then); A+=(--pairs $O/$p --model $RUN/sft --out-dir $O/$d --max-steps 40 --seed $SEED --threads 1 --lr 3e-5 --sft-alpha 1 "$@"); }
add wdpo_q0 pairs_q0.jsonl --weighting verifier
add wdpo_q1 pairs_q1.jsonl --weighting verifier
add wdpo_q1_shuf pairs_q1.jsonl --weighting shuffled
add wdpo_q2 pairs_q2.jsonl --weighting verifier
add wdpo_q2_shuf pairs_q2.jsonl --weighting shuffled
[ -f $O/wdpo_q2_shuf/model.safetensors ] || python train_dpo.py "${A[@]}" > $O/arms.log 2>&1
M=(); N=()
for a in sft:sft sftplus:sft+ dpo:dpo wdpo:wdpo-old wdpo_shuf:wdpo-old-shuffled; do M+=($RUN/${a%%:*}); N+=(${a#*:}); done
for a in wdpo_q0:wdpo-q0 wdpo_q1:wdpo-q1 wdpo_q1_shuf:wdpo-q1-shuffled wdpo_q2:wdpo-q2 wdpo_q2_shuf:wdpo-q2-shuffled; do M+=($O/${a%%:*}); N+=(${a#*:}); done
python evaluate.py --models "${M[@]}" --names "${N[@]}" --data $RUN/data/val.jsonl --limit 1000 --max-new-tokens 160 --batch-size 256 --threads 1 --out-dir $O/eval_val > $O/eval.log 2>&1
echo done $RUN

### wn.sh
#!/usr/bin/env bash
# weighted-NLL lever, val only: wn.sh RUN SEED (after fr.sh)
set -euo pipefail
RUN=$1; SEED=$2; CODE=/work/main; O=$RUN/fr
cd $CODE
A=(); add(){ local d=$1 p=$2; shift 2; [ ${#A[@]} = 0 ] || A+=(--then); A+=(--pairs $O/$p --model $RUN/sft --out-dir $O/$d --max-steps 40 --seed $SEED --threads 1 --lr 3e-5 --sft-alpha 1 "$@"); }
add wsftplus_q1 pairs_q1.jsonl --loss sft --weighting verifier --weighted-nll
add wdpo_q1_wn pairs_q1.jsonl --weighting verifier --weighted-nll
add wdpo_q1_wn_shuf pairs_q1.jsonl --weighting shuffled --weighted-nll
[ -f $O/wdpo_q1_wn_shuf/model.safetensors ] || python train_dpo.py "${A[@]}" > $O/arms_wn.log 2>&1
M=(); N=()
for a in sftplus:sft+ dpo:dpo; do M+=($RUN/${a%%:*}); N+=(${a#*:}); done
for a in wdpo_q1:wdpo-q1 wsftplus_q1:wsft+ wdpo_q1_wn:wdpo-wn wdpo_q1_wn_shuf:wdpo-wn-shuffled; do M+=($O/${a%%:*}); N+=(${a#*:}); done
python evaluate.py --models "${M[@]}" --names "${N[@]}" --data $RUN/data/val.jsonl --limit 1000 --max-new-tokens 160 --batch-size 256 --threads 1 --out-dir $O/eval_val_wn > $O/eval_wn.log 2>&1
echo done $RUN

### rc.sh
#!/usr/bin/env bash
# recurrence (same-answer failure rate) lever, val only: rc.sh RUN SEED (after fr.sh)
set -euo pipefail
RUN=$1; SEED=$2; CODE=/work/main; O=$RUN/fr
cd $CODE
HOLD="--heldout-frac 0.1 --seed $SEED --max-pairs-per-problem 1 --keep-absurd"
for cfg in "F2 any 2" "R2 same-answer 2" "R4 same-answer 4"; do set -- $cfg
  [ -f $O/pairs_$1.jsonl ] || python mine.py $RUN/scored.jsonl -o $O/pairs_$1.jsonl $HOLD --heldout-out $O/heldout_$1.jsonl --negatives all --failure-kind $2 --failure-power $3 --min-weight 0.001 > $O/mine_$1.log
done
A=(); add(){ local d=$1 p=$2; shift 2; [ ${#A[@]} = 0 ] || A+=(--then); A+=(--pairs $O/$p --model $RUN/sft --out-dir $O/$d --max-steps 40 --seed $SEED --threads 1 --lr 3e-5 --sft-alpha 1 "$@"); }
for c in F2 R2 R4; do add wdpo_$c pairs_$c.jsonl --weighting verifier; add wdpo_${c}_shuf pairs_$c.jsonl --weighting shuffled; done
[ -f $O/wdpo_R4_shuf/model.safetensors ] || python train_dpo.py "${A[@]}" > $O/arms_rc.log 2>&1
M=(); N=()
for a in sftplus:sft+ dpo:dpo sftplus_greedy:sft+-greedy dpo_greedy:dpo-greedy; do M+=($RUN/${a%%:*}); N+=(${a#*:}); done
for a in wdpo_q1:wdpo-q1; do M+=($O/${a%%:*}); N+=(${a#*:}); done
for c in F2 R2 R4; do M+=($O/wdpo_$c $O/wdpo_${c}_shuf); N+=(wdpo-$c wdpo-$c-shuffled); done
python evaluate.py --models "${M[@]}" --names "${N[@]}" --data $RUN/data/val.jsonl --limit 1000 --max-new-tokens 160 --batch-size 256 --threads 1 --out-dir $O/eval_val_rc > $O/eval_rc.log 2>&1
echo done $RUN

### r4wn.sh
#!/usr/bin/env bash
# R4 + weighted NLL, and R8: val only: r4wn.sh RUN SEED (after rc.sh)
set -euo pipefail
RUN=$1; SEED=$2; CODE=/work/main; O=$RUN/fr
cd $CODE
HOLD="--heldout-frac 0.1 --seed $SEED --max-pairs-per-problem 1 --keep-absurd"
[ -f $O/pairs_R8.jsonl ] || python mine.py $RUN/scored.jsonl -o $O/pairs_R8.jsonl $HOLD --heldout-out $O/heldout_R8.jsonl --negatives all --failure-kind same-answer --failure-power 8 --min-weight 0.001 > $O/mine_R8.log
A=(); add(){ local d=$1 p=$2; shift 2; [ ${#A[@]} = 0 ] || A+=(--then); A+=(--pairs $O/$p --model $RUN/sft --out-dir $O/$d --max-steps 40 --seed $SEED --threads 1 --lr 3e-5 --sft-alpha 1 "$@"); }
add wsftplus_R4 pairs_R4.jsonl --loss sft --weighting verifier --weighted-nll
add wdpo_R4_wn pairs_R4.jsonl --weighting verifier --weighted-nll
add wdpo_R4_wn_shuf pairs_R4.jsonl --weighting shuffled --weighted-nll
add wdpo_R8 pairs_R8.jsonl --weighting verifier
[ -f $O/wdpo_R8/model.safetensors ] || python train_dpo.py "${A[@]}" > $O/arms_r4wn.log 2>&1
M=(); N=()
for a in sftplus:sft+ dpo:dpo sftplus_greedy:sft+-greedy dpo_greedy:dpo-greedy; do M+=($RUN/${a%%:*}); N+=(${a#*:}); done
for a in wdpo_R4:wdpo-R4 wdpo_R4_shuf:wdpo-R4-shuffled wsftplus_R4:wsft+-R4 wdpo_R4_wn:wdpo-R4-wn wdpo_R4_wn_shuf:wdpo-R4-wn-shuffled wdpo_R8:wdpo-R8; do M+=($O/${a%%:*}); N+=(${a#*:}); done
python evaluate.py --models "${M[@]}" --names "${N[@]}" --data $RUN/data/val.jsonl --limit 1000 --max-new-tokens 160 --batch-size 256 --threads 1 --out-dir $O/eval_val_r4wn > $O/eval_r4wn.log 2>&1
echo done $RUN

### merge.py
# merge several evaluate.py results.json of one run (same val problems) into one: union of arms
import json, sys
out, files = sys.argv[1], sys.argv[2:]
base = json.load(open(files[0]))
ids = set(base["near_miss_slice"]["problem_ids"])
for f in files[1:]:
    d = json.load(open(f))
    assert d["data"] == base["data"] and d["n_problems"] == base["n_problems"]
    for k in ("models", "metrics", "finish_reasons", "predictions"):
        for name, v in d[k].items():
            if name in base[k]:
                if k == "predictions":
                    assert [p["completion"] for p in v] == [p["completion"] for p in base[k][name]], (f, name)
                continue
            base[k][name] = v
    ids |= set(d["near_miss_slice"]["problem_ids"])
base["near_miss_slice"]["problem_ids"] = sorted(ids)
import os; os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump(base, open(out, "w"))

