#!/usr/bin/env bash
# Validate the sweep's best config against the base model on real benchmarks, with a paired verdict.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
mkdir -p "$OUT/eval"
BEST=${BEST_PATH:-$("$RYS" export "$RESULTS" --config best --format path)}
echo "best config: $BEST" | tee "$OUT/eval/best_path.txt"
# shellcheck disable=SC2086
"$RYS" eval "$MODEL" --path "$BEST" --tasks "$TASKS" ${LIMIT:+--limit "$LIMIT"} --out "$OUT/eval" \
  --llama-server "$(llama_server_bin)" --server-args "$SERVER_ARGS" ${EVAL_ARGS:-} | tee "$OUT/eval/verdict.txt"
# The same comparison as JSON, for scripts reading the archive.
MODIFIED=$(grep '^run: ' "$OUT/eval/verdict.txt" | tail -n 1 | cut -c6-)
"$RYS" compare "$OUT/eval/base" "$MODIFIED" --json "$OUT/eval/compare.json" >/dev/null
