#!/usr/bin/env bash
# One archive with the sweep results and report, the eval runs (results + samples), the verdict and
# a description of the machine, so numbers can be read later next to what produced them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
mkdir -p "$OUT"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -srm), $(nproc) cores"
  echo "model: $MODEL  backend: $BACKEND  server args: $SERVER_ARGS"
  "$RYS" --version 2>/dev/null || true
  "$(llama_server_bin)" --version 2>&1 | head -n 4 || true
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  command -v rocm-smi >/dev/null && rocm-smi --showproductname
  true
} > "$OUT/machine.txt"
ARCHIVE="$PWD/rys-$NAME-$(date -u +%Y%m%dT%H%M%SZ).tar.gz"
tar -czf "$ARCHIVE.tmp" -C "$(dirname "$OUT")" "$(basename "$OUT")"
mv "$ARCHIVE.tmp" "$ARCHIVE"
echo "packed $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1))"
