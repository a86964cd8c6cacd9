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
def server_starts(monkeypatch) -> list[str]:
    """The names of the LlamaServers started while the test runs, in order (the start itself is real)."""
    from rys.server import manager

    starts: list[str] = []
    real_start = manager.LlamaServer.start

    def spy(self):
        starts.append(self.name)
        return real_start(self)

    monkeypatch.setattr(manager.LlamaServer, "start", spy)
    return starts


@pytest.fixture
def patched_serve(patched_bin, tmp_path):
    """patched_serve(model, path=None, slots=1) -> a started server of the patched build running `path`
    on the unchanged GGUF (-t 1, -c 256); all stopped at teardown. The build must have every patch."""
    from rys.llama.features import PREFIX_RESUME, has_feature
    from rys.llama.runtime import runtime_path_args
    from rys.server.manager import LlamaServer, ServerConfig

    if not has_feature(patched_bin, PREFIX_RESUME):
        pytest.fail(f"{patched_bin} predates vendor/llama.cpp's last patch: run rys setup llama-server --patched")
    started = []

    def start(model: Path, path=None, slots: int = 1):
        args = ("-t", "1", *(runtime_path_args(path) if path is not None else ()))
        server = LlamaServer(Path(model), ServerConfig(binary=patched_bin, ctx_size=256, slots=slots, extra_args=args,
                                                       log_dir=tmp_path / "logs"), name=f"patched{len(started)}")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def patched_sweep(patched_bin, tmp_path):
    """patched_sweep(model, n_layers, results, configs, workers=1, **SweepJob fields) -> RunStats of a real
    sweep (math-logprob, 2 items, -t 1) on the patched build; no config may fail."""
    from rys.gguf.provenance import file_sha256
    from rys.probes import load_probe
    from rys.server.manager import ServerConfig
    from rys.sweep.results import ResultStore
    from rys.sweep.runner import SweepJob, limit_items, run_configs

    def run(model: Path, n_layers: int, results: Path, configs, workers: int = 1, **fields):
        job = SweepJob(model=model, model_sha256=file_sha256(model), n_layers=n_layers,
                       probes=[limit_items(load_probe("math-logprob"), 2)], results=ResultStore(results),
                       server=ServerConfig(binary=patched_bin, ctx_size=256, extra_args=("-t", "1"),
                                           log_dir=tmp_path / "sweep-logs"),
                       worker_args=[()] * workers, progress=False, log=lambda _: None, **fields)
        stats = run_configs(job, configs)
        assert stats.failed == 0
        return stats

    return run


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
