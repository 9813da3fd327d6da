#!/usr/bin/env bash
# Seed 002 (NxMiFormer) students on SST-2: every encoder linear pruned N:M along its input
# dimension (one-shot magnitude pruning of the teacher's weights), quantized at 8 or 4 bits
# with int8 activations, then QAT with one-stage distillation from the teacher; each exported
# (N:M values + indices) and evaluated, torch fake-quant and golden model. Resumable: a
# finished step is skipped, an interrupted training resumes from its OUT/state.pt.
#   nohup setsid nice -n 5 tools/train_nm.sh > build/nm.log 2>&1 &
# Steps per run are below (600 for 2:4 INT8, 400 for the others: what fitted the shared
# machine's time); STEPS=N overrides them all; NAMES="nm24-int4 nm14-int8" runs only those
# (default all, in the order below).
# Waits for the teacher (build/teacher-sst2-strong/result.json is written last).
set -euo pipefail
cd "$(dirname "$0")/.."
TTACCEL=${TTACCEL:-.venv/bin/ttaccel}
TEACHER=${TEACHER:-build/teacher-sst2-strong/model}
DATA=${DATA:-../shared/data/SST-2}
OUT=${OUT:-build/nm}
STEPS=${STEPS:-}
NAMES=${NAMES:-nm24-int8 nm24-int4 nm14-int8}
COMMON=(--teacher "$TEACHER" --data "$DATA" --batch-size 32 --max-length 64 --seed 0
        --threads 1 --group-by-length --no-progress --save-every 50)

run() {  # run NAME PATTERN BITS STEPS: train, export, evaluate
    local name=$1 pattern=$2 bits=$3 steps=${STEPS:-$4} art=$OUT/$1.safetensors
    [[ " $NAMES " == *" $name "* ]] || return 0
    if [ ! -f "$OUT/$name/result.json" ]; then
        echo "== $name: $(date -u +%FT%TZ)"
        "$TTACCEL" compress "${COMMON[@]}" --out "$OUT/$name" --scheme nm --nm "$pattern" \
            --bits "$bits" --nm-mode oneshot --method onestage --weight-scale-init mse \
            --activation-scale-init mse --steps "$steps" --lr 1e-4 \
            --eval-every "$steps"
    fi
    if [ ! -f "$OUT/$name-eval.json" ]; then
        echo "== $name export + evaluation: $(date -u +%FT%TZ)"
        "$TTACCEL" export --student "$OUT/$name/student" --out "$art" > "$OUT/$name-export.json"
        "$TTACCEL" evaluate --student "$OUT/$name/student" --data "$DATA" --artifact "$art" \
            --json "$OUT/$name-eval.json" --threads 1
    fi
    echo "== $name done: $(date -u +%FT%TZ)"
}

until [ -f "$(dirname "$TEACHER")/result.json" ]; do sleep 60; done

reference() {  # reference NAME LIMIT: the host driver on the reference backend, first LIMIT
    local name=$1 limit=$2                # dev sentences, logits compared with the golden model
    [[ " $NAMES " == *" $name "* ]] || return 0
    if [ ! -f "$OUT/$name-reference.json" ]; then
        "$TTACCEL" evaluate --data "$DATA" --artifact "$OUT/$name.safetensors" \
            --backend reference --limit "$limit" --json "$OUT/$name-reference.json" > /dev/null
    fi
}

run nm24-int8 2:4 8 600
run nm24-int4 2:4 4 400
run nm14-int8 1:4 8 400
reference nm24-int4 20
