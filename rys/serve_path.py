"""The one seam between "a layer path was chosen" and "a llama-server runs it".

Two ways to run a path: on a llama-server built with rys's patch (vendor/llama.cpp), the unchanged GGUF
plus one `--override-kv` argument (METHOD_RUNTIME: nothing written, duplicated layers cost no memory);
otherwise the path is materialized in the layer store and the stock server loads that (METHOD_REWRITE).
Support is detected from the configured binary, never assumed. $RYS_PATH_METHOD (auto, runtime,
rewrite) pins one method, e.g. to compare them or to work around a problem in one.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rys.errors import RysError
from rys.gguf.check import path_problems_for
from rys.llama.features import PATH_SWITCH, has_feature
from rys.llama.runtime import (
    MAX_VALUE_CHARS,
    METHOD_REWRITE,
    METHOD_RUNTIME,
    RuntimePathError,
    runtime_path_args,
    supports_runtime_paths,
)
from rys.paths import format_path

METHOD_ENV = "RYS_PATH_METHOD"
METHODS = ("auto", METHOD_RUNTIME, METHOD_REWRITE)

@dataclass
class ServedPath:
    """A server for one layer path; `server` is started by serve_path(start=True) or by the caller."""

    server: object  # rys.server.LlamaServer
    method: str  # METHOD_RUNTIME or METHOD_REWRITE
    config: object  # the ServerConfig the server really runs with (runtime: plus the path argument)
    model_path: Path  # the file given to llama-server -m
    materialize_s: float  # config chosen -> a file llama-server can load (runtime: no file to write)
    bytes_written: int


def _runtime_obstacle(binary, model: Path, path: Sequence[int]) -> str | None:
    """Why this path cannot run at run time on this server (None: it can)."""
    if not supports_runtime_paths(binary):
        return f"{binary} does not support runtime layer paths (a stock build)"
    if len(format_path(path)) > MAX_VALUE_CHARS:
        return f"the path is longer than the {MAX_VALUE_CHARS} characters llama.cpp takes in one override"
    # the architecture's rules for the runtime patch (rys/gguf/arch_rules.py, which the patch follows too)
    problems = path_problems_for(model, path, METHOD_RUNTIME)
    if problems:
        return "; ".join(problems)
    return None


def choose_method(binary, model: str | Path, path: Sequence[int], method: str | None = None) -> str:
    """METHOD_RUNTIME or METHOD_REWRITE for running `path` of `model` with `binary`.
    `method` (else $RYS_PATH_METHOD, else "auto"): auto takes runtime wherever it works."""
    method = (method or os.environ.get(METHOD_ENV) or "auto").strip().lower()
    if method not in METHODS:
        raise RysError(f"unknown layer-path method {method!r}",
                       f"use one of {', '.join(METHODS)} (in --method or ${METHOD_ENV})")
    if method == METHOD_REWRITE:
        return METHOD_REWRITE
    obstacle = _runtime_obstacle(binary, Path(model), list(path))
    if obstacle is None:
        return METHOD_RUNTIME
    if method == METHOD_RUNTIME:
        raise RuntimePathError(f"cannot run this layer path at run time: {obstacle}",
                               "build the patched server (rys setup llama-server --patched) and pass it with "
                               f"--llama-server or $RYS_LLAMA_SERVER, or use the rewriter ({METHOD_ENV}=rewrite)")
    return METHOD_REWRITE


def model_method(binary, model: str | Path, method: str | None = None) -> str:
    """The method choose_method takes for the (short) paths of `model` with `binary`: what a run that
    serves many paths of one model records once."""
    return choose_method(binary, model, [0], method)


def switches_in_place(binary, model: str | Path, method: str | None = None) -> bool:
    """True when servers of `model` run paths at run time on a build that can also switch a running
    server to another path (vendor/llama.cpp/path-switch.patch): many paths, one model load."""
    return model_method(binary, model, method) == METHOD_RUNTIME and has_feature(binary, PATH_SWITCH)


def switch_served(served: ServedPath, path: Sequence[int]) -> ServedPath:
    """The same running server, switched to `path` (see LlamaClient.set_layer_path). Raises
    PathSwitchRefused when the path does not fit the server's KV cache; the server then keeps its path."""
    if served.method != METHOD_RUNTIME:
        raise RuntimePathError("only a server that runs its path at run time can switch paths",
                               "start a server for this path instead")
    served.server.client.set_layer_path(path)
    return dataclasses.replace(served, materialize_s=0.0, bytes_written=0)


