"""The process manager against the real llama-server and the real SmolLM2 model."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from rys.server import (
    BadServerArgs,
    LlamaServer,
    ModelLoadError,
    PortInUse,
    RequestFailed,
    ServerConfig,
    ServerCrashed,
    ServerOutOfMemory,
    ServerStartTimeout,
    manager,
)
from rys.server.ports import listens_on


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def ports_then_free(monkeypatch, *first: int):
    """Make the manager's free-port probe answer `first` ports before real free ones."""
    queue = list(first)
    real = manager.free_port
    monkeypatch.setattr(manager, "free_port", lambda host: queue.pop(0) if queue else real(host))


def test_start_ready_stop(serve, smollm2, tmp_path):
    server = serve(smollm2)
    assert server.alive() and server.start_seconds > 0
    assert listens_on(server.pid, server.port) is True
    assert requests.get(server.url + "/health", timeout=5).json()["status"] == "ok"
    assert server.client.props().model_path == str(smollm2.absolute())
    with pytest.raises(RequestFailed, match="embeddings"):  # started without embeddings=True
        server.client.embeddings("hi")
    log, pid = server.log_path, server.pid
    assert log.parent == tmp_path / "server-logs" and log.exists()
    server.stop()
    assert gone(pid) and not server.alive()
    assert not log.exists()  # succeeded: log removed
    server.stop()  # idempotent
    with pytest.raises(ServerCrashed, match="not running"):
        server.client.tokenize("x")


def test_context_manager_keeps_log_on_exception(llama_server_bin, smollm2, tmp_path):
    server = LlamaServer(smollm2, ServerConfig(llama_server_bin, ctx_size=256, log_dir=tmp_path), name="cfg-3-5")
    with pytest.raises(RuntimeError), server:
        pid = server.pid
        raise RuntimeError("scoring this config failed")
    assert gone(pid)
    assert (tmp_path / "cfg-3-5.log").exists()  # the config failed: its log stays next to the results


def test_keep_logs(serve, smollm2):
    server = serve(smollm2, keep_logs=True)
    server.stop()
    assert server.log_path.exists() and "listening on" in server.log_path.read_text()


def test_port_taken_by_another_process_uses_another(serve, smollm2, monkeypatch):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        ports_then_free(monkeypatch, taken)
        server = serve(smollm2)
        assert server.port != taken and listens_on(server.pid, server.port)
        assert server.client.tokenize("hi")


def test_explicit_port_taken_raises_port_in_use(serve, smollm2):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        with pytest.raises(PortInUse) as err:
            serve(smollm2, port=blocker.getsockname()[1])
    assert "couldn't bind" in err.value.log_tail
    assert err.value.log_path.exists()


def test_stale_server_is_never_mistaken_for_ours(serve, smollm2, monkeypatch):
    # A stale llama-server for the SAME model answers /health "ok" and /props with our model path on the
    # port the manager probes first: only the listening-socket owner check tells it apart.
    stale = serve(smollm2)
    ports_then_free(monkeypatch, stale.port)
    ours = serve(smollm2)
    assert ours.port != stale.port and ours.pid != stale.pid
    assert listens_on(ours.pid, ours.port) is True
    stale.stop()
    assert ours.client.tokenize("still here")


def test_model_load_error(serve, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelLoadError) as err:
        serve(bad)
    assert "failed to load model" in err.value.log_tail and "exit code" in err.value.message


