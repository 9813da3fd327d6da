#!/usr/bin/env bash
# Seed 001 (Tucker decomposition with a shared matrix bank) students on SST-2: every encoder
# linear cut into 384 x 384 blocks V S_b U^T of one model-wide bank (rank 64), initialised from
# the teacher's weights (SVD), the word embedding a rank-64 TT embedding as the TT students',
# INT4 bank codes (int8 mix and activations), QAT with one-stage distillation from the teacher
# (hidden states, attention, logits and the task loss from the first step: every layer shares
# the bank, so distilling one layer after the other would move the earlier layers' weights).
# Each exported and evaluated, torch fake-quant and golden model. Resumable: a finished step is
# skipped, an interrupted training resumes from its OUT/state.pt.
#   nohup setsid nice -n 5 tools/train_tucker.sh > build/tucker.log 2>&1 &
# NAMES="tk64-l72-int4" runs only those; STEPS=N overrides the step counts below (what fitted
# the session's remaining time); THREADS=N sets torch's threads (default 1).
# Waits for the teacher (build/teacher-sst2-strong/result.json is written last).
set -euo pipefail
cd "$(dirname "$0")/.."
TTACCEL=${TTACCEL:-.venv/bin/ttaccel}
TEACHER=${TEACHER:-build/teacher-sst2-strong/model}
DATA=${DATA:-../shared/data/SST-2}
OUT=${OUT:-build/tucker}
STEPS=${STEPS:-}
THREADS=${THREADS:-1}
NAMES=${NAMES:-tk64-l72-int4 tk64-l24-int4}
COMMON=(--teacher "$TEACHER" --data "$DATA" --batch-size 32 --max-length 64 --seed 0
        --threads "$THREADS" --group-by-length --no-progress --save-every 50)

run() {  # run NAME RANK BANK_SIZE SCOPE BITS STEPS: train, export, evaluate
    local name=$1 rank=$2 size=$3 scope=$4 bits=$5 steps=${STEPS:-$6} art=$OUT/$1.safetensors
    if [ ! -f "$OUT/$name/result.json" ]; then
        echo "== $name: $(date -u +%FT%TZ)"
        "$TTACCEL" compress "${COMMON[@]}" --out "$OUT/$name" --scheme tucker --rank "$rank" \
            --bank-size "$size" --bank-scope "$scope" --bits "$bits" --embedding-rank 64 \
            --method onestage --weight-scale-init mse --activation-scale-init mse \
            --steps "$steps" --lr 1e-4 --eval-every "$steps"
    fi
    if [ ! -f "$OUT/$name-eval.json" ]; then
        echo "== $name export + evaluation: $(date -u +%FT%TZ)"
        "$TTACCEL" export --student "$OUT/$name/student" --out "$art" > "$OUT/$name-export.json"
        "$TTACCEL" evaluate --student "$OUT/$name/student" --data "$DATA" --artifact "$art" \
            --json "$OUT/$name-eval.json" --threads "$THREADS"
    fi
    echo "== $name done: $(date -u +%FT%TZ)"
}

until [ -f "$(dirname "$TEACHER")/result.json" ]; do sleep 60; done

for name in $NAMES; do
    case $name in
        tk64-l72-int4) run "$name" 64 72 model 4 500 ;;  # 72 cores for 72 blocks: no sharing
        tk64-l24-int4) run "$name" 64 24 model 4 500 ;;  # 24 cores shared by 72 blocks
        tk64-l72-int8) run "$name" 64 72 model 8 500 ;;
        # one bank per encoder layer (its own V and U), 12 cores for its 12 blocks
        tk64-layer-int8) run "$name" 64 12 layer 8 1500 ;;
        tk64-layer-int4) run "$name" 64 12 layer 4 1500 ;;
        *) echo "unknown run $name" >&2; exit 2 ;;
    esac
done
