#!/usr/bin/env bash
# Set up everything, then run the full test suite against the real llama-server and real models.
# Extra arguments go to pytest (e.g. scripts/test.sh -k paths).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RYS_EXTRAS=${RYS_EXTRAS:-dev,eval} bash scripts/setup_env.sh
# The suite compares the stock server (what a user's own llama.cpp build is) with the patched one
# that setup_env.sh built; with ccache the second build recompiles only the patched files.
"${RYS_VENV:-.venv}/bin/rys" setup llama-server --backend "${RYS_BACKEND:-cpu}"
# The Vulkan suite, on a real Vulkan device (Mesa's lavapipe where there is no GPU), one flag away:
# RYS_VULKAN=0 skips its build and its tests.
if [ "${RYS_VULKAN:-1}" != 0 ]; then
  bash scripts/setup_vulkan.sh
  "${RYS_VENV:-.venv}/bin/rys" setup llama-server --patched --backend vulkan
  export RYS_VULKAN_SUITE=1
fi
# The sliding-window model and the qwen2 model the suite also runs (the tuned-lens tests fit Qwen too).
"${RYS_VENV:-.venv}/bin/rys" models path gemma3-270m
"${RYS_VENV:-.venv}/bin/rys" models path qwen2.5-coder-0.5b
# Real parts are required: a missing server or model fails the run instead of skipping tests.
export RYS_REQUIRE_REAL=1
exec "${RYS_VENV:-.venv}/bin/python" -m pytest -q "$@"
