"""Sweeps on a real local Ray cluster (a head and a second node process, one core each) with the real
llama-server on SmolLM2: rows equal a single-process sweep's, actor and driver deaths lose nothing,
nodes without the model are refused up front."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import REQUIRE_REAL

from rys.sweep import SweepError
from rys.sweep.results import read_failures, read_rows
from rys.sweep.space import baseline, block_config

# Where real parts are required (scripts/test.sh, CI) a missing Ray fails the module instead of skipping it
ray = __import__("ray") if REQUIRE_REAL else pytest.importorskip("ray")

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.ray]
N = 30  # SmolLM2 layers
LIMIT = 2
ARGS = ("--threads", "1")  # the same in both runs: scores are compared bit for bit
CONFIGS = [block_config(i, i + 2, N) for i in (4, 10, 16, 22)]
MORE = [block_config(i, i + 3, N) for i in range(2, 26, 3)]  # 8 more, for the tests that change nodes mid-run
ENV = "RYS_TEST_MODELS"  # each node's own folder of models (--model-path-on-nodes '$RYS_TEST_MODELS/...')


@pytest.fixture(scope="module")
def cluster(smollm2):
    """One real two-node Ray cluster for the module; this process is its driver. Shut down at the end."""
    from ray.cluster_utils import Cluster

    env = {ENV: str(Path(smollm2).parent)}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "env_vars": env})
    try:
        cluster.add_node(num_cpus=1, env_vars=env)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="WARNING")
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def binaries(llama_server_bin):
    from rys.llama.runtime import find_patched_server

    try:
        patched = find_patched_server()
    except Exception:  # noqa: BLE001 - the patched build is compared only where it exists
        patched = None
    return {"stock": llama_server_bin, "patched": patched}


def make_job(model: Path, binary: Path, results: Path, tmp_path: Path, workers: int = 1):
    from rys.gguf import LayerStore
    from rys.gguf.provenance import file_sha256
    from rys.probes import load_probe
    from rys.server import ServerConfig
    from rys.sweep.results import ResultStore
    from rys.sweep.runner import SweepJob, limit_items

    return SweepJob(model=model, model_sha256=file_sha256(model), n_layers=N,
                    probes=[limit_items(load_probe("math-logprob"), LIMIT)], results=ResultStore(results),
                    server=ServerConfig(binary=binary, ctx_size=256, extra_args=ARGS, log_dir=tmp_path / "logs"),
                    worker_args=[()] * workers, store=LayerStore(root=tmp_path / "store"), progress=False,
                    log=lambda _: None)


@pytest.fixture(scope="module")
def single(smollm2, binaries, tmp_path_factory):
    """The single-process sweep of CONFIGS (one worker thread) per build: path -> row."""
    from rys.sweep.runner import run_configs

    out = {}
    for build, binary in binaries.items():
        if binary is None:
            continue
        tmp = tmp_path_factory.mktemp(f"single-{build}")
        run_configs(make_job(smollm2, binary, tmp / "r.jsonl", tmp), CONFIGS)
        out[build] = {r.path: r for r in read_rows(tmp / "r.jsonl")}
    return out


def records(row) -> dict:
    """A row's probe result without its wall time: the per-item records and the scores made of them."""
    return {k: v for k, v in row.result.items() if k != "seconds"}


def ray_pool(job, **options):
    from rys.sweep.ray_pool import RayPool

    options.setdefault("cpus_per_worker", 1)
    return RayPool(job, **options, store_root=job.store.root, log=lambda _: None)


def servers_of(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if p.name() == "llama-server"]
    except psutil.NoSuchProcess:
        return []


def servers_under(folder: Path) -> list[psutil.Process]:
    """llama-servers whose command line names `folder` (their model in this test's store or log dir)."""
    out = []
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] == "llama-server" and str(folder) in " ".join(p.info["cmdline"] or []):
            out.append(p)
    return out


