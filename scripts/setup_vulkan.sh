#!/usr/bin/env bash
# The system packages a Vulkan build of llama-server and its tests need: the shader compiler, the
# loader and headers, the SPIR-V headers, and Mesa's drivers (lavapipe: a real Vulkan device that runs
# on the CPU, so the Vulkan suite runs on machines without a GPU). Installs them where it can (root with
# apt-get); elsewhere it names what is missing. Idempotent.
set -euo pipefail
PACKAGES=(glslc libvulkan-dev spirv-headers mesa-vulkan-drivers)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing ${missing[*]} (Vulkan build and lavapipe device)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "error: the Vulkan build needs these packages: ${missing[*]}" >&2
  echo "  fix: sudo apt-get install ${missing[*]}   (or run with RYS_VULKAN=0 to skip the Vulkan suite)" >&2
  exit 2
fi
