"""What the host CPU is, as far as llama.cpp's CPU kernels care: vendor, model, and the instruction-set
extensions that pick kernels (AVX2, AVX-512, AMX). Read from /proc/cpuinfo; empty elsewhere."""

from __future__ import annotations

import functools
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# The flags /proc/cpuinfo spells for the extensions that change which ggml kernels run.
AMX_FLAGS = ("amx_tile", "amx_int8", "amx_bf16")
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", *AMX_FLAGS)
# ggml compiles its AMX kernels whenever the compiler targets AMX (-march=native on an AMX CPU). They
# crash llama.cpp b11434 in ggml_backend_amx_mul_mat on Sapphire Rapids (upstream issue 20824), so rys
# builds keep the rest of the native instruction set and turn these three off. GCC and Clang both let an
# explicit -mno-* win over -march=native whatever the order, which matters because ggml appends
# -march=native after CMAKE_<LANG>_FLAGS.
NO_AMX_COMPILER_FLAGS = ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")


@dataclass(frozen=True)
class CpuInfo:
    vendor: str
    model: str
    flags: frozenset[str]

    @property
    def has_amx(self) -> bool:
        return any(f in self.flags for f in AMX_FLAGS)

    def features_line(self) -> str:
        shown = [f for f in REPORTED_FLAGS if f in self.flags]
        return ", ".join(shown) if shown else "none of " + ", ".join(REPORTED_FLAGS)


def parse_cpuinfo(text: str) -> CpuInfo:
    """The first processor's vendor, model name and flags from /proc/cpuinfo's text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    # x86 says "flags", ARM "Features"
    flags = fields.get("flags") or fields.get("Features") or ""
    return CpuInfo(vendor=fields.get("vendor_id", fields.get("CPU implementer", "unknown")),
                   model=fields.get("model name", fields.get("Model", "unknown")),
                   flags=frozenset(flags.split()))


@functools.lru_cache(maxsize=1)
def host_cpu(cpuinfo: str = "/proc/cpuinfo") -> CpuInfo:
    try:
        return parse_cpuinfo(Path(cpuinfo).read_text(errors="replace"))
    except OSError:
        return CpuInfo("unknown", "unknown", frozenset())


def compiler_accepts(compiler: str, flags: tuple[str, ...]) -> bool:
    """Whether `compiler` compiles an empty C++ file with `flags` (false for non-x86 targets, where the
    AMX flags do not exist, and for compilers too old to know them)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.cpp"
        src.write_text("int main() { return 0; }\n")
        try:
            done = subprocess.run([compiler, *flags, "-c", str(src), "-o", str(Path(tmp) / "probe.o")],
                                  capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0
