"""What a llama-server binary can do: the features rys's patches add (vendor/llama.cpp/*.patch), read
from the markers they print in `--help`, and whether it can use anything but the CPU. A stock server
silently ignores unknown options in requests, so a feature is used only when its binary says it has it.
Answers are cached per binary (path, mtime and size, so a rebuilt binary is asked again)."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

LAYER_PATHS = "rys-layer-path-v1"  # --override-kv rys.layer_path=str:... runs that path (layer-path.patch)
PROMPT_LOGPROBS = "rys-prompt-logprobs-v1"  # --rys-prompt-logprobs N (prompt-logprobs.patch)
PATH_SWITCH = "rys-layer-path-switch-v1"  # POST /rys/layer-path switches a running server (path-switch.patch)
PREFIX_RESUME = "rys-prefix-resume-v1"  # rys_capture_layers / rys_resume_layer requests (prefix-resume.patch)


def has_feature(binary: str | Path, marker: str) -> bool:
    returncode, text = _ask(binary, "--help")
    return returncode is not None and marker in text


def cpu_only(binary: str | Path, extra_args=()) -> bool:
    """True when llama-server will run on the CPU only: the arguments keep it off the GPU, or the build
    lists no GPU device (`--list-devices`). False when that cannot be told."""
    if any(flag_value(extra_args, f) == "0" for f in ("-ngl", "--n-gpu-layers", "--gpu-layers")):
        return True
    if any(flag_value(extra_args, f) == "none" for f in ("-dev", "--device")):
        return True
    devices = list_devices(binary)
    return devices is not None and not devices


def list_devices(binary: str | Path) -> list[str] | None:
    """The devices besides the CPU that the binary sees (`--list-devices`, e.g. "Vulkan0: llvmpipe (...)"),
    [] for none, None when it cannot be told."""
    returncode, text = _ask(binary, "--list-devices")
    if returncode != 0 or "Available devices:" not in text:
        return None
    devices = [line.strip() for line in text.split("Available devices:", 1)[1].splitlines() if line.strip()]
    return [] if devices == ["(none)"] else devices


def flag_value(args, flag: str) -> str | None:
    """The value given to `flag` in llama-server arguments ("--flag V" or "--flag=V"), or None."""
    args = [str(a) for a in args]
    for i, arg in enumerate(args):
        if arg == flag:
            return args[i + 1] if i + 1 < len(args) else ""
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1:]
    return None


def _ask(binary: str | Path, option: str) -> tuple[int | None, str]:
    """(exit code, stdout + stderr) of `binary option`; (None, "") when it cannot be run."""
    path = Path(binary)
    try:
        stat = path.stat()
    except OSError:
        return None, ""
    visible = tuple(os.environ.get(v, "") for v in _DEVICE_ENV)
    return _run(str(path.resolve()), option, stat.st_mtime_ns, stat.st_size, visible)


# which devices a binary lists depends on these (GGML_VK_VISIBLE_DEVICES shows CPU-type Vulkan devices)
_DEVICE_ENV = ("GGML_VK_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")


@functools.lru_cache(maxsize=32)
def _run(binary: str, option: str, _mtime_ns: int, _size: int, _visible: tuple) -> tuple[int | None, str]:
    # mtime, size and the device variables are part of the cache key so a rebuilt binary is asked again
    try:
        done = subprocess.run([binary, option], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None, ""
    return done.returncode, done.stdout + done.stderr
