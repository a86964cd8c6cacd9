"""The sweep's orchestration: resume, order, dispatch configs to workers, record what they return.

The baseline (identity path) goes through exactly the same workers first, so every delta compares two
results of the same code. A worker (rys.sweep.worker) owns one llama-server and scores one config at a
time; `--workers N` runs N of them as threads here (ThreadPool), `--ray` runs them as Ray actors on any
node of a cluster (rys.sweep.ray_pool.RayPool). Either way this process is the only writer of the
results file and the failure log (through a Recorder), and run_configs() returns only once every server
of the run is gone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rys import prefix as prefix_plan
from rys.errors import RysError
from rys.probes import ProbeResult, ProbeSet
from rys.sweep import SweepError
from rys.sweep.plan import Plan
from rys.sweep.progress import Progress
from rys.sweep.refine import refine_plan, run_sparse_first  # noqa: F401 - their old home
from rys.sweep.results import Failure, ResultStore, Row
from rys.sweep.space import Config, baseline, order_for_reuse, order_for_switching
from rys.sweep.threads import can_start_ahead, shared_cpu_threads  # noqa: F401 - their old home
from rys.sweep.worker import FAILED, SCORED, STOPPED, Outcome, Worker, _Stopped


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
    reuse_paths: list = field(default_factory=list, repr=False)  # the run's config paths, for the capture plan
    # Tokens, chat-templated prompts and capture plans, which every config of the model shares.
    token_cache: dict = field(default_factory=dict, repr=False)
    # "search", or "confirm" for the held-out re-scoring of the top configs (rys.sweep.confirm)
    stage: str = "search"
    # probe name -> sha256 of the whole search probe: rows of halving's item subsets and of the
    # held-out items belong to that version (Row.probe_version); empty = each probe's own sha
    versions: dict = field(default_factory=dict)
    # held-out rows: path -> probe -> the config's search delta, written next to its held-out delta
    search_deltas: dict = field(default_factory=dict)
    # path -> probe name -> item dicts already scored for that config on an earlier, smaller rung
    # (Plan.extend): those items are kept, the rung scores only the others
    extend: dict = field(default_factory=dict, repr=False)
    # Workers that outlive one run_configs() (rys.sweep.ray_pool.RayPool); None = threads per run
    pool: object = field(default=None, repr=False)

    def version(self, probe: ProbeSet) -> str:
        return self.versions.get(probe.name, probe.sha256)

    def with_probes(self, probes: list[ProbeSet], stage: str | None = None) -> SweepJob:
        """The same job on other item sets of its probes (a halving rung, the held-out items)."""
        versions = {p.name: self.version(p) for p in self.probes}
        return dataclasses.replace(self, probes=list(probes), stage=stage or self.stage, versions=versions,
                                   reuse_paths=[])

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


class Recorder:
    """The one writer of a pass's rows and failure records, and its counts. Thread-safe."""

    def __init__(self, job: SweepJob, progress: Progress):
        self.job = job
        self.progress = progress
        self.stats = RunStats()
        self.lock = threading.Lock()

    def pending(self, config: Config) -> list[ProbeSet]:
        return self.job.pending(config)

    def row(self, row: Row) -> None:
        self.job.results.append(row)
        self.progress.add_row(row)

    def failure(self, failure: Failure) -> None:
        self.job.results.record_failure(failure)
        self.progress.say(f"FAILED {failure.config} ({failure.error}): {failure.reason}")

    def done(self, outcome: Outcome, rows_written: bool) -> None:
        """A config's outcome; its rows are written here unless they already were (rows_written)."""
        if outcome.status == STOPPED:
            return
        if not rows_written:
            for row in outcome.rows:
                self.row(row)
        if outcome.failure is not None:
            self.failure(outcome.failure)
        with self.lock:
            if outcome.status == SCORED:
                self.stats.scored += 1
            elif outcome.status == FAILED:
                self.stats.failed += 1
        self.progress.config_done()


