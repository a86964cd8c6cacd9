#!/usr/bin/env bash
# Set up everything, then run the main job on the built-in demo model (SmolLM2-135M):
# check the server, then a small real RYS sweep that writes a heatmap to runs/quickstart/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
VENV=${RYS_VENV:-.venv}
echo "== rys doctor"
"$VENV/bin/rys" doctor
echo "== a small real RYS sweep of SmolLM2-135M (a few minutes on 2 CPU cores; rerun to resume)"
"$VENV/bin/rys" sweep smollm2 --probe math-logprob --limit 8 --block-sizes "2 3 4" --stride 2 \
    --results runs/quickstart/results.jsonl --report-dir runs/quickstart
echo "== heatmaps, ranking.tsv and summary.txt are in runs/quickstart/"
