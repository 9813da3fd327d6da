#!/usr/bin/env bash
# Copy the small JSON records of finished training runs (result, evaluation, export size) from
# build/ into docs/runs/, where tools/sst2-students3.json (the models-accuracy report's manifest)
# reads them: build/ does not survive a fresh machine, the records should.
#   tools/snapshot_runs.sh && python -m ttaccel.models.report tools/sst2-students3.json --intro ...
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/runs/students3 docs/runs/teacher-sst2-strong
cp build/teacher-sst2-strong/result.json docs/runs/teacher-sst2-strong/teacher-sst2-strong.result.json
for dir in build/students3/*/; do
    name=$(basename "$dir")
    [ -f "$dir/result.json" ] && cp "$dir/result.json" "docs/runs/students3/$name.result.json"
done
for f in build/students3/*-eval.json build/students3/*-export.json; do
    [ -f "$f" ] && cp "$f" docs/runs/students3/
done
ls docs/runs/students3
