# Settings shared by the cloud scripts (sourced, not run); override any of them in the environment.
# MODEL: alias or path to a GGUF. BACKEND: cuda | rocm | vulkan (cpu works too, for a dry run).
MODEL=${MODEL:-smollm2}
BACKEND=${BACKEND:-cuda}
OUT=${OUT:-$PWD/rys-cloud}
PROBES=${PROBES:-math,reasoning}
TASKS=${TASKS:-rys_arc_challenge,rys_hellaswag,rys_gsm8k_cot}
LIMIT=${LIMIT:-}                      # documents per task; empty = all
SERVER_ARGS=${SERVER_ARGS:--ngl 999}  # every layer on the GPU
VENV=${RYS_VENV:-$PWD/.venv}
RYS="$VENV/bin/rys"
NAME=$(basename "${MODEL%.gguf}")
RESULTS="$OUT/sweep/$NAME.sweep.jsonl"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# RYS_RAY: run the sweep's workers on Ray (`rys sweep --ray`): "local" (a private cluster of this box),
# "auto" (a cluster started with `ray start`), or HOST:PORT. Empty: local when the box has 2+ GPUs.
RYS_RAY=${RYS_RAY:-}

# GPUs this box has (NVIDIA or AMD), 0 when none can be counted.
gpu_count() {
  if command -v nvidia-smi >/dev/null; then nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true
  elif command -v rocm-smi >/dev/null; then rocm-smi --showid 2>/dev/null | grep -c 'GPU\[' || true
  else echo 0; fi
}

# The binary step 1 built for $BACKEND, unless RYS_LLAMA_SERVER names another one.
llama_server_bin() {
  if [ -n "${RYS_LLAMA_SERVER:-}" ]; then
    echo "$RYS_LLAMA_SERVER"
  else
    echo "$("$VENV/bin/python" -c "from rys.llama.locate import build_dir; print(build_dir('$BACKEND'))")/bin/llama-server"
  fi
}