@pytest.mark.parametrize("build", ["stock", "patched"])
def test_two_ray_workers_write_the_rows_of_a_single_process_sweep(cluster, smollm2, binaries, single, tmp_path, build):
    from rys.sweep.runner import run_configs

    if binaries[build] is None:
        pytest.skip(f"no {build} llama-server build")
    results = tmp_path / "r.jsonl"
    job = make_job(smollm2, binaries[build], results, tmp_path)
    job.pool = pool = ray_pool(job)
    try:
        assert len(pool.actors) == 2 and len({a.node_id for a in pool.actors}) == 2  # one per node
        stats = run_configs(job, CONFIGS)
        assert (stats.scored, stats.failed) == (5, 0)
        rows = read_rows(results)
        mine = {r.path: r for r in rows}
        assert len(rows) == len(mine) == 5  # every config once
        for path, row in single[build].items():
            assert records(mine[path]) == records(row)  # per-item records, bit for bit
            assert mine[path].delta == row.delta
        assert {r.worker for r in rows} == {0, 1}  # both actors scored
        nodes = {r.provenance["ray_node_id"] for r in rows}
        assert nodes == {a.node_id for a in pool.actors}
        assert all(r.provenance["node"] and r.provenance["gpu"] is None for r in rows)
        if build == "patched":  # each actor kept its server and switched it; the baseline's rows reused
            assert any(r.timings["path_switched"] for r in rows)
            assert any(r.timings["reused_layers"] > 0 for r in rows)
        # a rerun on the same actors scores nothing
        before = results.read_bytes()
        again = run_configs(job, CONFIGS)
        assert (again.scored, again.skipped) == (0, 5) and results.read_bytes() == before
    finally:
        pool.close()
    assert not servers_under(tmp_path)


def test_an_actor_killed_mid_config_is_retried_elsewhere_and_leaves_no_server(cluster, smollm2, binaries, single,
                                                                             tmp_path):
    from rys.sweep.runner import run_configs

    results = tmp_path / "r.jsonl"
    job = make_job(smollm2, binaries["stock"], results, tmp_path)
    job.pool = pool = ray_pool(job)
    killed: dict = {}

    def kill_one_mid_config() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            pids = pool.worker_pids()
            for k, label in pool.busy().items():
                servers = servers_of(pids.get(k, 0))
                if label != "baseline" and servers:  # its server is up: the config is under way
                    killed.update(worker=k, label=label, servers=servers, pid=pids[k])
                    os.kill(pids[k], signal.SIGKILL)
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_mid_config, daemon=True)
    try:
        killer.start()
        stats = run_configs(job, CONFIGS)
        killer.join()
        assert killed, "no actor was caught mid-config"
        _, alive = psutil.wait_procs(killed["servers"], timeout=15)
        assert not alive, "llama-server outlived its killed actor"
        rows = read_rows(results)
        assert sorted(r.path for r in rows) == sorted(single["stock"])  # none lost, none twice
        for row in rows:
            assert records(row) == records(single["stock"][row.path])
        (lost,) = read_failures(results)  # the killed config: a failure record, never a score
        assert lost.error == "WorkerLost" and lost.config == killed["label"] and lost.worker == killed["worker"]
        assert lost.probes == ["math-logprob"]
        redone = next(r for r in rows if r.config == killed["label"])
        assert redone.worker != killed["worker"]  # retried on the other actor
        assert (stats.scored, stats.failed) == (5, 0)
    finally:
        pool.close()
    assert not servers_under(tmp_path)


