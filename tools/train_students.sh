#!/usr/bin/env bash
# The SST-2 student sweep of docs/results.md ("seed 000's compression range"), in two queues
# that run side by side (one CPU core each). Every step is an ordinary `ttaccel` command that
# resumes from its OUT/state.pt, and a finished step (OUT/result.json present) is skipped, so
# rerunning this script after a kill continues where it stopped.
#
#   nohup tools/train_students.sh a > build/students-a.log 2>&1 &
#   nohup tools/train_students.sh b > build/students-b.log 2>&1 &
#
# Needs the strong teacher (build/teacher-sst2-strong/model). Float students first
# (layer-by-layer distillation from TT-SVD), then QAT from the float student at 4, 8 or 2 bits
# with MSE-calibrated scales. Dev evaluations are sparse (an evaluation of a quantized student
# takes about 3 minutes on a loaded core): the float stages every 1000 steps, QAT at its end.
set -euo pipefail
cd "$(dirname "$0")/.."
TTACCEL=${TTACCEL:-.venv/bin/ttaccel}
TEACHER=${TEACHER:-build/teacher-sst2-strong/model}
DATA=${DATA:-../shared/data/SST-2}
OUT=${OUT:-build/students3}
COMMON=(--teacher "$TEACHER" --data "$DATA" --batch-size 32 --max-length 64 --seed 0
        --threads 1 --group-by-length --no-progress --save-every 50)
EMBEDDING=(--embedding-rank 64)  # the TT word embedding; a queue may keep it dense: EMBEDDING=()

step() {  # step NAME ARGS...: one resumable training run, skipped once it has finished
    local name=$1; shift
    if [ -f "$OUT/$name/result.json" ]; then echo "== $name: done"; return; fi
    echo "== $name: $(date -u +%FT%TZ)"
    nice -n 5 "$TTACCEL" compress "${COMMON[@]}" --out "$OUT/$name" "$@"
}

float() {  # float NAME RANK STEPS: layer-by-layer distillation of a float TT student
    step "$1" --rank "$2" "${EMBEDDING[@]}" --method layerwise --layer-steps 150 \
        --steps "$3" --lr 2e-4 --eval-every 1000
}

qat() {  # qat NAME FLOAT_NAME RANK BITS STEPS [SCALE_INIT]: QAT from a float student
    local init=${6:-mse}
    step "$1" --rank "$3" "${EMBEDDING[@]}" --bits "$4" --init-from "$OUT/$2/student" \
        --weight-scale-init "$init" --activation-scale-init "$init" --method layerwise \
        --layer-steps 1 --steps "$5" --lr 1e-4 --eval-every "$5"
}

continued() {  # continued NAME ARTIFACT RANK BITS STEPS LR [ARGS...]: more QAT of an exported student
    local name=$1 base=$2 rank=$3 bits=$4 steps=$5 lr=$6; shift 6
    step "$name" --rank "$rank" --embedding-rank 64 --bits "$bits" --init-from "$base" \
        --weight-scale-init mse --activation-scale-init mse --method layerwise \
        --layer-steps 1 --steps "$steps" --lr "$lr" --eval-every "$steps" "$@"
}

golden() {  # golden NAME: export the quantized student and evaluate torch and golden model
    local art=$OUT/$1.safetensors
    if [ -f "$OUT/$1-eval.json" ]; then echo "== $1 evaluation: done"; return; fi
    "$TTACCEL" export --student "$OUT/$1/student" --out "$art" > "$OUT/$1-export.json"
    nice -n 5 "$TTACCEL" evaluate --student "$OUT/$1/student" --data "$DATA" --artifact "$art" \
        --json "$OUT/$1-eval.json" --threads 1
}

# Wait for the teacher's training to finish (it writes result.json next to model/ last).
until [ -f "$(dirname "$TEACHER")/result.json" ]; do sleep 60; done

