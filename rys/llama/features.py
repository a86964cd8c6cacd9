"""What a llama-server binary can do: the features rys's patches add (vendor/llama.cpp/*.patch), read
from the markers they print in `--help`, and whether it can use anything but the CPU. A stock server
silently ignores unknown options in requests, so a feature is used only when its binary says it has it.
Answers are cached per binary (path, mtime and size, so a rebuilt binary is asked again)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

LAYER_PATHS = "rys-layer-path-v1"  # --override-kv rys.layer_path=str:... runs that path (layer-path.patch)
PROMPT_LOGPROBS = "rys-prompt-logprobs-v1"  # --rys-prompt-logprobs N (prompt-logprobs.patch)


def has_feature(binary: str | Path, marker: str) -> bool:
    path = Path(binary)
    try:
        stat = path.stat()
    except OSError:
        return False
    return marker in _help_text(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _help_text(binary: str, _mtime_ns: int, _size: int) -> str:
    # mtime and size are part of the cache key so a rebuilt binary is asked again
    try:
        done = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + done.stderr


def cpu_only(binary: str | Path, extra_args=()) -> bool:
    """True when llama-server will run on the CPU only: the arguments keep it off the GPU, or the build
    lists no GPU device (`--list-devices`). False when that cannot be told."""
    args = [str(a) for a in extra_args]
    for flag, value in zip(args, args[1:] + [""]):
        if flag in ("-ngl", "--n-gpu-layers", "--gpu-layers") and value == "0":
            return True
        if flag in ("-dev", "--device") and value == "none":
            return True
    path = Path(binary)
    try:
        stat = path.stat()
    except OSError:
        return False
    return _lists_no_device(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _lists_no_device(binary: str, _mtime_ns: int, _size: int) -> bool:
    try:
        done = subprocess.run([binary, "--list-devices"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    text = done.stdout + done.stderr
    if done.returncode != 0 or "Available devices:" not in text:
        return False
    devices = [line.strip() for line in text.split("Available devices:", 1)[1].splitlines() if line.strip()]
    return devices in ([], ["(none)"])
