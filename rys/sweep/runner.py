"""The sweep loop: materialize a config's path in the layer store, serve it, score every probe, write rows.

The baseline (identity path) goes through exactly this loop too, before any config, so every delta
compares two results of the same code. Workers are threads sharing one queue and one results store;
each has its own llama-server. On a build that switches paths in place (switch_paths), a worker keeps
its server and switches it to the next config's path, longest paths first; a path the server refuses
gets a server of its own, as every config does on other builds. Otherwise, when servers may start
ahead (can_start_ahead), the next config's server starts in the background while the current one
scores. Finished servers stop in the background; run() returns only once all of them are gone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from rys import __version__
from rys import prefix as prefix_plan
from rys.errors import RysError
from rys.probes import ProbeResult, ProbeSet, run_probe
from rys.probes.stats import paired_delta
from rys.serve_path import METHOD_RUNTIME
from rys.server.failures import PathSwitchRefused
from rys.sweep import SweepError
from rys.sweep.rank import combined_ranking
from rys.sweep.results import Failure, ResultStore, Row
from rys.sweep.space import Config, PairSpace, baseline, order_for_reuse, order_for_switching, refine_around


def limit_items(probe: ProbeSet, n: int | None) -> ProbeSet:
    """The first n items, under a hash of its own so resume never mixes subsets and full sets."""
    if not n or n >= len(probe.items):
        return probe
    sha = hashlib.sha256(f"{probe.sha256}:first:{n}".encode()).hexdigest()
    return dataclasses.replace(probe, items=probe.items[:n], sha256=sha)


@dataclass
class SweepJob:
    """Everything fixed for one sweep: what to run it on and where the results go."""

    model: Path
    model_sha256: str
    n_layers: int
    probes: list[ProbeSet]
    results: ResultStore
    server: object  # rys.server.ServerConfig; extra_args = the global --server-args
    worker_args: list[tuple[str, ...]] = field(default_factory=lambda: [()])  # one entry per worker
    store: object = None  # rys.gguf.LayerStore
    progress: bool = True
    top_k: int = 5
    log: Callable[[str], None] = print
    # Start the next config's server while the current one scores (can_start_ahead(): CPU sweeps).
    prefetch: bool = False
    # Keep each worker's server and switch its layer path between configs: None = wherever the build
    # can (rys.serve_path.switches_in_place), False = a fresh server for every config.
    switch_paths: bool | None = None
    # Start each config from the baseline's residual rows after the layers it shares with the unmodified
    # model (rys.prefix): None = wherever the build and the probes allow it, False = never.
    reuse_prefix: bool | None = None
    capture: list | None = field(default=None, repr=False)  # the layers whose rows the baseline keeps
    reuse_paths: list = field(default_factory=list, repr=False)  # the run's config paths, for the capture plan
    parked: dict = field(default_factory=dict, repr=False)  # worker -> its server, kept between runs
    # Tokens and chat-templated prompts, which every config of the model shares (per server args).
    token_cache: dict = field(default_factory=dict, repr=False)
    # "search", or "confirm" for the held-out re-scoring of the top configs (rys.sweep.confirm)
    stage: str = "search"
    # probe name -> sha256 of the whole search probe: rows of halving's item subsets and of the
    # held-out items belong to that version (Row.probe_version); empty = each probe's own sha
    versions: dict = field(default_factory=dict)
    # held-out rows: path -> probe -> the config's search delta, written next to its held-out delta
    search_deltas: dict = field(default_factory=dict)

    def version(self, probe: ProbeSet) -> str:
        return self.versions.get(probe.name, probe.sha256)

    def with_probes(self, probes: list[ProbeSet], stage: str | None = None) -> SweepJob:
        """The same job on other item sets of its probes (a halving rung, the held-out items)."""
        versions = {p.name: self.version(p) for p in self.probes}
        return dataclasses.replace(self, probes=list(probes), stage=stage or self.stage, versions=versions,
                                   parked={}, capture=None, reuse_paths=[])

    def pending(self, config: Config) -> list[ProbeSet]:
        return [p for p in self.probes
                if not self.results.is_done(self.model_sha256, config.key, p.name, p.sha256)]


@dataclass
class RunStats:
    scored: int = 0  # configs fully scored in this run
    skipped: int = 0  # configs already in the results file
    failed: int = 0

    def add(self, other: RunStats) -> None:
        self.scored += other.scored
        self.skipped += other.skipped
        self.failed += other.failed


# Errors that would fail every config the same way: stop the sweep instead of logging one per config.
def _fatal(err: BaseException) -> bool:
    from rys.server import BadServerArgs

    return isinstance(err, BadServerArgs)


class _Stopped(Exception):
    """The sweep was stopped while a config was being brought up."""


def can_start_ahead(binary, extra_args=(), model: Path | None = None) -> bool:
    """True when llama-server can only use the CPU and a second copy of the model fits in free memory.

    Then starting the next config's server while the current one scores costs little: the weights are
    shared through the page cache. With a GPU, two servers at once may not fit, or the second would be
    fitted onto other devices and score slightly differently, so a GPU sweep keeps one server at a time.
    """
    import psutil

    from rys.llama.features import cpu_only

    if model is not None and Path(model).stat().st_size * 3 > psutil.virtual_memory().available:
        return False
    return cpu_only(binary, extra_args)


THREAD_FLAGS = ("-t", "--threads")


def shared_cpu_threads(extra_args, worker_args: list, workers: int) -> list[str]:
    """llama-server arguments giving each of the 2 x workers servers that run at once (one scoring, one
    starting ahead) its share of the cores, unless the user chose --threads. Left alone, every server
    takes all cores and their spin-waiting threads slow each other down many times over."""
    from rys.llama.features import flag_value

    if any(flag_value(args, f) is not None for args in (extra_args, *worker_args) for f in THREAD_FLAGS):
        return []
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return ["--threads", str(max(1, cores // (2 * max(1, workers))))]


def _server_name(k: int, config: Config) -> str:
    """A log name per config: a failed config's kept log is never overwritten by the next config's."""
    label = re.sub(r"[^0-9A-Za-z]+", "_", config.label).strip("_")
    if len(label) > 40:
        label = hashlib.sha1(config.key.encode()).hexdigest()[:12]
    return f"sweep-w{k}-{label}"


def _caching_client(server, cache: dict):
    from rys.server import LlamaClient

    class TokenCachingClient(LlamaClient):
        """Tokens and the chat template come from the model's metadata, which every config of a sweep
        shares: the first server answers, later configs read the answer from memory (3 of a continuation
        item's ~12 requests)."""

        def tokenize(self, text: str, add_special: bool = False) -> list[int]:
            key = ("tokenize", text, bool(add_special))
            if key not in cache:
                cache[key] = tuple(super().tokenize(text, add_special))
            return list(cache[key])

        def detokenize(self, ids) -> str:
            key = ("detokenize", tuple(int(i) for i in ids))
            if key not in cache:
                cache[key] = super().detokenize(ids)
            return cache[key]

        def format_prompt(self, text: str, chat: bool) -> str:
            key = ("format_prompt", text, bool(chat))
            if key not in cache:
                cache[key] = super().format_prompt(text, chat)
            return cache[key]

    return TokenCachingClient(server.url, server=server)


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


class _Run:
    """One pass over a list of configs with N worker threads."""

    def __init__(self, job: SweepJob, configs: list[Config], base: dict[str, ProbeResult]):
        self.job = job
        self.base = base
        self.rows = model_rows(job)  # for the live top table; grows with every row written
        self.todo: queue.Queue = queue.Queue()
        self.stats = RunStats()
        for config in configs:
            if job.pending(config):
                self.todo.put(config)
            else:
                self.stats.skipped += 1
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.active: set = set()  # live LlamaServers, stopped on interrupt
        self.closers: list[threading.Thread] = []
        self.switch = switching(job)
        self.reuse = self.switch and reusing_prefix(job)
        self.ahead = job.prefetch and not self.switch  # a switch is quicker than any start it would hide
        self.fatal: BaseException | None = None
        self.bar = tqdm(total=self.todo.qsize(), unit="config", disable=not job.progress, dynamic_ncols=True)
        self.leader: str | None = None

    def run(self) -> RunStats:
        workers = [threading.Thread(target=self._worker, args=(k,), name=f"rys-sweep-{k}", daemon=True)
                   for k in range(min(len(self.job.worker_args), max(1, self.todo.qsize())))]
        try:
            for w in workers:
                w.start()
            for w in workers:
                while w.is_alive():
                    w.join(0.2)  # short joins keep Ctrl-C / SIGTERM deliverable to the main thread
        except BaseException:
            self._halt()
            for w in workers:
                w.join(30)
            raise
        finally:
            self._wait_closed()  # no server of this run outlives it
            self.bar.close()
        if self.fatal is not None:
            raise self.fatal
        return self.stats

    def _halt(self) -> None:
        self.stop.set()
        with self.lock:
            servers = list(self.active)
        for server in servers:
            server.stop()  # its worker's pending request fails; the worker sees `stop` and leaves

    def _take(self) -> Config | None:
        try:
            return self.todo.get_nowait()
        except queue.Empty:
            return None

    def _worker(self, k: int) -> None:
        server_config = dataclasses.replace(self.job.server, extra_args=tuple(self.job.server.extra_args)
                                            + tuple(self.job.worker_args[k]))
        held: list[_Slot] = []  # slots this worker still has to close
        try:
            slot = None
            resident = self.job.parked.pop(k, None)  # the last config's slot, whose server may switch paths
            if resident is not None:
                held.append(resident)
                with self.lock:
                    self.active.add(resident.server)  # stopped by this run's _halt too
            while not self.stop.is_set():
                if slot is None:
                    config = self._take()
                    if config is None:
                        return
                    if resident is not None:
                        slot = self._switch(resident, config, held)
                        resident = None
                    if slot is None:
                        slot = self._open(k, config, server_config, ahead=False)
                        held.append(slot)
                slot = self._ready(k, slot, server_config, held)
                upcoming = None
                if self.ahead and slot.error is None and not self.stop.is_set():
                    config = self._take()
                    if config is not None:
                        upcoming = self._open(k, config, server_config, ahead=True)
                        held.append(upcoming)
                ok = self._score(k, slot, server_config)
                if ok and self.switch and slot.served is not None and slot.served.method == METHOD_RUNTIME:
                    resident = slot  # stays in `held`: closed by the next switch's refusal or at the end
                else:
                    held.remove(slot)
                    self._close(slot)
                slot = upcoming
                if ok is None:
                    continue  # stopped
                with self.lock:
                    if ok:
                        self.stats.scored += 1
                    else:
                        self.stats.failed += 1
                    self.bar.update(1)
                    self._show_leaders()
        except BaseException as err:  # noqa: BLE001 - fatal errors and bugs stop everything, not one config
            if not (self.stop.is_set() and isinstance(err, (RysError, _Stopped))):
                self.fatal = err
            self._halt()
        finally:
            for slot in held:
                if slot is resident and self.reuse and self.fatal is None and not self.stop.is_set():
                    self.job.parked[k] = slot  # it keeps the baseline's rows: the next run goes on with it
                    continue
                self._close(slot)

    def _open(self, k: int, config: Config, server_config, ahead: bool) -> _Slot:
        slot = _Slot(config, ahead)
        if ahead:
            slot.thread = threading.Thread(target=self._bring_up, args=(k, slot, server_config),
                                           name=f"rys-sweep-{k}-ahead", daemon=True)
            slot.thread.start()
        else:
            t0 = time.monotonic()
            self._bring_up(k, slot, server_config)
            slot.timings["ready_wait_s"] = round(time.monotonic() - t0, 4)  # all of it: nothing overlapped
        return slot

    def _bring_up(self, k: int, slot: _Slot, server_config) -> None:
        """Serve the slot's path and start its server; an error is kept for the worker to handle."""
        from rys.serve_path import serve_path

        try:
            # runtime path on a patched server, else a store-materialized GGUF (rys.serve_path decides)
            slot.served = slot.stack.enter_context(serve_path(
                self.job.model, slot.config.path, server_config, store=self.job.store,
                name=_server_name(k, slot.config)))
            with self.lock:
                if self.stop.is_set():
                    raise _Stopped()
                self.active.add(slot.server)
            slot.timings = {"materialize_s": slot.served.materialize_s, "bytes_written": slot.served.bytes_written,
                            "path_switched": False}
            t0 = time.monotonic()
            slot.server.start()
            slot.timings["server_start_s"] = round(time.monotonic() - t0, 4)
        except BaseException as err:  # noqa: BLE001 - handed to the worker, which raises or records it
            slot.error = err

    def _switch(self, resident: _Slot, config: Config, held: list[_Slot]) -> _Slot | None:
        """The config in the resident slot's server, switched to its path; None when the server refused
        the path or failed (it is then closed, and the config gets a server of its own). With prefix
        reuse the server runs only the part of the path after the baseline's kept rows."""
        t0 = time.monotonic()
        session = self._session(resident)

        def prime(fields: dict) -> None:  # the baseline's prompts with capture; scores already written
            client = self._client(session.server, tuple(self.job.server.extra_args), fields)
            for probe in self.job.probes:
                run_probe(client, probe)

        try:
            layer = session.switch(config.path, prime=prime)
        except RysError as err:
            if not isinstance(err, PathSwitchRefused):
                resident.server.mark_failed()  # keep its log: the next start will say more if it repeats
            held.remove(resident)
            self._close(resident)
            return None
        slot = _Slot(config, ahead=False, stack=resident.stack)  # the server's lifetime moves to the new slot
        slot.served, slot.session, slot.reuse_layer = resident.served, session, layer
        seconds = round(time.monotonic() - t0, 4)
        slot.timings = {"materialize_s": 0.0, "bytes_written": 0, "server_start_s": seconds,
                        "ready_wait_s": seconds, "path_switched": True}
        held[held.index(resident)] = slot
        return slot

    def _session(self, slot: _Slot):
        """The slot's PathSession (made on first use: the capture plan needs the server's width)."""
        from rys.serve_path import PathSession

        if slot.session is None:
            capture = self._capture_plan(slot.server) if self.reuse else ()
            slot.session = PathSession(slot.served, self.job.n_layers, capture)
        return slot.session

    def _capture_plan(self, server) -> list[int]:
        """The layers whose rows the baseline keeps: those the run's configs start from, the most used
        first, within $RYS_PREFIX_MIB (default: the smaller of 2 GiB and a quarter of free memory)."""
        job = self.job
        if job.capture is None:
            job.capture = prefix_plan.plan_capture(job.reuse_paths, job.n_layers,
                                                   (item.prompt for p in job.probes for item in p.items),
                                                   server.client.props().n_embd)
        return job.capture

    def _client(self, server, cache_key: tuple, fields: dict | None = None):
        """A client for the server (shared token cache) that adds `fields` to its completion requests."""
        client = _caching_client(server, self.job.token_cache.setdefault(cache_key, {}))
        client.request_fields = dict(fields or {})
        return client

    def _ready(self, k: int, slot: _Slot, server_config, held: list[_Slot]) -> _Slot:
        """Wait for the slot's server. One started ahead that failed is retried alone: it may have failed
        only because the previous config's server still held memory."""
        if slot.thread is not None:
            t0 = time.monotonic()
            slot.thread.join()
            slot.timings["ready_wait_s"] = round(time.monotonic() - t0, 4)  # the part not hidden by scoring
        err = slot.error
        if not (slot.ahead and isinstance(err, RysError)) or _fatal(err) or self.stop.is_set():
            return slot
        held.remove(slot)
        self._close(slot, wait=True)
        self._wait_closed()
        retry = self._open(k, slot.config, server_config, ahead=False)
        held.append(retry)
        if retry.error is None and self.ahead:
            self.ahead = False
            self._say(f"{slot.config.label}: its server failed to start next to the previous one "
                      f"({type(err).__name__}) and started alone; from now on one server at a time")
        return retry

    def _score(self, k: int, slot: _Slot, server_config) -> bool | None:
        """Score the slot's config on its pending probes: True if every probe was scored, False if it
        failed (a failure record), None if the sweep was stopped."""
        job = self.job
        config, server = slot.config, slot.server
        pending = job.pending(config)
        try:
            if slot.error is not None:
                raise slot.error
            provenance = dict(self._provenance(server, server_config), method=slot.served.method)
            capture = self.reuse and config.is_baseline
            if slot.reuse_layer is not None:
                fields = {"rys_resume_layer": slot.reuse_layer}
            else:
                fields = self._session(slot).capture_fields() if capture else {}
            client = self._client(server, tuple(server_config.extra_args), fields)
            for probe in pending:
                t0 = time.monotonic()
                result = run_probe(client, probe)
                row_timings = dict(slot.timings, score_s=round(time.monotonic() - t0, 4),
                                   reused_layers=0 if slot.reuse_layer is None else slot.reuse_layer + 1)
                row = self._row(k, config, probe, result, row_timings, provenance)
                job.results.append(row)
                with self.lock:
                    self.rows.append(row)
            if capture and len(pending) == len(job.probes):
                self._session(slot).mark_captured()  # every probe's prompts were scored with capture
            return True
        except _Stopped:
            return None
        except RysError as err:
            if server is not None:
                server.mark_failed()  # before it stops, so the log is kept for the failure record
            if self.stop.is_set():
                return None
            if _fatal(err):
                raise
            self._fail(k, config, job.pending(config), err, server)
            return False

    def _close(self, slot: _Slot, wait: bool = False) -> None:
        """Stop the slot's server and release its files, in the background unless `wait`: a stopping
        llama-server takes a moment the next config need not wait for. run() waits for all of them."""

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

    def _wait_closed(self) -> None:
        while True:
            with self.lock:
                closers, self.closers = self.closers, []
            if not closers:
                return
            for closer in closers:
                closer.join()

    def _provenance(self, server, server_config) -> dict:
        props = server.client.props()
        return {"model": str(self.job.model), "model_sha256": self.job.model_sha256,
                "llama_build": props.build_info, "llama_server": str(server_config.binary),
                "server_args": list(server_config.extra_args), "ctx_size": server_config.ctx_size,
                "slots": server_config.slots, "rys_version": __version__,
                # what rys added to server_args, and continuation tokens scored per request (0: forced)
                "launch_args": list(server.launch_args), "prompt_window": server.prompt_window}

    def _row(self, k: int, config: Config, probe: ProbeSet, result: ProbeResult, timings: dict,
             provenance: dict) -> Row:
        base = self.base.get(probe.name)
        if config.is_baseline:
            base = result
        delta = None
        if base is not None:
            ids = {item.id for item in result.items}  # a halving rung scores the first items only
            delta = paired_delta([it for it in base.items if it.id in ids], result.items).to_dict()
            if self.job.stage == "confirm" and not config.is_baseline:
                delta["search_delta"] = self.job.search_deltas.get(config.key, {}).get(probe.name)
        return Row(config=config.label, path=config.key, i=config.i, j=config.j, times=config.times,
                   interleaved=config.interleaved, n_layers=len(config.path), probe=probe.name,
                   probe_sha256=probe.sha256, score=result.score, ci=[result.ci_low, result.ci_high],
                   coverage=result.coverage, n_items=result.n, delta=delta, result=result.to_dict(),
                   timings=timings, provenance=provenance, worker=k,
                   finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   stage=self.job.stage, probe_version=self.job.version(probe))

    def _fail(self, k: int, config: Config, pending: list[ProbeSet], err: RysError, server) -> None:
        log_path = getattr(err, "log_path", None) or (server.log_path if server is not None else None)
        failure = Failure(config=config.label, path=config.key, probes=[p.name for p in pending],
                          error=type(err).__name__, reason=err.message.split("\n")[0],
                          log_tail=getattr(err, "log_tail", "") or "",
                          log_path=str(log_path) if log_path else None, model_sha256=self.job.model_sha256,
                          worker=k, at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self.job.results.record_failure(failure)
        self._say(f"FAILED {config.label} ({failure.error}): {failure.reason}")

    def _say(self, text: str) -> None:
        if self.job.progress:
            self.bar.write(text)  # above the bar, which stays at the bottom
        else:
            self.job.log(text)

    def _show_leaders(self) -> None:
        """A live top table, printed whenever the best config changes."""
        ranked = combined_ranking(self.rows)
        if not ranked or ranked[0].path == self.leader:
            return
        self.leader = ranked[0].path
        self.bar.set_postfix_str(f"best {ranked[0].config}")
        lines = [f"current top {min(self.job.top_k, len(ranked))}:"]
        for n, r in enumerate(ranked[: self.job.top_k], 1):
            deltas = "  ".join(f"{p} {d:+.4f}" for p, d in r.delta.items())
            lines.append(f"  {n}. {r.config:<12} {deltas}")
        self._say("\n".join(lines))


def model_rows(job: SweepJob) -> list[Row]:
    """Rows already written for this model and these probe versions."""
    wanted = {(p.name, p.sha256) for p in job.probes}
    return [r for r in job.results.rows()
            if r.provenance.get("model_sha256") == job.model_sha256 and (r.probe, r.probe_sha256) in wanted]


def version_rows(job: SweepJob) -> list[Row]:
    """Rows of this model, stage and search probe versions, on whatever items (all halving rungs)."""
    wanted = {(p.name, job.version(p)) for p in job.probes}
    return [r for r in job.results.rows()
            if r.provenance.get("model_sha256") == job.model_sha256 and r.stage == job.stage
            and (r.probe, r.version) in wanted]


def baseline_results(job: SweepJob) -> dict[str, ProbeResult]:
    """The baseline's ProbeResult per probe, from rows already written: scored on exactly the probe's
    items, or on a superset of them (a halving rung runs on the first items of the baseline's set)."""
    key = baseline(job.n_layers).key
    rows = [r for r in version_rows(job) if r.path == key]
    out = {}
    for probe in job.probes:
        ids = {item.id for item in probe.items}
        mine = [r for r in rows if r.probe == probe.name]
        exact = [r for r in mine if r.probe_sha256 == probe.sha256]
        cover = [r for r in mine if ids <= {str(item["id"]) for item in r.result["items"]}]
        pick = (exact or cover or [None])[-1]
        if pick is not None:
            out[probe.name] = ProbeResult.from_dict(pick.result)
    return out


def switching(job: SweepJob) -> bool:
    """Whether the job's workers keep their servers and switch paths between configs."""
    if job.switch_paths is None:
        from rys.serve_path import switches_in_place

        job.switch_paths = switches_in_place(job.server.binary, job.model)
    return job.switch_paths


def reusing_prefix(job: SweepJob) -> bool:
    """Whether configs start from the baseline's kept rows (rys.prefix): a server that switches
    paths and keeps rows (prefix-resume.patch), one slot, and probes that only score prompts."""
    if job.reuse_prefix is None:
        job.reuse_prefix = switching(job) and prefix_plan.available(job.server, job.probes)
    return bool(job.reuse_prefix) and switching(job)


def run_configs(job: SweepJob, configs: list[Config], skip_baseline: bool = False) -> RunStats:
    """Baseline first (unless skipped or already scored), then the configs in layer-reuse order (longest
    path first when servers switch paths in place). With prefix reuse the baseline's server keeps the
    rows the configs start from and scores them too."""
    stats = RunStats()
    if switching(job):
        from rys.llama.runtime import offload_sides

        sides = offload_sides(job.server.extra_args, job.n_layers)  # a partial offload: fewer paths fit
        configs = [c for c in order_for_switching(configs, sides) if not c.is_baseline]
    else:
        configs = [c for c in order_for_reuse(configs) if not c.is_baseline]
    if reusing_prefix(job):
        job.capture = None  # planned from these configs once a server can say its width
        job.reuse_paths = [c.path for c in configs]
    try:
        if not skip_baseline:
            stats.add(_Run(job, [baseline(job.n_layers)], {}).run())
            if len(baseline_results(job)) < len(job.probes):
                raise SweepError("the baseline (unmodified model) could not be scored, so no delta can be computed",
                                 f"see {job.results.failures} for the reason and the llama-server log tail")
        stats.add(_Run(job, configs, baseline_results(job)).run())
    finally:
        parked, job.parked = list(job.parked.values()), {}
        for slot in parked:
            slot.stack.close()  # stops its server
    return stats


def refine_plan(rows: list[Row], space: PairSpace, refine_top: int) -> tuple[list[tuple[int, int]], list[Config]]:
    """The top `refine_top` (i, j) of the space by combined ranking, and the stride-1 configs around them."""
    in_space = set(space.pairs(stride=1))
    rows = [r for r in rows
            if (r.i, r.j) in in_space and r.times == space.times and r.interleaved == space.interleaved]
    top = [(r.i, r.j) for r in combined_ranking(rows)[:refine_top]]
    return top, refine_around(space, top, radius=space.stride - 1) if top else []


def run_sparse_first(job: SweepJob, space: PairSpace, refine_top: int, skip_baseline: bool = False) -> RunStats:
    """Coarse pass at the space's stride, then every stride-1 config around the top `refine_top`."""
    stats = run_configs(job, space.configs(), skip_baseline)
    if space.stride == 1:
        return stats
    top, configs = refine_plan(model_rows(job), space, refine_top)
    if configs:
        job.log(f"refining around {', '.join(f'({i},{j})' for i, j in top)} at stride 1")
        stats.add(run_configs(job, configs, skip_baseline=True))
    return stats