def test_a_node_without_the_model_is_refused_up_front(cluster, smollm2, binaries, tmp_path):
    """Two more nodes: one whose model folder lacks the file, one whose copy differs by one byte."""
    empty, other = tmp_path / "empty", tmp_path / "other"
    empty.mkdir()
    other.mkdir()
    changed = other / Path(smollm2).name
    shutil.copyfile(smollm2, changed)
    with open(changed, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    added = [cluster.add_node(num_cpus=1, env_vars={ENV: str(folder)}) for folder in (empty, other)]
    try:
        cluster.wait_for_nodes()
        job = make_job(smollm2, binaries["stock"], tmp_path / "r.jsonl", tmp_path)
        spec = f"${ENV}/{Path(smollm2).name}"
        with pytest.raises(SweepError) as refused:
            ray_pool(job, model_path_on_nodes=spec)
        text = refused.value.message
        ids = [n.node_id for n in added]
        assert f"{ids[0][:8]}) has no model file at {empty / Path(smollm2).name}" in text
        assert f"{ids[1][:8]}) holds a different file at {changed}" in text
        assert text.count("Ray node") == 2  # the two good nodes are not named
        assert not (tmp_path / "r.jsonl").exists() and not servers_under(tmp_path)
        assert "--model-path-on-nodes" in refused.value.hint
    finally:
        for node in added:
            cluster.remove_node(node)
    # the same spec on the two good nodes: both get a worker
    pool = ray_pool(make_job(smollm2, binaries["stock"], tmp_path / "r.jsonl", tmp_path), model_path_on_nodes=spec)
    try:
        assert len(pool.actors) == 2
    finally:
        pool.close()


def _sweep_cmd(smollm2, binary, results: Path, store: Path, address: str) -> list[str]:
    return [str(Path(sys.executable).parent / "rys"), "sweep", str(smollm2), "--probe", "math-logprob",
            "--limit", str(LIMIT), "--block-sizes", "2", "--stride", "6", "--start-min", "4", "--start-max", "22",
            "--ctx-size", "256", "--results", str(results), "--tmpdir", str(store), "--llama-server", str(binary),
            "--server-args", " ".join(ARGS), "--no-progress", "--no-report", "--confirm-top", "0",
            "--ray", address, "--cpus-per-worker", "1"]


def test_driver_sigkill_then_rerun_resumes(cluster, smollm2, binaries, single, tmp_path):
    results, store = tmp_path / "r.jsonl", tmp_path / "store"
    cmd = _sweep_cmd(smollm2, binaries["stock"], results, store, cluster.address)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # two rows in, and a config's server up on some node
            if results.exists() and len(read_rows(results)) >= 2 and servers_under(store):
                break
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.05)
        servers = servers_under(store)
        assert servers, "timed out waiting for a config to start"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _, alive = psutil.wait_procs(servers, timeout=60)  # Ray ends a dead driver's actors
        assert not alive, "llama-server outlived the killed driver"
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_rows = read_rows(results)
    assert 2 <= len(killed_rows) < 5
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = read_rows(results)
    assert sorted(r.path for r in rows) == sorted(single["stock"])  # every config once, none twice
    assert [r.path for r in rows[: len(killed_rows)]] == [r.path for r in killed_rows]
    for row in rows:
        assert records(row) == records(single["stock"][row.path])
    assert "Ray: 2 workers on 2 node(s)" in done.stdout
    assert not servers_under(store)


def test_ray_option_errors_are_one_line(cluster, smollm2, binaries, tmp_path):
    from click.testing import CliRunner

    from rys.cli import main

    base = ["sweep", str(smollm2), "--probe", "math-logprob", "--results", str(tmp_path / "r.jsonl"),
            "--llama-server", str(binaries["stock"])]
    for extra, says in ((["--ray", "auto", "--worker-args", "-t 1"], "--worker-args runs workers in this process"),
                        (["--cpus-per-worker", "1"], "--cpus-per-worker is a Ray option"),
                        (["--ray", cluster.address], "the Ray cluster has no GPUs")):
        out = CliRunner().invoke(main, base + extra)
        assert out.exit_code == 2 and f"error: {says}" in out.output and "Traceback" not in out.output, out.output


def test_sweep_py_passes_ray_on():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sweep_py", Path(__file__).resolve().parent.parent / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = module.translate(["--model", "m.gguf", "--ray", "--cpus-per-worker", "2", "--server-args", "-ngl", "99"])
    assert argv[argv.index("--ray") + 1] == "auto" and argv[-2:] == ["--cpus-per-worker", "2"]
    argv = module.translate(["--model", "m.gguf", "--ray", "10.0.0.1:6379"])
    assert argv[argv.index("--ray") + 1] == "10.0.0.1:6379"
    assert "--ray" not in module.translate(["--model", "m.gguf"])


def _sweep_in_background(job, configs):
    """(an unstarted thread that runs the sweep, the dict it leaves "stats" or "error" in)."""
    from rys.sweep.runner import run_configs

    outcome: dict = {}

    def sweep() -> None:
        try:
            outcome["stats"] = run_configs(job, configs)
        except BaseException as err:  # noqa: BLE001 - reported by the test that reads outcome
            outcome["error"] = err

    return threading.Thread(target=sweep, daemon=True), outcome


