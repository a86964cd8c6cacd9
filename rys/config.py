"""Where rys keeps things outside the repo. Every location can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Build cache, assembled demo models, file-hash cache. $RYS_CACHE_DIR overrides."""
    env = os.environ.get("RYS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rys"


def store_dir() -> Path:
    """Shared layer store for split-layout configs; tmpfs when the machine has one. $RYS_STORE_DIR overrides."""
    env = os.environ.get("RYS_STORE_DIR")
    if env:
        return Path(env).expanduser()
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm / f"rys-{os.getuid()}"
    return cache_dir() / "store"
