"""Start, check and stop one llama-server per model, so that none outlives rys.

How a server never outlives rys:
- normal stop and `with` blocks: SIGTERM to the server's process group, then SIGKILL after a grace period;
- exceptions and Ctrl-C: `with` / start() stop it on the way out; an atexit hook stops any left;
- SIGTERM / SIGHUP to rys: a handler (installed only where none was set, from the main thread) stops
  all, then exits with 128 + signal;
- SIGKILL to rys: the child asked Linux to kill it when its parent dies (PR_SET_PDEATHSIG). Linux fires
  that when the *thread* that forked the child ends, so every server is forked by one long-lived
  daemon thread (_Spawner), never by the (possibly short-lived) thread calling start().
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import os
import queue
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import requests

from rys.llama.features import PROMPT_LOGPROBS, cpu_only, flag_value, has_feature
from rys.server.client import LlamaClient
from rys.server.failures import (
    BadServerArgs,
    ModelLoadError,
    PortInUse,
    ServerCrashed,
    ServerError,
    ServerStartTimeout,
    failure,
)
from rys.server.ports import free_port, listens_on

PROMPT_WINDOW_FLAG = "--rys-prompt-logprobs"
# Launch defaults where llama-server can only use the CPU (where they were measured), each unless
# --server-args sets it:
# -fit off: the fit is a dry-run model load (~130 ms, 40% of SmolLM2's start) with nothing to fit (-c is
#   always given, and there is no device memory).
# -fa off: the CPU flash-attention kernel makes a token's logprob depend on how the prompt was split into
#   batches, i.e. on what the slot's cache held: up to 1.9 nats on SmolLM2 here. Without it a prompt
#   scores the same whether it was cached or not (docs/server.md).
CPU_DEFAULTS = (("-fit", "--fit", "off"), ("-fa", "--flash-attn", "off"))
LLAMA_DEFAULT_BATCH = 2048  # llama-server's -b
DEFAULT_PROMPT_WINDOW = 32  # logits kept per slot: n_vocab x 33 floats (6.5 MB for SmolLM2, 35 MB for Gemma 3)
BIND_ATTEMPTS = 5  # a probed free port can be taken before the server binds it: retry with a new one
STOP_GRACE_S = 5.0
LOG_TAIL_LINES = 30
# Options the manager sets itself; passing them in --server-args would silently fight ours.
_OWNED_FLAGS = {"-m": "the model argument", "--model": "the model argument", "--host": "host",
                "--port": "--port", "-c": "--ctx-size", "--ctx-size": "--ctx-size",
                "-np": "--slots", "--parallel": "--slots"}


@dataclass(frozen=True)
class ServerConfig:
    """How to run llama-server. ctx_size is per slot: each of the `slots` parallel requests gets ctx_size
    tokens (llama-server is started with -c ctx_size*slots). extra_args go to llama-server untouched."""

    binary: Path | str
    ctx_size: int = 2048
    slots: int = 1
    extra_args: tuple[str, ...] = field(default=())
    host: str = "127.0.0.1"
    port: int | None = None
    startup_timeout: float = 120.0
    embeddings: bool = False
    log_dir: Path | str | None = None
    keep_logs: bool = False
    # prompt tokens one request may score in its own forward pass, on a build with prompt-logprobs.patch:
    # None = DEFAULT_PROMPT_WINDOW where the binary supports it, 0 = never (one forced request per token)
    prompt_logprobs: int | None = None
    # rys's launch defaults for a server that can only use the CPU (CPU_DEFAULTS); False: a plain launch
    cpu_defaults: bool = True

    def __post_init__(self):
        args = shlex.split(self.extra_args) if isinstance(self.extra_args, str) else tuple(self.extra_args)
        object.__setattr__(self, "extra_args", tuple(args))
        if self.ctx_size < 1 or self.slots < 1:
            raise BadServerArgs(f"ctx_size ({self.ctx_size}) and slots ({self.slots}) must be at least 1",
                                "pass --ctx-size and --slots as positive numbers")
        for arg in args:
            flag = arg.split("=", 1)[0]
            if flag in _OWNED_FLAGS:
                raise BadServerArgs(f"--server-args contains {flag}, which rys sets itself",
                                    f"remove it from --server-args and use {_OWNED_FLAGS[flag]} instead")


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
    except OSError:
        return None


_LIBC = _libc()
_PR_SET_PDEATHSIG = 1


def _child_setup(parent_pid: int):
    """Runs in the forked child before exec: die with the parent, even if the parent is SIGKILLed."""

    def setup():
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)

    return setup


class _Spawner:
    """One daemon thread that forks every server (see the module docstring for why)."""

    def __init__(self):
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="rys-server-spawner", daemon=True)
                self._thread.start()
        done: Future = Future()
        self._jobs.put((done, cmd, kwargs))
        try:
            return done.result()
        except BaseException:
            # Interrupted while the fork was under way: kill the child as soon as it exists.
            done.add_done_callback(lambda f: f.exception() is None and _kill_group(f.result()))
            raise

    def _run(self):
        while True:
            done, cmd, kwargs = self._jobs.get()
            try:
                done.set_result(subprocess.Popen(cmd, **kwargs))
            except BaseException as err:  # noqa: BLE001 - handed to the caller
                done.set_exception(err)


_SPAWNER = _Spawner()
_LIVE: set[LlamaServer] = set()
_LIVE_LOCK = threading.Lock()
_GUARDS_INSTALLED = False


def _kill_group(proc: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group, wait, then SIGKILL. Only while unreaped, so the pid cannot be reused."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def stop_all() -> None:
    """Stop every server this process started and has not stopped yet."""
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        server.stop()


def _on_signal(signum, _frame):
    with _LIVE_LOCK:
        any_live = bool(_LIVE)
    if not any_live:  # nothing of ours to clean up: behave exactly as if no handler were set
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    stop_all()
    raise SystemExit(128 + signum)  # unwinds `with` blocks, so temp files are cleaned up too


def _install_guards() -> None:
    """SIGTERM/SIGHUP handlers where none was set. Signal handlers can only be set from the main thread,
    so this runs at import (usually in the main thread) and again at each start()."""
    global _GUARDS_INSTALLED
    if _GUARDS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    _GUARDS_INSTALLED = True
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:  # never replace a handler someone else set
            signal.signal(sig, _on_signal)


atexit.register(stop_all)
_install_guards()
# A forked child (multiprocessing) does not own its parent's servers: it must never stop them.
os.register_at_fork(after_in_child=_LIVE.clear)


class LlamaServer:
    """One llama-server process for one model. start() returns self; use as a context manager or keep
    it for many requests (the same code path either way). `client` talks to it."""

    def __init__(self, model: Path | str, config: ServerConfig, name: str = "server"):
        self.model = Path(model).absolute()
        self.config = config
        self.name = name
        self.port: int | None = None
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.log_path: Path | None = None
        self.start_seconds: float | None = None  # launch to ready, of the attempt that succeeded
        self._proc: subprocess.Popen | None = None
        self._launched_at = 0.0
        self._failed = False
        self._stopping = False  # stop() was called: a start() under way in another thread must give up
        self._client: LlamaClient | None = None
        self._lock = threading.RLock()

    # -- public -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def client(self) -> LlamaClient:
        if self._client is None or self._client.base_url != self.url:  # a restart may change the port
            self._client = LlamaClient(self.url, server=self)
        return self._client

    def command(self, port: int) -> list[str]:
        cfg = self.config
        cmd = [str(cfg.binary), "-m", str(self.model), "--host", cfg.host, "--port", str(port),
               "-c", str(cfg.ctx_size * cfg.slots), "-np", str(cfg.slots)]
        if cfg.embeddings:
            cmd += ["--embeddings", "--pooling", "none"]
        return cmd + self.launch_args + list(cfg.extra_args)

    @functools.cached_property
    def launch_args(self) -> list[str]:
        """What rys adds to the user's arguments: the prompt window and the CPU launch defaults (each
        only where the user's arguments do not set it). Recorded in sweep provenance."""
        cfg = self.config
        args = []
        if self.prompt_window and flag_value(cfg.extra_args, PROMPT_WINDOW_FLAG) is None:
            args += [PROMPT_WINDOW_FLAG, str(self.prompt_window)]
        if cfg.cpu_defaults and cpu_only(cfg.binary, cfg.extra_args):
            for short, long, value in CPU_DEFAULTS:
                if flag_value(cfg.extra_args, short) is None and flag_value(cfg.extra_args, long) is None:
                    args += [short, value]
        return args

    @functools.cached_property
    def prompt_window(self) -> int:
        """How many prompt tokens one request can score in the prompt's own forward pass (0: none, the
        client then forces one token per request). Needs a binary with prompt-logprobs.patch."""
        cfg = self.config
        given = flag_value(cfg.extra_args, PROMPT_WINDOW_FLAG)
        if given is not None:
            window = int(given) if given.isdigit() else 0
        elif cfg.embeddings or cfg.prompt_logprobs == 0 or not has_feature(cfg.binary, PROMPT_LOGPROBS):
            return 0  # an embeddings server keeps one output row per sequence for logits
        else:
            window = cfg.prompt_logprobs or DEFAULT_PROMPT_WINDOW
        # a sequence keeps at most one batch of output rows: n_batch = min(-b, the whole context)
        batch = flag_value(cfg.extra_args, "-b") or flag_value(cfg.extra_args, "--batch-size") or ""
        n_batch = min(int(batch) if batch.isdigit() else LLAMA_DEFAULT_BATCH, cfg.ctx_size * cfg.slots)
        return max(0, min(window, n_batch - 1))

    def start(self) -> LlamaServer:
        if self._proc is not None:
            raise ServerError(f"{self._what()} is already running on port {self.port}", "call stop() first")
        if not self.model.is_file():
            raise ModelLoadError(f"model file {self.model} does not exist", "pass the path of a GGUF file")
        _install_guards()
        self._stopping = False
        attempts = 1 if self.config.port else BIND_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                self._wait_ready(self._launch(self.config.port or free_port(self.config.host)))
                return self
            except PortInUse:
                if attempt == attempts:
                    self.mark_failed()
                    self._terminate()
                    raise
                self._terminate()  # this attempt's log shows only the bind failure: nothing worth keeping
            except BaseException:
                self.mark_failed()
                self._terminate()
                raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the server (idempotent; safe from another thread, also while start() runs there).
        Keeps the log if it failed or keep_logs is set."""
        with self._lock:
            self._stopping = True
            self._terminate()

    def _terminate(self) -> None:
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is not None:
                self._failed = True  # it died on its own: the log says why
            try:
                _kill_group(proc)
            finally:
                self.exit_code = proc.returncode
                self._proc = None
                with _LIVE_LOCK:
                    _LIVE.discard(self)
                if self.log_path is not None and not (self._failed or self.config.keep_logs):
                    self.log_path.unlink(missing_ok=True)

    def mark_failed(self) -> None:
        """The config failed: keep the log when the server stops."""
        self._failed = True

    def alive(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            text = f.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def crash_error(self) -> ServerError:
        """The error for a request to a server that is not running: died on its own, or stopped by us."""
        proc = self._proc
        if proc is None:
            return ServerCrashed(f"{self._what()} is not running (stopped, or never started)",
                                 "send requests between start() and stop()")
        self.mark_failed()
        return failure(self._what(), proc.poll(), self.log_tail(), self.log_path)

    def __enter__(self):
        return self if self.alive() else self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.mark_failed()
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid} on {self.url}" if self.alive() else "stopped"
        return f"LlamaServer({self.name!r}, {self.model.name}, {state})"

    # -- internals --------------------------------------------------------------------------------

    def _what(self) -> str:
        return f"llama-server '{self.name}' ({self.model.name})"

    def _open_log(self):
        if self.log_path is None:
            if self.config.log_dir is not None:
                log_dir = Path(self.config.log_dir)
                log_dir.mkdir(parents=True, exist_ok=True)
                self.log_path = log_dir / f"{self.name}.log"
            else:
                fd, path = tempfile.mkstemp(prefix=f"rys-{self.name}-", suffix=".log")
                os.close(fd)
                self.log_path = Path(path)
        return open(self.log_path, "wb")

    def _launch(self, port: int) -> subprocess.Popen:
        self.port = port
        self._failed = False
        self._launched_at = time.monotonic()
        with self._open_log() as log:  # the child writes to its own copy of the descriptor
            proc = _SPAWNER.popen(
                self.command(port), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_child_setup(os.getpid()), close_fds=True)
        with self._lock:
            if self._stopping:
                _kill_group(proc)
                raise self._stopped_while_starting()
            self._proc, self.pid = proc, proc.pid
            with _LIVE_LOCK:
                _LIVE.add(self)
        return proc

    def _stopped_while_starting(self) -> ServerCrashed:
        return ServerCrashed(f"{self._what()} was stopped while starting", "nothing to fix if you stopped it")

    def _wait_ready(self, proc: subprocess.Popen) -> None:
        """Poll /health until our process answers for our model; fail at once if the process exits."""
        deadline = self._launched_at + self.config.startup_timeout
        delay = 0.01
        with requests.Session() as http:
            while True:
                if self._proc is not proc:
                    raise self._stopped_while_starting()
                code = proc.poll()
                if code is not None:
                    raise failure(self._what(), code, self.log_tail(), self.log_path)
                if self._answers_as_ours(http, proc):
                    self.start_seconds = time.monotonic() - self._launched_at
                    return
                if time.monotonic() > deadline:
                    raise ServerStartTimeout(
                        f"{self._what()} was not ready after {self.config.startup_timeout:.0f} s (log: {self.log_path})",
                        "raise the startup timeout for big models, or check the log for a hang",
                        self.log_tail(), self.log_path)
                time.sleep(delay)
                # a /health poll costs ~1 ms; a longer wait only delays every config (a small model's
                # start is ~0.2 s, so a 100 ms step wasted ~50 ms per config on average)
                delay = min(delay * 1.5, 0.025)

    def _answers_as_ours(self, http: requests.Session, proc: subprocess.Popen) -> bool:
        """Never trust /health alone: a stale server may own the port. The answer must come from our
        process (it holds the listening socket) and name our model."""
        try:
            if http.get(self.url + "/health", timeout=2).status_code != 200:
                return False  # 503 while loading
            props = http.get(self.url + "/props", timeout=5).json()
        except (requests.RequestException, ValueError):
            return False
        if props.get("model_path") != str(self.model):
            return False
        return listens_on(proc.pid, self.port) is not False