case "${1:-}" in
    a)
        float r64e64-fp32 64 2000
        qat r64e64-4 r64e64-fp32 64 4 700 && golden r64e64-4
        qat r64e64-8 r64e64-fp32 64 8 400 && golden r64e64-8
        qat r64e64-2 r64e64-fp32 64 2 800 && golden r64e64-2
        # ablation: the old max|x|/qmax scale initialisation, everything else equal
        qat r64e64-4-maxinit r64e64-fp32 64 4 700 max && golden r64e64-4-maxinit
        ;;
    b)
        float r128e64-fp32 128 2000
        qat r128e64-4 r128e64-fp32 128 4 700 && golden r128e64-4
        float r40e64-fp32 40 1600
        qat r40e64-4 r40e64-fp32 40 4 700 && golden r40e64-4
        float r18e64-fp32 18 1600
        qat r18e64-4 r18e64-fp32 18 4 700 && golden r18e64-4
        ;;
    c|d|e)
        # Queues c-e start from the bundled INT4 artifact as it was at commit 8b75368 (the
        # r64e64-4 row; the bundled file has since been replaced by c's result).
        BASE=$OUT/r64e64-4-bundled-8b75368.safetensors
        mkdir -p "$OUT"
        [ -f "$BASE" ] || git show 8b75368:ttaccel/data/sst2-minilm-tt-int4.safetensors > "$BASE"
        ;;&
    c)
        # The bundled INT4 student (r64e64-4, 700 QAT steps) trained 1500 steps more: its
        # float student is not kept, so it starts from the artifact's cores read back.
        continued r64e64-4-more "$BASE" 64 4 1500 1e-4 \
            && golden r64e64-4-more
        ;;
    d)
        # seed 000's 45x point: rank 40 from the bundled rank-64 INT4 student (its matrices
        # re-decomposed at rank 40, then QAT), instead of a float student from the teacher
        continued r40e64-4-from64 "$BASE" 40 4 1000 1e-4 \
            && golden r40e64-4-from64
        ;;
    e)
        # seed 000's 88x range, the same way at rank 18 (107.8x encoder-linear)
        continued r18e64-4-from64 "$BASE" 18 4 800 1e-4 \
            && golden r18e64-4-from64
        ;;
    f)
        # The bundled INT4 student of commit 4c846ba (queue c's r64e64-4-more) trained 2500
        # steps more, from its artifact's cores read back.
        BASE=$OUT/r64e64-4-bundled-4c846ba.safetensors
        mkdir -p "$OUT"
        [ -f "$BASE" ] || git show 4c846ba:ttaccel/data/sst2-minilm-tt-int4.safetensors > "$BASE"
        continued r64e64-4-more2 "$BASE" 64 4 2500 1e-4 \
            && golden r64e64-4-more2
        ;;
    g|h)
        # The bundled INT4 student of commit e7eb667 (queue f's r64e64-4-more2) requantized to
        # INT2 (g) or ternary (h) cores and trained 600 QAT steps: seed 000's 2-bit point and
        # TT with ternary cores (issue 11 item 4), from the artifact's cores read back.
        BASE=$OUT/r64e64-4-bundled-e7eb667.safetensors
        mkdir -p "$OUT"
        [ -f "$BASE" ] || git show e7eb667:ttaccel/data/sst2-minilm-tt-int4.safetensors > "$BASE"
        if [ "$1" = g ]; then name=r64e64-2-from4 bits=2; else name=r64e64-t-from4 bits=ternary; fi
        continued "$name" "$BASE" 64 "$bits" 600 1e-4 && golden "$name"
        ;;
    i)
        # The bundled INT4 student of commit e7eb667 (queue f's r64e64-4-more2, 86.81%) trained
        # 1500 steps more at half the learning rate, on another data order (seed 1).
        BASE=$OUT/r64e64-4-bundled-e7eb667.safetensors
        mkdir -p "$OUT"
        [ -f "$BASE" ] || git show e7eb667:ttaccel/data/sst2-minilm-tt-int4.safetensors > "$BASE"
        continued r64e64-4-more3 "$BASE" 64 4 1500 5e-5 --seed 1 && golden r64e64-4-more3
        ;;
    j)
        # The same start as i, 1000 steps at queue f's learning rate (1e-4), data seed 1.
        BASE=$OUT/r64e64-4-bundled-e7eb667.safetensors
        mkdir -p "$OUT"
        [ -f "$BASE" ] || git show e7eb667:ttaccel/data/sst2-minilm-tt-int4.safetensors > "$BASE"
        continued r64e64-4-more4 "$BASE" 64 4 1000 1e-4 --seed 1 && golden r64e64-4-more4
        ;;
    k)
        # A different recipe for the bundled target: a float rank-64 student distilled 2.5x
        # as long as queue a's (5,000 steps; queue a's scored 86.47 after 2,000), then one
        # QAT run of 2,000 steps from it (no restart from an artifact).
        float r64e64-fp32-long 64 5000
        qat r64e64-4-long r64e64-fp32-long 64 4 2000 && golden r64e64-4-long
        ;;
    l)
        # Queue k's recipe at seed 000's 45x point: a rank-40 float student distilled 5,000
        # steps (queue b's: 1,600), then 2,000 QAT steps at 4 bits.
        float r40e64-fp32-long 40 5000
        qat r40e64-4-long r40e64-fp32-long 40 4 2000 && golden r40e64-4-long
        ;;
    m)
        # Queue k's recipe at seed 000's 15x point: a rank-128 float student distilled 5,000
        # steps (queue b's: 2,000), then 2,000 QAT steps at 4 bits.
        float r128e64-fp32-long 128 5000
        qat r128e64-4-long r128e64-fp32-long 128 4 2000 && golden r128e64-4-long
        ;;
    n)
        # Queue m with the word embedding kept dense (float32, 46.9 MB: not for the bundled
        # model): what the TT word embedding costs at the 15x encoder-linear point.
        EMBEDDING=()
        float r128-fp32-long 128 5000
        qat r128-4-long r128-fp32-long 128 4 2000 && golden r128-4-long
        ;;
    o)
        # Queue n's dense word embedding at seed 000's 45x point (queue l's rank 40).
        EMBEDDING=()
        float r40-fp32-long 40 5000
        qat r40-4-long r40-fp32-long 40 4 2000 && golden r40-4-long
        ;;
    *)
        echo "usage: $0 a|b|c|d|e|f|g|h|i|j|k|l|m|n|o   (the queues of the sweep)" >&2
        exit 2
        ;;
esac
