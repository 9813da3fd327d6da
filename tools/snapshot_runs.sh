#!/usr/bin/env bash
# Copy the small JSON records of finished training runs (result, evaluation, export size) from
# build/ into docs/runs/, where tools/sst2-students3.json (the models-accuracy report's manifest)
# reads them: build/ does not survive a fresh machine, the records should.
#   tools/snapshot_runs.sh && python -m ttaccel.models.report tools/sst2-students3.json --intro ...
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/runs/students3 docs/runs/teacher-sst2-strong
# The first teacher's record stays; a retrained teacher (a fresh machine: same command, not
# bit-identical across machines) is kept beside it as the next free .rerunN record, since later
# students distil from it (a record equal to one already kept is not copied again).
teacher=build/teacher-sst2-strong/result.json
if [ -f "$teacher" ]; then
    kept=docs/runs/teacher-sst2-strong/teacher-sst2-strong
    new=1
    for f in "$kept".result.json "$kept".rerun*.result.json; do
        [ -f "$f" ] && cmp -s "$teacher" "$f" && new=0
    done
    if [ "$new" = 1 ]; then
        if [ ! -f "$kept.result.json" ]; then dest=$kept.result.json
        elif [ ! -f "$kept.rerun.result.json" ]; then dest=$kept.rerun.result.json
        else n=2; while [ -f "$kept.rerun$n.result.json" ]; do n=$((n + 1)); done
             dest=$kept.rerun$n.result.json
        fi
        cp "$teacher" "$dest"
    fi
fi
for dir in build/students3/*/; do
    name=$(basename "$dir")
    [ -f "$dir/result.json" ] && cp "$dir/result.json" "docs/runs/students3/$name.result.json"
done
for f in build/students3/*-eval.json build/students3/*-export.json; do
    [ -f "$f" ] && cp "$f" docs/runs/students3/
done
# the other schemes' runs (tools/train_nm.sh, train_xtc.sh, train_tucker.sh): the same records
for scheme in nm xtc tucker; do
    [ -d "build/$scheme" ] || continue
    mkdir -p "docs/runs/$scheme"
    for dir in build/$scheme/*/; do
        [ -f "$dir/result.json" ] && cp "$dir/result.json" "docs/runs/$scheme/$(basename "$dir").result.json"
    done
    for f in build/$scheme/*-eval.json build/$scheme/*-export.json build/$scheme/*-reference.json; do
        [ -f "$f" ] && cp "$f" "docs/runs/$scheme/"
    done
done
ls docs/runs/students3 docs/runs/nm 2>/dev/null
