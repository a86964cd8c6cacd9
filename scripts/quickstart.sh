#!/usr/bin/env bash
# Set up everything, then run the main job on the built-in demo model (SmolLM2-135M):
# check the server, then a small real RYS sweep that writes a heatmap to runs/quickstart/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
VENV=${RYS_VENV:-.venv}
echo "== rys doctor"
"$VENV/bin/rys" doctor
