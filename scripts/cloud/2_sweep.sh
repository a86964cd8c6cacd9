#!/usr/bin/env bash
# The RYS sweep over (i, j) blocks, scored by probes; resumable: run it again to continue.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
mkdir -p "$OUT/sweep"
# One llama-server per GPU: on a box with several GPUs, Ray actors (one GPU each) share the sweep, and
# this process alone writes the results file.
RAY_ARGS=()
if [ -n "$RYS_RAY" ]; then
  RAY_ARGS=(--ray "$RYS_RAY")
elif [ "$(gpu_count)" -gt 1 ]; then
  RAY_ARGS=(--ray local)
fi
# SWEEP_ARGS is split on purpose (several options, e.g. "--stride 2 --sparse-first").
# shellcheck disable=SC2086
"$RYS" sweep "$MODEL" --probe "$PROBES" --results "$RESULTS" --llama-server "$(llama_server_bin)" \
  --server-args "$SERVER_ARGS" --no-progress ${RAY_ARGS[@]+"${RAY_ARGS[@]}"} ${SWEEP_ARGS:-}