class PathSession:
    """One running llama-server that serves many layer paths of one model in turn: switched from path to
    path (switch_served), and, when `capture` names layers, with prefix reuse (rys.prefix): requests on
    the unmodified path keep the rows after those layers, and a later path that starts with the
    unmodified model's layers 0..L runs only its part after L, fed with the rows kept after L.

    The caller scores; the session says how: `switch(path)` returns L (send `{"rys_resume_layer": L}`) or
    None (score as usual), and `capture_fields()` are the fields for the unmodified path's requests."""

    def __init__(self, served: ServedPath, n_layers: int, capture=()):
        self.served = served
        self.n_layers = n_layers
        self.capture = sorted(int(x) for x in capture)  # layers whose rows the unmodified path keeps
        self.captured: frozenset = frozenset()  # layers whose rows the server holds for every prompt
        self.primable = True  # False once the server refused the unmodified path (it cannot keep rows)

    @property
    def server(self):
        return self.served.server

    def client(self, fields: dict | None = None):
        """A client of the server that adds `fields` to its completion requests (see LlamaClient)."""
        from rys.server import LlamaClient

        client = LlamaClient(self.server.url, server=self.server)
        client.request_fields = dict(fields or {})
        return client

    def capture_fields(self) -> dict:
        return {"rys_capture_layers": list(self.capture)} if self.capture else {}

    def mark_captured(self) -> None:
        """Every prompt the caller will score was scored with capture_fields() on the unmodified path."""
        self.captured = frozenset(self.capture)

    def switch(self, path, prime=None) -> int | None:
        """Run `path` from the next request on. Returns the layer whose kept rows the requests start from,
        or None when they run the whole path. `prime(fields)`, when given, scores the caller's prompts on
        the unmodified path with those request fields; it runs first if the rows this path needs are not
        kept yet. PathSwitchRefused (the server keeps its old path): neither the path nor its suffix fits."""
        from rys.prefix import reuse_layer, suffix
        from rys.server import PathSwitchRefused

        path = list(path)
        layer = reuse_layer(path, self.n_layers) if self.capture else None
        if layer in self.capture and layer not in self.captured and self.primable and prime is not None:
            try:
                switch_served(self.served, range(self.n_layers))
            except PathSwitchRefused:
                self.primable = False  # its KV cache cannot hold the unmodified path
            else:
                self.captured = frozenset()
                prime(self.capture_fields())
                self.mark_captured()
        if layer is not None and layer in self.captured:
            try:
                switch_served(self.served, suffix(path, layer))
                return layer
            except PathSwitchRefused:
                pass
        switch_served(self.served, path)
        return None


@contextmanager
def serve_path(model: str | Path, path: Sequence[int], config, store=None, name: str = "path",
               method: str | None = None, start: bool = False) -> Iterator[ServedPath]:
    """A LlamaServer that runs `model` along `path`, by the method choose_method picks. With start=False
    the caller starts it (to time the start, or to register it for an interrupt first). The server is
    stopped, and a store lease released, on exit."""
    from rys.server import LlamaServer

    model, path = Path(model), list(path)
    chosen = choose_method(config.binary, model, path, method)
    t0 = time.monotonic()
    if chosen == METHOD_RUNTIME:
        run_config = dataclasses.replace(config, extra_args=tuple(config.extra_args) + tuple(runtime_path_args(path)))
        with _running(ServedPath(LlamaServer(model, run_config, name=name), METHOD_RUNTIME, run_config, model,
                                 round(time.monotonic() - t0, 4), 0), start) as served:
            yield served
        return
    if store is None:
        from rys.gguf import LayerStore

        store = LayerStore()
    with store.materialize(model, path) as lease:
        file = Path(lease.model_path)
        with _running(ServedPath(LlamaServer(file, config, name=name), METHOD_REWRITE, config, file,
                                 round(time.monotonic() - t0, 4), lease.bytes_written), start) as served:
            yield served


@contextmanager
def _running(served: ServedPath, start: bool) -> Iterator[ServedPath]:
    try:
        if start:
            served.server.start()
        yield served
    finally:
        served.server.stop()


def runtime_command(binary, model: str | Path, path: Sequence[int]) -> list[str]:
    """The llama-server command line that runs `path` on the unchanged `model` (add --host/--port/-c)."""
    model = Path(model)
    obstacle = _runtime_obstacle(binary, model, list(path))
    if obstacle is not None:
        raise RuntimePathError(f"cannot run this layer path at run time: {obstacle}",
                               "run: rys setup llama-server --patched   (or drop --runtime to write a GGUF)")
    return [str(binary), "-m", str(model.absolute()), *runtime_path_args(path)]
