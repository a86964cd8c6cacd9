#!/usr/bin/env bash
# The RYS sweep over (i, j) blocks, scored by probes; resumable: run it again to continue.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
mkdir -p "$OUT/sweep"
# SWEEP_ARGS is split on purpose (several options, e.g. "--stride 2 --sparse-first").
# shellcheck disable=SC2086
"$RYS" sweep "$MODEL" --probe "$PROBES" --results "$RESULTS" --llama-server "$(llama_server_bin)" \
  --server-args "$SERVER_ARGS" --no-progress ${SWEEP_ARGS:-}
