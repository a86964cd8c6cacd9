"""One sweep worker: it owns a llama-server (two while one starts ahead) and scores configs into rows.

The same unit runs as a thread of `rys sweep --workers N` and inside a Ray actor (rys.sweep.ray_pool):
the caller hands it one config at a time with the probes still missing for it, and gets an Outcome back.
It never writes the results file: rows go to `emit` (in-process: the results store; in an actor: the
Outcome, which the driver writes).

On a build that switches paths in place (Plan.switch) the worker keeps its server and switches it to the
next config's path; a path the server refuses gets a server of its own, as every config does on other
builds. With prefix reuse (Plan.reuse) the baseline's requests keep residual rows and later configs start
from them. With Plan.prefetch the next config's server starts in the background while the current one
scores. Finished servers stop in the background; end_run() and close() wait until they are gone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

from rys import prefix as prefix_plan
from rys.errors import RysError
from rys.probes import ItemResult, run_probe
from rys.serve_path import METHOD_RUNTIME
from rys.server.failures import PathSwitchRefused
from rys.sweep.client import caching_client
from rys.sweep.plan import Plan
from rys.sweep.results import Failure, Row
from rys.sweep.rows import build_failure, build_row, provenance
from rys.sweep.space import Config

SCORED, FAILED, STOPPED = "scored", "failed", "stopped"


@dataclass
class Outcome:
    """What became of one config: every pending probe scored (rows), a failure record, or stopped."""

    status: str
    rows: list[Row] = field(default_factory=list)
    failure: Failure | None = None
    seconds: float = 0.0  # inside the worker (a Ray driver compares it with its round trip)


def fatal(err: BaseException) -> bool:
    """Errors that would fail every config the same way: they stop the sweep instead of one record each."""
    from rys.server import BadServerArgs

    return isinstance(err, BadServerArgs)


def crashed(outcome: Outcome) -> bool:
    """The config failed because its llama-server died (not AMX's deterministic crash, a subclass)."""
    return outcome.status == FAILED and outcome.failure is not None and outcome.failure.error == "ServerCrashed"


class _Stopped(Exception):
    """The worker was stopped while a config was being brought up."""


def server_name(k: int, config: Config) -> str:
    """A log name per config: a failed config's kept log is never overwritten by the next config's."""
    label = re.sub(r"[^0-9A-Za-z]+", "_", config.label).strip("_")
    if len(label) > 40:
        label = hashlib.sha1(config.key.encode()).hexdigest()[:12]
    return f"sweep-w{k}-{label}"


class _Slot:
    """One config in a worker's hands: its path served (materialized, or at run time) and its server
    started, in the background when it is started ahead, while the worker scores the config before it."""

    def __init__(self, config: Config, ahead: bool, stack: ExitStack | None = None):
        self.config = config
        self.ahead = ahead
        self.stack = stack or ExitStack()
        self.served = None  # rys.serve_path.ServedPath
        self.error: BaseException | None = None
        self.timings: dict = {}
        self.thread: threading.Thread | None = None
        self.session = None  # rys.serve_path.PathSession: its server's paths and kept rows, once switched
        self.reuse_layer: int | None = None  # the config starts from the rows kept after this layer

    @property
    def server(self):
        return None if self.served is None else self.served.server


class Worker:
    def __init__(self, k: int, worker_args=(), store=None, shared: dict | None = None, model_path=None,
                 node: dict | None = None, say=print):
        self.k = k
        self.worker_args = tuple(worker_args)  # appended to the plan's --server-args
        self.store = store  # rys.gguf.LayerStore for paths that are materialized
        # Tokens, templated prompts and the capture plan, which every config of the model shares; worker
        # threads of one process share one dict
        self.shared = {} if shared is None else shared
        self.model_path = model_path  # where this machine holds the GGUF (None: the plan's path)
        self.node = dict(node or {})  # provenance: where the worker runs (Ray: node and GPU)
        self.say = say
        self.plan: Plan | None = None
        self.server_config = None
        self.ahead = False
        self.held: list[_Slot] = []  # slots this worker still has to close
        self.resident: _Slot | None = None  # the last config's slot, whose server may switch paths
        self.upcoming: _Slot | None = None  # started ahead for the next config
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.active: set = set()  # live LlamaServers, stopped by stop()
        self.closers: list[threading.Thread] = []

    # -- what the caller does ------------------------------------------------------------------------

    def begin(self, plan: Plan) -> None:
        """Start a pass over configs. A resident server (the previous pass's) is kept where it holds the
        baseline's rows for the same server and probes, as between the baseline and the configs."""
        if self.resident is not None and not (plan.reuse and self.plan is not None
                                              and plan.server == self.plan.server
                                              and _probe_key(plan) == _probe_key(self.plan)):
            self._drop(self.resident)
            self.resident = None
        self.plan = plan
        self.server_config = dataclasses.replace(plan.server, extra_args=tuple(plan.server.extra_args)
                                                 + self.worker_args)
        self.ahead = plan.prefetch and not plan.switch  # a switch is quicker than any start it would hide
        self.stopping.clear()
        if self.resident is not None:
            with self.lock:
                self.active.add(self.resident.server)

    def score(self, config: Config, pending: list, emit=None, next_config: Config | None = None) -> Outcome:
        """Score `config` on the `pending` probes; `emit(row)` as each probe's row is complete. With
        prefetch, `next_config`'s server starts while this one scores. Raises on fatal errors and bugs."""
        slot = self._slot_for(config)
        slot = self._ready(slot)
        if (next_config is not None and self.ahead and slot.error is None and not self.stopping.is_set()):
            self.upcoming = self._open(next_config, ahead=True)
        outcome = self._score(slot, pending, emit)
        if crashed(outcome) and not self.stopping.is_set():
            slot, outcome = self._score_again(slot, pending, emit, outcome)
        if (outcome.status == SCORED and self.plan.switch and slot.served is not None
                and slot.served.method == METHOD_RUNTIME):
            self.resident = slot  # closed by the next switch's refusal or at the end
        else:
            self._drop(slot)
        return outcome

    def _score_again(self, slot: _Slot, pending: list, emit, first: Outcome) -> tuple[_Slot, Outcome]:
        """Once more on a fresh server, for the probes the crashed one did not finish. A segfault that
        does not come back (seen on lavapipe, about 1 run in 8 of a short Vulkan sweep; docs/backends.md)
        then costs one server start instead of the config, or the whole sweep where it was the baseline.
        The row says so (timings.crash_retried); a second crash is the config's failure record."""
        self.say(f"{slot.config.label}: {first.failure.reason}; scoring it again on a fresh server")
        self._drop(slot)
        self.wait_closed()
        done = {r.probe for r in first.rows}
        slot = self._ready(self._open(slot.config, ahead=False))
        slot.timings["crash_retried"] = first.failure.reason
        again = self._score(slot, [p for p in pending if p.name not in done], emit)
        return slot, Outcome(again.status, first.rows + again.rows, again.failure)

    def end_run(self, keep: bool) -> None:
        """The pass is over: close every server but the resident one when `keep` (it holds the
        baseline's rows, so the next pass goes on with it), and wait until they have stopped."""
        for slot in list(self.held):
            if keep and slot is self.resident and not self.stopping.is_set():
                continue
            self._drop(slot)
        if self.resident is not None and self.resident not in self.held:
            self.resident = None
        self.upcoming = None
        self.wait_closed()

    def close(self) -> None:
        self.end_run(keep=False)

    def stop(self) -> None:
        """From any thread: stop every server; the request under way fails and score() says STOPPED."""
        self.stopping.set()
        with self.lock:
            servers = list(self.active)
        for server in servers:
            server.stop()

    def wait_closed(self) -> None:
        while True:
            with self.lock:
                closers, self.closers = self.closers, []
            if not closers:
                return
            for closer in closers:
                closer.join()

    # -- servers ---------------------------------------------------------------------------------------

    def _slot_for(self, config: Config) -> _Slot:
        if self.upcoming is not None and self.upcoming.config == config:
            slot, self.upcoming = self.upcoming, None
            return slot
        if self.upcoming is not None:  # started ahead for a config the caller did not hand over after all
            self._drop(self.upcoming)
            self.upcoming = None
        slot = None
        if self.resident is not None:
            resident, self.resident = self.resident, None
            slot = self._switch(resident, config)
        if slot is None:
            slot = self._open(config, ahead=False)
        return slot

    def _drop(self, slot: _Slot) -> None:
        if slot in self.held:
            self.held.remove(slot)
        self._close(slot)

    def _open(self, config: Config, ahead: bool) -> _Slot:
        slot = _Slot(config, ahead)
        self.held.append(slot)
        if ahead:
            slot.thread = threading.Thread(target=self._bring_up, args=(slot,),
                                           name=f"rys-sweep-{self.k}-ahead", daemon=True)
            slot.thread.start()
        else:
            t0 = time.monotonic()
            self._bring_up(slot)
            slot.timings["ready_wait_s"] = round(time.monotonic() - t0, 4)  # all of it: nothing overlapped
        return slot

    def _bring_up(self, slot: _Slot) -> None:
        """Serve the slot's path and start its server; an error is kept for score() to handle."""
        from rys.serve_path import serve_path

        try:
            # runtime path on a patched server, else a store-materialized GGUF (rys.serve_path decides)
            slot.served = slot.stack.enter_context(serve_path(
                self.model_path or self.plan.model, slot.config.path, self.server_config, store=self.store,
                name=server_name(self.k, slot.config)))
            with self.lock:
                if self.stopping.is_set():
                    raise _Stopped()
                self.active.add(slot.server)
            slot.timings = {"materialize_s": slot.served.materialize_s, "bytes_written": slot.served.bytes_written,
                            "path_switched": False}
            t0 = time.monotonic()
            slot.server.start()
            slot.timings["server_start_s"] = round(time.monotonic() - t0, 4)
        except BaseException as err:  # noqa: BLE001 - handed to score(), which raises or records it
            slot.error = err

    def _switch(self, resident: _Slot, config: Config) -> _Slot | None:
        """The config in the resident slot's server, switched to its path; None when the server refused
        the path or failed (it is then closed, and the config gets a server of its own). With prefix
        reuse the server runs only the part of the path after the baseline's kept rows."""
        t0 = time.monotonic()
        session = self._session(resident)

        def prime(fields: dict) -> None:  # the baseline's prompts with capture; scores already written
            client = self._client(session.server, tuple(self.plan.server.extra_args), fields)
            for probe in self.plan.probes:
                run_probe(client, probe)

        try:
            layer = session.switch(config.path, prime=prime)
        except RysError as err:
            if not isinstance(err, PathSwitchRefused):
                resident.server.mark_failed()  # keep its log: the next start will say more if it repeats
            self._drop(resident)
            return None
        slot = _Slot(config, ahead=False, stack=resident.stack)  # the server's lifetime moves to the new slot
        slot.served, slot.session, slot.reuse_layer = resident.served, session, layer
        seconds = round(time.monotonic() - t0, 4)
        slot.timings = {"materialize_s": 0.0, "bytes_written": 0, "server_start_s": seconds,
                        "ready_wait_s": seconds, "path_switched": True}
        self.held[self.held.index(resident)] = slot
        return slot

    def _session(self, slot: _Slot):
        """The slot's PathSession (made on first use: the capture plan needs the server's width)."""
        from rys.serve_path import PathSession

        if slot.session is None:
            capture = self._capture_plan(slot.server) if self.plan.reuse else ()
            slot.session = PathSession(slot.served, self.plan.n_layers, capture)
        return slot.session

    def _capture_plan(self, server) -> list[int]:
        """The layers whose rows the baseline keeps: those the run's configs start from, the most used
        first, within $RYS_PREFIX_MIB (default: the smaller of 2 GiB and a quarter of free memory).
        Planned once per machine and pass: the workers of one process keep the same rows."""
        plan = self.plan
        key = ("capture", tuple(tuple(p) for p in plan.reuse_paths), _probe_key(plan))
        with self.lock:
            if key not in self.shared:
                self.shared[key] = prefix_plan.plan_capture(
                    plan.reuse_paths, plan.n_layers, (item.prompt for p in plan.probes for item in p.items),
                    server.client.props().n_embd)
            return self.shared[key]

    def _client(self, server, cache_key: tuple, fields: dict | None = None):
        """A client for the server (shared token cache) that adds `fields` to its completion requests."""
        with self.lock:
            cache = self.shared.setdefault(("tokens", cache_key), {})
        return caching_client(server, cache, fields)

    def _ready(self, slot: _Slot) -> _Slot:
        """Wait for the slot's server. One started ahead that failed is retried alone: it may have failed
        only because the previous config's server still held memory."""
        if slot.thread is not None:
            t0 = time.monotonic()
            slot.thread.join()
            slot.timings["ready_wait_s"] = round(time.monotonic() - t0, 4)  # the part not hidden by scoring
        err = slot.error
        if not (slot.ahead and isinstance(err, RysError)) or fatal(err) or self.stopping.is_set():
            return slot
        self.held.remove(slot)
        self._close(slot, wait=True)
        self.wait_closed()
        retry = self._open(slot.config, ahead=False)
        if retry.error is None and self.ahead:
            self.ahead = False
            self.say(f"{slot.config.label}: its server failed to start next to the previous one "
                     f"({type(err).__name__}) and started alone; from now on one server at a time")
        return retry

    def _score(self, slot: _Slot, pending: list, emit) -> Outcome:
        plan = self.plan
        config, server = slot.config, slot.server
        rows: list[Row] = []
        try:
            if slot.error is not None:
                raise slot.error
            if self.stopping.is_set():
                raise _Stopped()
            where = dict(self.node)
            if self.model_path is not None and str(self.model_path) != str(plan.model):
                where["model_on_node"] = str(self.model_path)
            prov = provenance(plan, server, self.server_config, slot.served.method, where)
            capture = plan.reuse and config.is_baseline
            if slot.reuse_layer is not None:
                fields = {"rys_resume_layer": slot.reuse_layer}
            else:
                fields = self._session(slot).capture_fields() if capture else {}
            client = self._client(server, tuple(self.server_config.extra_args), fields)
            for probe in pending:
                t0 = time.monotonic()
                done = [ItemResult.from_dict(d) for d in plan.extend.get(config.key, {}).get(probe.name, ())]
                result = run_probe(client, probe, done)
                timings = dict(slot.timings, score_s=round(time.monotonic() - t0, 4),
                               reused_layers=0 if slot.reuse_layer is None else slot.reuse_layer + 1)
                if done:
                    timings["extended_items"] = len({d.id for d in done} & {i.id for i in probe.items})
                row = build_row(plan, self.k, config, probe, result, timings, prov)
                rows.append(row)
                if emit is not None:
                    emit(row)
            if capture and len(pending) == len(plan.probes):
                self._session(slot).mark_captured()  # every probe's prompts were scored with capture
            return Outcome(SCORED, rows)
        except _Stopped:
            return Outcome(STOPPED, rows)
        except RysError as err:
            if server is not None:
                server.mark_failed()  # before it stops, so the log is kept for the failure record
            if self.stopping.is_set():
                return Outcome(STOPPED, rows)
            if fatal(err):
                raise
            done = {r.probe for r in rows}
            left = [p.name for p in pending if p.name not in done]
            return Outcome(FAILED, rows, build_failure(plan, self.k, config, left, err, server, self.node))

    def _close(self, slot: _Slot, wait: bool = False) -> None:
        """Stop the slot's server and release its files, in the background unless `wait`: a stopping
        llama-server takes a moment the next config need not wait for. wait_closed() waits for them."""

        def close() -> None:
            if slot.thread is not None:
                slot.thread.join()  # its start is over (or failed) before it is stopped
            try:
                slot.stack.close()
            finally:
                with self.lock:
                    self.active.discard(slot.server)

        if wait:
            close()
            return
        closer = threading.Thread(target=close, name="rys-sweep-stop", daemon=True)
        with self.lock:
            self.closers.append(closer)
        closer.start()


def _probe_key(plan: Plan) -> tuple:
    return tuple((p.name, p.sha256) for p in plan.probes)
