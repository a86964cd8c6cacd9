"""`rys sweep --ray`: sweep workers as Ray actors, one per GPU (or per N cores) on any node of a cluster.

Each actor holds one rys.sweep.worker.Worker, the same unit `--workers N` runs as a thread, so path
switching, prefix reuse and classified failures work as on one machine; its llama-server is started by
the actor process and dies with it (the server manager's PR_SET_PDEATHSIG), so an actor that is killed
or loses its node leaves no server behind. The driver (this process) hands out configs longest path
first, one per idle actor, and is the only writer of the results file and the failure log. A config
whose actor died is a failure record (WorkerLost), never a score, and goes back to the front of the
queue for another actor (at most MAX_LOST times). Nodes are polled while the sweep runs: one that joins
is checked (model, sha256, binary) and gets actors too. Ctrl-C (or any error) kills every actor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from rys.sweep import SweepError
from rys.sweep.nodes import FIX, inspect_node
from rys.sweep.results import Failure
from rys.sweep.rows import now
from rys.sweep.worker import FAILED, Outcome, Worker

MAX_LOST = 2  # a config whose worker died is tried this many more times before it counts as failed
NODE_POLL_S = 2.0  # how often the driver looks for nodes that joined
ACTOR_RESTARTS = 2  # Ray brings a dead actor back this many times (on its node, or another one)


class SweepActor:
    """The body of a Ray actor (wrapped with ray.remote by RayPool, so importing this has no effect)."""

    def __init__(self, k: int, worker_args, store_root, model_path: str):
        import ray

        from rys.gguf import LayerStore

        _normal_priority()
        gpus = [str(g) for g in ray.get_gpu_ids()]
        self.node = {"node": socket.gethostname(), "node_ip": ray.util.get_node_ip_address(),
                     "ray_node_id": ray.get_runtime_context().get_node_id(), "gpu": ",".join(gpus) or None}
        self.worker = Worker(k, worker_args, store=LayerStore(root=store_root), model_path=model_path,
                             node=self.node, say=print)
        self.plan_id = None
        self.plan = None

    def ready(self) -> dict:
        return dict(self.node, pid=os.getpid())

    def score(self, plan_box: list, plan_id: str, config, pending: list[str]) -> Outcome:
        """`plan_box` holds the plan's object ref (in a list, so Ray does not fetch it on every call)."""
        import ray

        t0 = time.monotonic()
        if plan_id != self.plan_id:
            plan = ray.get(plan_box[0])
            plan.server = dataclasses.replace(plan.server, log_dir=_usable_dir(plan.server.log_dir))
            self.worker.begin(plan)
            self.plan_id, self.plan = plan_id, plan
        probes = [p for p in self.plan.probes if p.name in pending]
        outcome = self.worker.score(config, probes)
        outcome.seconds = time.monotonic() - t0
        return outcome

    def end_run(self, keep: bool) -> None:
        self.worker.end_run(keep)
        self.plan_id = None  # the next pass sends its own plan (begin keeps a server worth keeping)

    def reset(self) -> None:
        self.worker.close()
        self.plan_id = None


def _normal_priority() -> None:
    """Ray starts worker processes at niceness 15 (RAY_worker_niceness), and the actor's llama-server
    inherits it: on a node shared with other work it then got a third of the CPU time that the same
    server started by `rys sweep` gets (measured on the 2-core test VM). Back to 0 where the node allows
    it (root, CAP_SYS_NICE); elsewhere start the nodes with RAY_worker_niceness=0 (docs/sweep.md)."""
    with contextlib.suppress(OSError):
        if os.getpriority(os.PRIO_PROCESS, 0) > 0:
            os.setpriority(os.PRIO_PROCESS, 0, 0)


def _usable_dir(path) -> str | None:
    """The driver's log folder where this node can write it, else a private temporary one."""
    if path is not None:
        try:
            Path(path).mkdir(parents=True, exist_ok=True)
            if os.access(path, os.W_OK):
                return str(path)
        except OSError:
            pass
    return tempfile.mkdtemp(prefix="rys-sweep-logs-")