class ThreadPool:
    """`--workers N`: N workers as threads of this process sharing one queue."""

    def __init__(self, job: SweepJob):
        self.job = job
        self.workers = [Worker(k, args, store=job.store, shared=job.token_cache, say=job.log)
                        for k, args in enumerate(job.worker_args)]

    def run(self, plan: Plan, configs: list[Config], recorder: Recorder) -> None:
        todo: queue.Queue = queue.Queue()
        for config in configs:
            todo.put(config)
        stop = threading.Event()
        errors: list[BaseException] = []
        used = self.workers[: min(len(self.workers), max(1, len(configs)))]

        def halt() -> None:
            stop.set()
            for worker in used:
                worker.stop()  # its pending request fails; the worker sees the stop and leaves

        def take() -> Config | None:
            try:
                return None if stop.is_set() else todo.get_nowait()
            except queue.Empty:
                return None

        def work(worker: Worker) -> None:
            worker.say = recorder.progress.say
            worker.begin(plan)
            try:
                config = take()
                while config is not None and not stop.is_set():
                    upcoming = take() if worker.ahead else None
                    outcome = worker.score(config, recorder.pending(config), emit=recorder.row,
                                           next_config=upcoming)
                    recorder.done(outcome, rows_written=True)
                    config = upcoming if upcoming is not None else take()
            except BaseException as err:  # noqa: BLE001 - fatal errors and bugs stop everything, not one config
                if not (stop.is_set() and isinstance(err, (RysError, _Stopped))):
                    errors.append(err)
                halt()
            finally:
                worker.end_run(keep=plan.reuse and not errors and not stop.is_set())

        threads = [threading.Thread(target=work, args=(w,), name=f"rys-sweep-{w.k}", daemon=True) for w in used]
        try:
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.2)  # short joins keep Ctrl-C / SIGTERM deliverable to the main thread
        except BaseException:
            halt()
            for t in threads:
                t.join(30)
            raise
        if errors:
            raise errors[0]

    def reset(self) -> None:
        """Stop every worker's server (the pass's kept rows go with it)."""
        for worker in self.workers:
            worker.close()

    close = reset


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


def make_plan(job: SweepJob, base: dict[str, ProbeResult]) -> Plan:
    return Plan(model=job.model, model_sha256=job.model_sha256, n_layers=job.n_layers, probes=list(job.probes),
                server=job.server, base=dict(base), stage=job.stage,
                versions={p.name: job.version(p) for p in job.probes}, search_deltas=dict(job.search_deltas),
                switch=switching(job), reuse=reusing_prefix(job), reuse_paths=list(job.reuse_paths),
                prefetch=job.prefetch, extend=dict(job.extend))


def _run(job: SweepJob, pool, configs: list[Config], base: dict[str, ProbeResult]) -> RunStats:
    """One pass: the configs not yet in the results file, through the pool's workers."""
    todo = [c for c in configs if job.pending(c)]
    progress = Progress(len(todo), model_rows(job), job.progress, job.top_k, job.log)
    recorder = Recorder(job, progress)
    recorder.stats.skipped = len(configs) - len(todo)
    try:
        if todo:
            pool.run(make_plan(job, base), todo, recorder)
    finally:
        progress.close()
    return recorder.stats


def run_configs(job: SweepJob, configs: list[Config], skip_baseline: bool = False, keep_servers: bool = False,
                capture_for: list[Config] | None = None) -> RunStats:
    """Baseline first (unless skipped or already scored), then the configs in layer-reuse order (longest
    path first when servers switch paths in place). With prefix reuse the baseline's server keeps the
    rows the configs start from (those `capture_for` starts from, default the configs) and scores them too.

    keep_servers: a caller that holds the pool (job.pool) and scores its configs in several calls (a
    guided search's batches) keeps each worker's server and its kept rows for the next call, instead of
    starting it again and re-scoring the baseline with capture; the caller resets the pool at the end."""
    stats = RunStats()
    if switching(job):
        from rys.llama.runtime import offload_sides

        sides = offload_sides(job.server.extra_args, job.n_layers)  # a partial offload: fewer paths fit
        configs = [c for c in order_for_switching(configs, sides) if not c.is_baseline]
    else:
        configs = [c for c in order_for_reuse(configs) if not c.is_baseline]
    wanted = configs if capture_for is None else [c for c in capture_for if not c.is_baseline]
    job.reuse_paths = [c.path for c in wanted] if reusing_prefix(job) else []
    pool = job.pool if job.pool is not None else ThreadPool(job)
    try:
        if not skip_baseline:
            stats.add(_run(job, pool, [baseline(job.n_layers)], {}))
            if len(baseline_results(job)) < len(job.probes):
                raise SweepError("the baseline (unmodified model) could not be scored, so no delta can be computed",
                                 f"see {job.results.failures} for the reason and the llama-server log tail")
        stats.add(_run(job, pool, configs, baseline_results(job)))
    except BaseException:
        pool.reset()
        raise
    if not (keep_servers and job.pool is not None):
        pool.reset()  # no server of this run outlives it (the pool's workers may)
    return stats