def test_missing_model(serve, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        serve(tmp_path / "nope.gguf")


def test_bad_server_args(serve, smollm2):
    with pytest.raises(BadServerArgs) as err:
        serve(smollm2, extra_args=("--no-such-flag",))
    assert "--no-such-flag" in err.value.log_tail


@pytest.mark.skipif(Path("/proc/sys/vm/overcommit_memory").exists()
                    and Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "1",
                    reason="with overcommit_memory=1 a huge KV cache is not refused up front")
def test_out_of_memory(serve, smollm2):
    # 20M tokens of KV cache is ~460 GB for SmolLM2: refused at allocation on any test machine.
    with pytest.raises(ServerOutOfMemory) as err:
        serve(smollm2, ctx_size=20_000_000)
    assert "failed to allocate" in err.value.log_tail


def test_startup_timeout_stops_the_process(serve, smollm2, monkeypatch):
    started = []
    real_launch = LlamaServer._launch

    def launch(self, port):
        started.append(real_launch(self, port))
        return started[-1]

    monkeypatch.setattr(LlamaServer, "_launch", launch)
    with pytest.raises(ServerStartTimeout) as err:
        serve(smollm2, startup_timeout=0.01)
    assert len(started) == 1 and gone(started[0].pid)
    assert err.value.log_path.exists()  # a failed start keeps its log


def test_stop_from_another_thread_while_starting(serve, smollm2, monkeypatch):
    # A sweep halts by stopping its workers' servers from another thread, possibly mid-start.
    pids = []

    def stop_from_elsewhere(self, http, proc):
        pids.append(proc.pid)
        threading.Thread(target=self.stop).start()
        time.sleep(0.5)
        return False

    monkeypatch.setattr(LlamaServer, "_answers_as_ours", stop_from_elsewhere)
    with pytest.raises(ServerCrashed, match="stopped while starting"):
        serve(smollm2)
    assert pids and gone(pids[0])


def test_killed_mid_request_raises_crashed(serve, smollm2):
    server = serve(smollm2)
    killer = threading.Timer(1.0, os.kill, (server.pid, signal.SIGKILL))
    killer.start()
    t0 = time.monotonic()
    with pytest.raises(ServerCrashed) as err:
        while True:  # each call generates until the context is full; the kill lands inside one
            server.client.generate("Count to one thousand: 1, 2, 3,", max_tokens=200)
    killer.join()
    assert "killed by signal 9" in err.value.message
    assert time.monotonic() - t0 < 30


def test_started_from_a_short_lived_thread_survives_it(serve, smollm2):
    # PR_SET_PDEATHSIG fires when the forking *thread* exits: the manager forks from its own thread.
    box = []
    worker = threading.Thread(target=lambda: box.append(serve(smollm2)))
    worker.start()
    worker.join()
    time.sleep(0.5)
    assert box[0].alive() and box[0].client.tokenize("alive")


SCRIPT = """
import faulthandler, signal, sys, threading, time
faulthandler.register(signal.SIGUSR1)  # the test asks for every thread's stack if rys does not exit
from rys.server import LlamaServer, ServerConfig
binary, model, mode = sys.argv[1:4]
server = LlamaServer(model, ServerConfig(binary, ctx_size=256))
worker = threading.Thread(target=server.start)  # a thread that ends right away, as in a sweep pool
worker.start(); worker.join()
print(server.pid, flush=True)
if mode == "request":
    with server:
        while True:
            server.client.generate("Count to one thousand: 1, 2, 3,", max_tokens=200)
time.sleep(120)
"""


def run_script(llama_server_bin, smollm2, mode):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(llama_server_bin), str(smollm2), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.strip():
        proc.kill()
        pytest.fail(f"the script did not start a server (exit {proc.wait()})")
    return proc, int(line)


@pytest.mark.parametrize("sig, how", [(signal.SIGKILL, "die-with-parent"), (signal.SIGTERM, "handler"),
                                      (signal.SIGINT, "Ctrl-C")])
def test_no_server_outlives_rys(llama_server_bin, smollm2, sig, how):
    proc, server_pid = run_script(llama_server_bin, smollm2, "request" if sig == signal.SIGINT else "sleep")
    try:
        assert not gone(server_pid)
        time.sleep(1.0)  # with "request", a generation is under way by now
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            proc.kill()
            pytest.fail(f"rys did not exit within 30 s of {how}; its threads:\n{proc.communicate()[1][-6000:]}")
        assert wait_gone(server_pid, 5.0), f"llama-server {server_pid} outlived rys ({how})"
        if sig == signal.SIGTERM:
            assert code == 128 + signal.SIGTERM  # our handler stopped the servers and exited
    finally:
        proc.kill()
        proc.wait()
        if not gone(server_pid):
            os.kill(server_pid, signal.SIGKILL)
