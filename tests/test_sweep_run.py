"""Real sweeps: the real llama-server on SmolLM2 through the layer store, with a 2-item probe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from rys import paths as layer_paths
from rys.llama.features import cpu_only
from rys.sweep import SweepError
from rys.sweep.results import ResultStore, read_failures, read_rows
from rys.sweep.space import PairSpace, block_config

pytestmark = [pytest.mark.server, pytest.mark.slow]
N = 30  # SmolLM2 layers
LIMIT = 2


@pytest.fixture
def job(smollm2, llama_server_bin, tmp_path):
    from rys.gguf import LayerStore
    from rys.gguf.provenance import file_sha256
    from rys.probes import load_probe
    from rys.server import ServerConfig
    from rys.sweep.runner import SweepJob, limit_items

    def make(results: Path, workers: int = 1, worker_args=None) -> SweepJob:
        return SweepJob(model=smollm2, model_sha256=file_sha256(smollm2), n_layers=N,
                        probes=[limit_items(load_probe("math-logprob"), LIMIT)], results=ResultStore(results),
                        server=ServerConfig(binary=llama_server_bin, ctx_size=256, log_dir=tmp_path / "logs"),
                        worker_args=worker_args or [()] * workers, store=LayerStore(root=tmp_path / "store"), progress=False,
                        log=lambda _: None)

    return make


def _llama_children(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if p.name() == "llama-server"]
    except psutil.NoSuchProcess:
        return []


def test_two_workers_write_complete_rows_and_a_rerun_skips_them(job, tmp_path):
    from rys.sweep.runner import run_configs

    results = tmp_path / "r.jsonl"
    configs = [block_config(10, 12, N), block_config(20, 22, N)]
    per_worker = [("--threads", "1"), ("--threads", "2")]
    stats = run_configs(job(results, worker_args=per_worker), configs)
    assert (stats.scored, stats.failed) == (3, 0)  # the baseline, then the two configs
    on_cpu = cpu_only(job(results).server.binary)
    rows = {r.path: r for r in read_rows(results)}
    assert set(rows) == {"0..29", "0..11,10..29", "0..21,20..29"}
    base = rows["0..29"]
    assert base.is_baseline and base.delta["delta"] == 0.0 and base.n_layers == N
    for row in rows.values():
        assert row.n_items == LIMIT and len(row.result["items"]) == LIMIT
        assert layer_paths.parse_path(row.path) == (
            list(range(N)) if row.is_baseline else layer_paths.duplicate(row.i, row.j, N))
        assert set(row.timings) == {"materialize_s", "bytes_written", "server_start_s", "ready_wait_s", "score_s",
                                    "path_switched", "reused_layers"}
        # a stock build: a fresh server per config, every layer evaluated
        assert row.timings["path_switched"] is False and row.timings["reused_layers"] == 0
        assert row.provenance["method"] in ("runtime", "rewrite")
        assert row.provenance["model_sha256"] == job(results).model_sha256
        assert row.provenance["llama_build"] and row.provenance["rys_version"]
        # rys's CPU launch defaults recorded where the build runs on the CPU only (none on a GPU build),
        # continuations forced token by token on a stock build
        assert row.provenance["launch_args"] == (["-fit", "off", "-fa", "off"] if on_cpu else [])
        assert row.provenance["prompt_window"] == 0
        expected = sum(i["score"] for i in row.result["items"]) / LIMIT - sum(
            i["score"] for i in base.result["items"]) / LIMIT
        assert row.delta["delta"] == pytest.approx(expected)
    for row in rows.values():  # each worker's server ran with its own arguments
        assert row.provenance["server_args"] == list(per_worker[row.worker])

    before = results.read_bytes()
    again = run_configs(job(results, workers=2), configs)
    assert (again.scored, again.skipped) == (0, 3) and results.read_bytes() == before

    # one worker starting each next server ahead scores the same, through the same rows
    ahead = job(tmp_path / "ahead.jsonl", worker_args=[("--threads", "1")])
    ahead.prefetch = True
    assert run_configs(ahead, configs).scored == 3
    rows_ahead = {r.path: r for r in read_rows(tmp_path / "ahead.jsonl")}
    assert set(rows_ahead) == set(rows)
    for path, row in rows_ahead.items():
        assert [i["score"] for i in row.result["items"]] == pytest.approx(
            [i["score"] for i in rows[path].result["items"]], rel=1e-6, abs=1e-9)
        assert {"ready_wait_s", "server_start_s"} <= set(row.timings)


@pytest.mark.parametrize("prefetch", [False, True])
def test_a_config_whose_server_fails_is_a_failure_record_then_retried(job, tmp_path, prefetch, monkeypatch):
    from rys.sweep import worker
    from rys.sweep.runner import run_configs

    opened = []  # (config label, started ahead?) in order
    real_open = worker.Worker._open

    def spy(self, config, ahead):
        opened.append((config.label, ahead))
        return real_open(self, config, ahead)

    monkeypatch.setattr(worker.Worker, "_open", spy)

    results = tmp_path / "r.jsonl"
    # the bad config runs second: with prefetch its server is started ahead, fails, and is retried alone
    good, bad = block_config(10, 12, N), block_config(20, 23, N)  # L20-P23: a file only bad uses
    sweep = job(results)
    sweep.prefetch = prefetch
    # A damaged layer file only this config uses: llama-server really fails to load it.
    with sweep.store.materialize(sweep.model, list(bad.path)) as lease:
        own = [f for f in lease.files if f.is_file() and f.name == f"L{bad.i}-P{bad.j}.gguf"]
        assert len(own) == 1
        os.truncate(own[0], 4096)
    stats = run_configs(sweep, [bad, good])
    assert (stats.scored, stats.failed) == (2, 1)
    assert {r.path for r in read_rows(results)} == {"0..29", good.key}
    (failure,) = read_failures(results)
    assert failure.path == bad.key and failure.error == "ModelLoadError" and failure.log_tail
    assert failure.probes == ["math-logprob"]
    assert failure.log_path and Path(failure.log_path).is_file()  # kept, and not overwritten by a later config
    if prefetch:  # bad was started ahead, failed, and was retried alone before it counted as failed
        assert opened == [("baseline", False), ("(10,12)", False), ("(20,23)", True), ("(20,23)", False)]
    else:
        assert opened == [("baseline", False), ("(10,12)", False), ("(20,23)", False)]

    own[0].unlink()  # the store writes it again: the retry succeeds
    again = job(results)
    again.prefetch = prefetch
    stats = run_configs(again, [bad, good])
    assert (stats.scored, stats.skipped, stats.failed) == (1, 2, 0)
    rows = read_rows(results)
    assert len(rows) == 3 and rows[-1].path == bad.key and rows[-1].n_items == LIMIT


def test_a_failed_baseline_stops_the_sweep(job, tmp_path):
    import dataclasses

    from rys.sweep.runner import run_configs

    results = tmp_path / "r.jsonl"
    sweep = job(results)
    sweep.server = dataclasses.replace(sweep.server, startup_timeout=0.01)
    with pytest.raises(SweepError, match="baseline"):
        run_configs(sweep, [block_config(10, 12, N)])
    assert not results.exists() or read_rows(results) == []
    assert read_failures(results)[0].error == "ServerStartTimeout"


def test_sigkill_mid_config_then_resume_loses_and_duplicates_nothing(smollm2, llama_server_bin, tmp_path):
    results = tmp_path / "r.jsonl"
    store = tmp_path / "store"
    cmd = [str(Path(sys.executable).parent / "rys"), "sweep", str(smollm2), "--probe", "math-logprob", "--limit", str(LIMIT),
           "--block-sizes", "2", "--stride", "10", "--ctx-size", "256", "--results", str(results),
           "--tmpdir", str(store), "--llama-server", str(llama_server_bin), "--no-progress", "--no-report",
           "--confirm-top", "0"]  # the search's rows only: held-out rows resume alike (test_sweep_strategy)
    expected = {"0..29"} | {layer_paths.format_path(layer_paths.duplicate(i, i + 2, N))
                            for i, _ in PairSpace(N, block_sizes=(2,), stride=10).pairs()}
    assert len(expected) == 4
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        # Kill once two rows are in and the next config's server is up (mid-config).
        while time.monotonic() < deadline:
            n_rows = len(read_rows(results)) if results.exists() else 0
            if n_rows >= 2 and _llama_children(proc.pid):
                break
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.05)
        servers = _llama_children(proc.pid)
        assert servers, "timed out waiting for a config to start"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _, alive = psutil.wait_procs(servers, timeout=10)
        assert not alive, "llama-server outlived the killed sweep"
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_rows = read_rows(results)
    assert 2 <= len(killed_rows) < 4

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = read_rows(results)
    assert sorted(r.path for r in rows) == sorted(expected)  # every config once, none twice
    assert [r.path for r in rows[: len(killed_rows)]] == [r.path for r in killed_rows]
    assert all(json.loads(line) for line in results.read_text().splitlines())
    leftovers = [p for p in [*store.rglob("*"), *tmp_path.glob("*")] if ".tmp" in p.name]
    assert not leftovers
    assert not list((store / "leases").iterdir())  # the killed sweep's leases went with the resume
    assert not [p for p in psutil.process_iter(["name", "cmdline"])
                if p.info["name"] == "llama-server" and str(store) in " ".join(p.info["cmdline"] or [])]


def test_sweep_py_end_to_end_with_report_and_exports(smollm2, llama_server_bin, tmp_path):
    """llm-circuit-finder's command line, run for real: rows, heatmaps with the right axes, ranking, YAML."""
    from click.testing import CliRunner

    from rys.cli import main
    from rys.sweep.export import parse_mergekit_yaml
    from rys.sweep.heatmap import build_grid, png_figure

    results, store = tmp_path / "r.jsonl", tmp_path / "store"
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, str(root / "sweep.py"), "--model", str(smollm2), "--llama-server", str(llama_server_bin),
           "--tmpdir", str(store), "--results", str(results), "--block-sizes", "2", "3", "--stride", "12",
           "--start-min", "2", "--start-max", "14", "--probe", "math-logprob", "--limit", str(LIMIT),
           "--ctx-size", "256", "--no-progress", "--server-args", "--threads", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    every = read_rows(results)
    rows = [r for r in every if r.stage == "search"]
    assert sorted((r.i, r.j) for r in rows if not r.is_baseline) == [(2, 4), (2, 5), (14, 16), (14, 17)]
    assert len(rows) == 5 and sum(r.is_baseline for r in rows) == 1
    # then the held-out confirmation: the baseline and the top 3 on 2 fresh items
    held = [r for r in every if r.stage == "confirm"]
    assert len(held) == 4 and sum(r.is_baseline for r in held) == 1 and all(r.n_items == LIMIT for r in held)
    assert all(r.provenance["server_args"] == ["--threads", "2"] for r in rows)

    report = tmp_path / "r-report"
    names = sorted(p.name for p in report.iterdir())
    assert names == ["heatmap.math-logprob.html", "heatmap.math-logprob.png", "ranking.tsv", "summary.txt"]
    assert (report / "heatmap.math-logprob.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "baseline score" in done.stdout and "(2,4)" in (report / "summary.txt").read_text()
    ranking = (report / "ranking.tsv").read_text().splitlines()
    assert len(ranking) == 1 + 4
    # the heatmap drawn from these rows: x = j over 4..17, y = i over 2..14, one cell per config
    grid = build_grid([r for r in rows if not r.is_baseline], "t")
    assert grid.j_values == list(range(4, 18)) and grid.i_values == list(range(2, 15))
    assert int((grid.delta == grid.delta).sum()) == 4
    ax = png_figure(grid).axes[0]
    assert ax.get_xlabel().startswith("j") and ax.get_ylabel().startswith("i")
    assert ax.get_xlim() == (3.5, 17.5) and ax.get_ylim() == (1.5, 14.5)

    # 2 held-out items cannot confirm anything: "best" refuses, the search's winner exports on request
    refused = CliRunner().invoke(main, ["export", str(results)])
    assert refused.exit_code != 0 and "no config held up" in refused.output
    best = CliRunner().invoke(main, ["export", str(results), "--config", "search-best"])
    assert best.exit_code == 0, best.output
    yaml_out = CliRunner().invoke(main, ["export", str(results), "--config", "search-best", "--format", "yaml",
                                         "--hf-model", "org/m"])
    assert yaml_out.exit_code == 0 and parse_mergekit_yaml(yaml_out.output) == layer_paths.parse_path(best.output.strip())
    assert not [p for p in store.rglob("*") if ".tmp" in p.name]


def test_a_server_that_crashes_mid_config_is_replaced_once_and_the_config_scored(job, tmp_path):
    """A real SIGSEGV of the baseline's llama-server after its first probe's row: the worker scores the
    other probe on a fresh server (one retry, noted in the row), and the sweep goes on with no failure."""
    from rys.probes import load_probe
    from rys.sweep.runner import limit_items, run_configs

    results = tmp_path / "r.jsonl"
    sweep = job(results)
    sweep.probes = [limit_items(load_probe("math-logprob"), LIMIT), limit_items(load_probe("reasoning"), LIMIT)]
    append, killed = sweep.results.append, []

    def append_then_crash(row):
        append(row)
        if row.is_baseline and not killed:
            for server in _llama_children(os.getpid()):  # only servers this test started
                server.send_signal(signal.SIGSEGV)
                killed.append(server.pid)

    sweep.results.append = append_then_crash
    stats = run_configs(sweep, [block_config(10, 12, N)])
    assert killed and (stats.scored, stats.failed) == (2, 0)
    assert not read_failures(results)
    rows = read_rows(results)
    base = {r.probe: r for r in rows if r.is_baseline}
    assert set(base) == {"math-logprob", "reasoning"} and len(rows) == 4
    first, second = (base[p.name] for p in sweep.probes)
    assert "crash_retried" not in first.timings and "signal 11" in second.timings["crash_retried"]
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in killed)