def test_a_node_that_joins_mid_run_gets_work(cluster, smollm2, binaries, single, tmp_path):

    results = tmp_path / "r.jsonl"
    job = make_job(smollm2, binaries["stock"], results, tmp_path)
    job.pool = pool = ray_pool(job)
    # enough configs that the sweep outlasts the new node's check and server start (with 8 more, an idle
    # machine finished before the third worker got one)
    more = MORE + [block_config(i, i + 4, N) for i in range(1, 26, 2)]
    joined = []
    # nodes are added from the main thread only
    runner, outcome = _sweep_in_background(job, CONFIGS + more)
    try:
        runner.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (results.exists() and len(read_rows(results)) >= 2):
            assert runner.is_alive(), outcome
            time.sleep(0.05)
        joined.append(cluster.add_node(num_cpus=1, env_vars={ENV: str(Path(smollm2).parent)}))
        runner.join(300)
        assert "error" not in outcome, outcome
        stats = outcome["stats"]
        rows = read_rows(results)
        assert (stats.scored, stats.failed) == (1 + len(CONFIGS) + len(more), 0)
        assert len({r.path for r in rows}) == len(rows) == stats.scored
        assert len(pool.actors) == 3 and pool.actors[2].node_id == joined[0].node_id
        assert any(r.worker == 2 for r in rows)  # the new node's worker scored configs
        assert all(r.provenance["ray_node_id"] == joined[0].node_id for r in rows if r.worker == 2)
        for row in rows:
            if row.path in single["stock"]:
                assert records(row) == records(single["stock"][row.path])
    finally:
        pool.close()
        for node in joined:
            cluster.remove_node(node)
    assert not servers_under(tmp_path)


def test_ctrl_c_on_the_driver_stops_every_server(cluster, smollm2, binaries, tmp_path):
    results, store = tmp_path / "r.jsonl", tmp_path / "store"
    cmd = _sweep_cmd(smollm2, binaries["stock"], results, store, cluster.address)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if results.exists() and read_rows(results) and servers_under(store):
                break
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
            time.sleep(0.05)
        servers = servers_under(store)
        assert servers
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0 and "Traceback" not in err, err[-2000:]
        _, alive = psutil.wait_procs(servers, timeout=15)
        assert not alive and not servers_under(store)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = read_rows(results)
    assert len({r.path for r in rows}) == len(rows) >= 1  # what was written is whole and once


def test_a_ray_address_where_nothing_answers_is_one_line_at_once(smollm2, tmp_path):
    from rys.server.ports import free_port

    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    rys = str(Path(sys.executable).parent / "rys")
    for where, says in ((address, f"error: nothing answers at {address}"),
                        ("nonsense", "error: --ray nonsense is not auto, local or HOST:PORT")):
        done = subprocess.run([rys, "sweep", str(smollm2), "--probe", "math-logprob", "--results",
                               str(tmp_path / "r.jsonl"), "--ray", where, "--cpus-per-worker", "1"],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not (tmp_path / "r.jsonl").exists()


def test_a_node_lost_mid_config_loses_no_row(cluster, smollm2, binaries, single, tmp_path):

    extra = cluster.add_node(num_cpus=1, env_vars={ENV: str(Path(smollm2).parent)})
    cluster.wait_for_nodes()
    results = tmp_path / "r.jsonl"
    job = make_job(smollm2, binaries["stock"], results, tmp_path)
    job.pool = pool = ray_pool(job)
    doomed = next(a for a in pool.actors if a.node_id == extra.node_id)
    # nodes are removed from the main thread only
    runner, outcome = _sweep_in_background(job, CONFIGS + MORE)
    removed = False
    try:
        runner.start()
        deadline = time.monotonic() + 120
        servers: list = []
        while time.monotonic() < deadline:  # the extra node's worker is scoring a config, its server up
            label = pool.busy().get(doomed.k)
            servers = servers_of(pool.worker_pids().get(doomed.k, 0))
            if label not in (None, "baseline") and servers:
                break
            assert runner.is_alive(), outcome
            time.sleep(0.02)
        assert servers, "the extra node's worker never got a config"
        cluster.remove_node(extra)
        removed = True
        runner.join(300)
        assert "error" not in outcome, outcome
        _, alive = psutil.wait_procs(servers, timeout=30)
        assert not alive, "llama-server outlived its node"
        rows = read_rows(results)
        assert sorted(r.path for r in rows) == sorted(c.key for c in [baseline(N), *CONFIGS, *MORE])  # once each
        for row in rows:
            if row.path in single["stock"]:
                assert records(row) == records(single["stock"][row.path])
        lost = read_failures(results)
        assert [f.error for f in lost] == ["WorkerLost"] and lost[0].worker == doomed.k
        assert next(r for r in rows if r.config == lost[0].config).worker != doomed.k
        assert outcome["stats"].failed == 0
    finally:
        pool.close()
        if not removed:
            cluster.remove_node(extra)
    assert not servers_under(tmp_path)
