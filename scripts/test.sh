#!/usr/bin/env bash
# Set up everything, then run the full test suite against the real llama-server and real models.
# Extra arguments go to pytest (e.g. scripts/test.sh -k paths).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RYS_EXTRAS=${RYS_EXTRAS:-dev,eval} bash scripts/setup_env.sh
# The runtime layer-path tests need the patched server too (a no-op once built).
"${RYS_VENV:-.venv}/bin/rys" setup llama-server --patched --backend "${RYS_BACKEND:-cpu}"
"${RYS_VENV:-.venv}/bin/rys" models path gemma3-270m
# Real parts are required: a missing server or model fails the run instead of skipping tests.
export RYS_REQUIRE_REAL=1
exec "${RYS_VENV:-.venv}/bin/python" -m pytest -q "$@"
