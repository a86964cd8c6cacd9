"""Shared fixtures: the real llama-server binary, the real demo models, and servers that always stop.

Tests that need a real part never skip silently where real parts are required (CI, or
RYS_REQUIRE_REAL=1 as scripts/test.sh sets): there a missing part fails the run with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REQUIRE_REAL = os.environ.get("CI") == "true" or os.environ.get("RYS_REQUIRE_REAL") == "1"
# The suite serves paths with the stock build (the rewriter, what every user's own llama.cpp build
# gets); tests/test_runtime_paths.py asks for the patched build explicitly.
os.environ.setdefault("RYS_PREFER_PATCHED", "0")


def _real(what: str, get):
    try:
        return get()
    except Exception as err:  # noqa: BLE001 - any reason a real part is missing is reported the same way
        message = f"{what} is not available: {err}"
        if REQUIRE_REAL:
            pytest.fail(message + " (real parts are required here; run scripts/test.sh)", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    from rys.llama.locate import find_llama_server

    return _real("llama-server", find_llama_server)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    from rys.models import resolve_model

    return _real("SmolLM2-135M demo model", lambda: resolve_model("smollm2", install=False))


@pytest.fixture(scope="session")
def patched_bin() -> Path:
    """The llama-server built with vendor/llama.cpp (runtime layer paths)."""
    from rys.llama.runtime import find_patched_server

    return _real("patched llama-server (rys setup llama-server --patched, or $RYS_PATCHED_LLAMA_SERVER)",
                 find_patched_server)


@pytest.fixture(scope="session")
def gemma3() -> Path:
    from rys.models import resolve_model

    return _real("Gemma 3 270M demo model", lambda: resolve_model("gemma3-270m", install=False))


@pytest.fixture
def fake_devices(tmp_path):
    """fake_devices(name, devices, code=0) -> a script that answers `--list-devices` like llama-server
    (devices: the lines after "Available devices:", with literal \\n)."""

    def make(name: str, devices: str, code: int = 0) -> Path:
        binary = tmp_path / name
        binary.write_text(f"#!/bin/sh\nprintf 'Available devices:\\n{devices}'\nexit {code}\n")
        binary.chmod(0o755)
        return binary

    return make


@pytest.fixture
def serve(llama_server_bin, tmp_path):
    """serve(model, **ServerConfig fields) -> a started LlamaServer on a free port; stopped at teardown.
    The binary is the stock build unless `binary` is given."""
    from rys.server.manager import LlamaServer, ServerConfig

    started = []

    def start(model: Path, **config):
        config.setdefault("ctx_size", 512)
        config.setdefault("log_dir", tmp_path / "server-logs")
        config.setdefault("binary", llama_server_bin)
        server = LlamaServer(Path(model), ServerConfig(**config))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def big_gguf(tmp_path) -> Path:
    """A 2-layer GGUF of 1.6 MB: more than the 1 MB tmpfs below holds."""
    import gguf
    import numpy as np

    src = tmp_path / "big.gguf"
    w = gguf.GGUFWriter(src, "llama")
    w.add_block_count(2)
    for il in range(2):
        w.add_tensor(f"blk.{il}.attn_norm.weight", np.zeros(200_000, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return src


@pytest.fixture
def one_mb_tmpfs(tmp_path):
    """A real 1 MB tmpfs, to fill up (needs mount rights: skipped without them)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)