@dataclass
class _Actor:
    k: int
    handle: object
    node_id: str
    state: str = "starting"  # starting -> idle <-> busy; busy -> reviving (lost a config) -> idle | dead
    waiting: object = None  # the ready() ref while starting or reviving
    info: dict = field(default_factory=dict)  # ready()'s answer: node, GPU, pid


def _answers(address: str) -> None:
    """Fail at once where nothing listens at HOST:PORT: ray.init retries an unreachable head for minutes."""
    if "://" in address:
        return  # ray:// (Ray Client) and other schemes: Ray's own connection says what is wrong
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise SweepError(f"--ray {address} is not auto, local or HOST:PORT",
                         "pass the head's address as ray start --head printed it, e.g. --ray 10.0.0.5:6379")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as err:
        raise SweepError(f"nothing answers at {address} ({err.strerror or err})",
                         "check the head's address and port (ray start --head prints them; default port 6379) "
                         "and that this machine can reach it") from None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise SweepError("--ray needs Ray, which is not installed", "pip install 'rys[ray]'") from None
    return ray


class RayPool:
    """The workers of a sweep as Ray actors. Made once per sweep (SweepJob.pool); close() at the end."""

    def __init__(self, job, address: str = "auto", gpus_per_worker: float | None = None,
                 cpus_per_worker: float | None = None, model_path_on_nodes: str | None = None,
                 max_workers: int | None = None, store_root=None, log=print):
        from rys.sweep.threads import actor_threads

        self.ray = ray = _import_ray()
        self.job = job
        self.log = log
        self.model_spec = model_path_on_nodes or str(job.model)
        self.max_workers = max_workers
        self.store_root = None if store_root is None else str(store_root)
        self.actors: list[_Actor] = []
        self.seen: set[str] = set()  # nodes checked (good or refused)
        self.checks: dict = {}  # ref of a node check under way -> the node (ray.nodes() entry)
        self.polled = 0.0
        self.inflight: dict = {}  # ref -> (actor, config, when it was handed out)
        # per config scored: (driver's round trip, seconds inside the actor); what Ray adds is the gap
        self.round_trips: list[tuple[float, float]] = []
        self.closed = False
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            self._connect(address)
        try:
            totals = ray.cluster_resources()
            if gpus_per_worker is None and cpus_per_worker is None:
                if not totals.get("GPU"):
                    raise SweepError("the Ray cluster has no GPUs",
                                     "pass --cpus-per-worker N for CPU-only workers (N cores each)")
                gpus_per_worker = 1
            if (gpus_per_worker is not None and gpus_per_worker <= 0) or (
                    cpus_per_worker is not None and cpus_per_worker <= 0):
                raise SweepError("--gpus-per-worker and --cpus-per-worker must be more than 0",
                                 "e.g. --gpus-per-worker 1, or --cpus-per-worker 4")
            self.gpus, self.cpus = gpus_per_worker, cpus_per_worker
            if self.gpus:  # a GPU worker's server computes on its GPU: it takes no core from the others
                self.options = {"num_gpus": self.gpus, "num_cpus": self.cpus or 0}
            else:
                self.options = {"num_cpus": self.cpus}
            self.worker_args = actor_threads(job.server.extra_args, None if self.gpus else self.cpus)
            self._discover(first=True)
            if not self.actors:
                need = f"{self.gpus:g} GPU(s)" if self.gpus else f"{self.cpus:g} CPU(s)"
                raise SweepError(f"no node of the Ray cluster has {need} for a worker",
                                 "lower --gpus-per-worker / --cpus-per-worker, or add a node (ray start --address ...)")
        except BaseException:
            self.close()
            raise

    # -- the cluster -----------------------------------------------------------------------------------

    def _connect(self, address: str) -> None:
        ray = self.ray
        kwargs = {"logging_level": logging.WARNING, "configure_logging": True}
        if address not in ("auto", "local"):
            _answers(address)
        try:
            if address == "local":  # a private cluster of this machine, ended with the sweep
                ray.init(include_dashboard=False, **kwargs)
            else:
                ray.init(address=address, **kwargs)
        except ConnectionError as err:
            raise SweepError(f"no Ray cluster at {address}: {str(err).splitlines()[0]}",
                             "start one (ray start --head; then ray start --address HEAD_IP:6379 on each other "
                             "machine), or use --ray local on one machine") from None

    def _per_node(self, node: dict) -> int:
        have = node.get("Resources", {})
        if self.gpus:
            return int(have.get("GPU", 0) // self.gpus)
        return int(have.get("CPU", 0) // self.cpus)

    def _discover(self, first: bool = False) -> None:
        """Check nodes not seen yet and start actors on those that pass. Up front, a node that fails the
        check stops the sweep with its name; later, it is left out with a message."""
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if not first:
            self._collect_checks()
            if time.monotonic() - self.polled < NODE_POLL_S:
                return
        self.polled = time.monotonic()
        check = ray.remote(inspect_node)
        for node in ray.nodes():
            node_id = node["NodeID"]
            if not node.get("Alive") or node_id in self.seen or self._per_node(node) < 1:
                continue
            self.seen.add(node_id)
            ref = check.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)
                                ).remote(self.model_spec, self.job.model_sha256, str(self.job.server.binary))
            self.checks[ref] = node
        if first:
            self.log(f"checking the model on {len(self.checks)} Ray node(s) (its sha256, once per file and node)")
            bad = []
            for ref, node in list(self.checks.items()):
                problem = self._check_result(ref, node)[1]
                if problem is not None:
                    bad.append(problem)
            if bad:
                raise SweepError("; ".join(bad), FIX)
            self._collect_checks(wait=True)

    def _check_result(self, ref, node: dict):
        """(the node's report, None) when it passed its check, else (report or None, "node X <why>")."""
        try:
            report = self.ray.get(ref)
        except self.ray.exceptions.RayError as err:  # the node went away while it was being checked
            return None, f"node {node['NodeManagerAddress']} could not be checked ({type(err).__name__})"
        return report, None if report.problem is None else f"node {report.label} {report.problem}"

    def _collect_checks(self, wait: bool = False) -> None:
        ray = self.ray
        if not self.checks:
            return
        done, _ = ray.wait(list(self.checks), num_returns=len(self.checks), timeout=None if wait else 0)
        for ref in done:
            node = self.checks.pop(ref)
            report, problem = self._check_result(ref, node)
            if problem is not None:
                self.log(f"{problem}: no work goes there")
                continue
            started = 0
            for _ in range(self._per_node(node)):
                if self.max_workers is not None and len(self.actors) >= self.max_workers:
                    break
                self._start_actor(report.node_id, report.model_path)
                started += 1
            if started and not wait:
                self.log(f"node {report.label} joined: {len(self.actors)} workers now")

    def _start_actor(self, node_id: str, model_path: str) -> None:
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        k = len(self.actors)
        remote = ray.remote(SweepActor).options(
            **self.options, max_restarts=ACTOR_RESTARTS, max_task_retries=0,
            # soft: an actor brought back after its node was lost may run on another node
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=True))
        handle = remote.remote(k, self.worker_args, self.store_root, model_path)
        self.actors.append(_Actor(k, handle, node_id, waiting=handle.ready.remote()))

    def worker_pids(self) -> dict[int, int]:
        """Worker index -> the pid of its actor process, for the workers that are up."""
        return {a.k: a.info["pid"] for a in self.actors if a.info and a.state in ("idle", "busy")}

    def busy(self) -> dict[int, str]:
        """Worker index -> the config it is scoring."""
        return {actor.k: config.label for actor, config, _ in list(self.inflight.values())}

    # -- one pass ---------------------------------------------------------------------------------------

    def run(self, plan, configs: list, recorder) -> None:
        ray = self.ray
        plan_box = [ray.put(plan)]
        todo = deque(configs)
        lost: dict[str, list[int]] = {}  # config key -> the workers that died with it, once per loss
        try:
            while todo or self.inflight:
                self._discover()
                self._hand_out(todo, lost, plan_box, plan, recorder)
                waiting = list(self.inflight) + [a.waiting for a in self.actors if a.waiting is not None]
                if not waiting:
                    raise SweepError(f"every Ray worker of this sweep is gone; {len(todo)} configs not scored",
                                     "see the failure log and `ray status`; rerun the same command to resume")
                done, _ = ray.wait(waiting, num_returns=1, timeout=1.0)
                for ref in done:
                    if ref in self.inflight:
                        self._finished(ref, todo, lost, recorder)
                    else:
                        self._woke(ref)
            self._each("end_run", plan.reuse)
        except BaseException:
            self.kill()  # Ctrl-C, a fatal error, a bug: every server on every node stops with its actor
            raise

    def _hand_out(self, todo: deque, lost: dict, plan_box: list, plan, recorder) -> None:
        for actor in [a for a in self.actors if a.state == "idle"]:
            pick = next((c for c in todo if self._may_take(actor, set(lost.get(c.key, ())))), None)
            if pick is None:
                continue
            todo.remove(pick)
            pending = [p.name for p in recorder.pending(pick)]
            ref = actor.handle.score.remote(plan_box, plan.id, pick, pending)
            actor.state = "busy"
            self.inflight[ref] = (actor, pick, time.monotonic())

    def _may_take(self, actor: _Actor, lost_by: set) -> bool:
        """A config goes to a worker that has not died with it before, unless no such worker is up."""
        if actor.k not in lost_by:
            return True
        return not any(a.state in ("idle", "busy", "starting", "reviving") and a.k not in lost_by
                       for a in self.actors)

    def _finished(self, ref, todo: deque, lost: dict, recorder) -> None:
        ray = self.ray
        actor, config, sent = self.inflight.pop(ref)
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayActorError as err:
            lost.setdefault(config.key, []).append(actor.k)
            again = len(lost[config.key]) <= MAX_LOST  # losses, not workers: one worker may die twice
            where = actor.info.get("node_ip", "?")
            recorder.failure(Failure(
                config=config.label, path=config.key, probes=[p.name for p in recorder.pending(config)],
                error="WorkerLost", reason=f"Ray worker {actor.k} on {where} died while scoring it "
                                           f"({type(err).__name__}); " + ("retried on another worker" if again
                                                                          else "not retried again"),
                model_sha256=self.job.model_sha256, worker=actor.k, at=now(),
                extra={k: v for k, v in actor.info.items() if k != "pid"}))
            if again:
                todo.appendleft(config)
            else:
                recorder.done(Outcome(FAILED), rows_written=True)
            actor.state, actor.waiting = "reviving", actor.handle.ready.remote()  # Ray restarts it, or not
            return
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            raise (cause if isinstance(cause, BaseException) else err) from None
        actor.state = "idle"
        self.round_trips.append((time.monotonic() - sent, outcome.seconds))
        recorder.done(outcome, rows_written=False)

    def _woke(self, ref) -> None:
        """A ready() answered: the actor started, came back after a crash, or is gone for good."""
        ray = self.ray
        actor = next(a for a in self.actors if a.waiting == ref)
        actor.waiting = None
        try:
            actor.info = ray.get(ref)
            actor.state = "idle"
        except ray.exceptions.RayError as err:
            actor.state = "dead"
            self.log(f"Ray worker {actor.k} is gone ({type(err).__name__}: {str(err).splitlines()[0][:200]})")

    def _each(self, method: str, *args, timeout: float = 120) -> None:
        """Call a method on every live actor and wait (servers stop before the next pass or the end)."""
        ray = self.ray
        refs = [getattr(a.handle, method).remote(*args) for a in self.actors if a.state in ("idle", "busy")]
        if refs:
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
            for ref in done:
                try:
                    ray.get(ref)
                except ray.exceptions.RayError:
                    pass  # an actor that died meanwhile took its server with it

    # -- the end ------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Stop every actor's server; the actors stay for the next run_configs()."""
        if not self.closed:
            self._each("reset")

    def kill(self) -> None:
        """Kill every actor now: each one's llama-server dies with its process."""
        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(actor.handle, no_restart=True)
            actor.state = "dead"
        self.inflight.clear()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if any(a.state in ("idle", "busy") for a in self.actors):
                self._each("reset", timeout=60)
        finally:
            self.kill()
            self.closed = True
            if self.owns_ray:
                self.ray.shutdown()
