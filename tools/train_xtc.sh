#!/usr/bin/env bash
# Seed 003 (XTC) students on SST-2: ternary weights (encoder linears and word embedding), int8
# activations, k of the teacher's 6 layers, one-stage distillation; each exported and evaluated
# (torch fake-quant and golden model) and run on the reference backend. Resumable: a finished
# step is skipped, an interrupted one resumes from its state.pt.
#   tools/train_xtc.sh [STEPS [NAME...]]   (default 250 steps each, XTC recommends far longer;
#                                         NAMEs: only these runs, default all)
set -euo pipefail
cd "$(dirname "$0")/.."
TTACCEL=${TTACCEL:-.venv/bin/ttaccel}
TEACHER=${TEACHER:-build/teacher-sst2-strong/model}
DATA=${DATA:-../shared/data/SST-2}
OUT=${OUT:-build/xtc}
STEPS=${1:-250}
ONLY=("${@:2}")
COMMON=(--teacher "$TEACHER" --data "$DATA" --batch-size 32 --max-length 64 --seed 0
        --threads 1 --group-by-length --no-progress --save-every 50)

run() {  # run NAME BITS KEEP: train, export, evaluate
    local name=$1 bits=$2 keep=$3 art=$OUT/$1.safetensors
    if [ ${#ONLY[@]} -gt 0 ] && [[ ! " ${ONLY[*]} " == *" $name "* ]]; then return; fi
    if [ ! -f "$OUT/$name/result.json" ]; then
        echo "== $name: $(date -u +%FT%TZ)"
        nice -n 10 "$TTACCEL" compress "${COMMON[@]}" --out "$OUT/$name" --scheme xtc \
            --bits "$bits" --keep-layers "$keep" --xtc-embedding --steps "$STEPS" --lr 2e-4 \
            --eval-every "$STEPS"
    fi
    "$TTACCEL" export --student "$OUT/$name/student" --out "$art" > "$OUT/$name-export.json"
    nice -n 10 "$TTACCEL" evaluate --student "$OUT/$name/student" --data "$DATA" \
        --artifact "$art" --json "$OUT/$name-eval.json" --threads 1
    nice -n 10 "$TTACCEL" evaluate --data "$DATA" --artifact "$art" --backend reference \
        --limit 100 --json "$OUT/$name-reference.json" > /dev/null
}

run ternary-k3 ternary 0,2,4
run ternary-k6 ternary 0,1,2,3,4,5
run binary-k3 binary 0,2,4
