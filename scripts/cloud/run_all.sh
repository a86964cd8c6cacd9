#!/usr/bin/env bash
# setup -> sweep -> validate -> pack, timing each step (times land in $OUT/timings.txt).
# Example: MODEL=/data/model.gguf BACKEND=cuda bash scripts/cloud/run_all.sh
set -euo pipefail
HERE=$(dirname "${BASH_SOURCE[0]}")
source "$HERE/env.sh"
mkdir -p "$OUT"
for step in ${STEPS:-1_setup 2_sweep 3_validate 4_pack}; do
  start=$(date +%s)
  bash "$HERE/$step.sh"
  echo "$step $(( $(date +%s) - start )) s" | tee -a "$OUT/timings.txt"
done
