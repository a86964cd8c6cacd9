"""One sweep per results file (rys.sweep.claim): a second `rys sweep` on the same file refuses with the
pid of the first, a results path that cannot be made is a one-line error before any server starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rys.sweep import SweepError
from rys.sweep.claim import ResultsLock, lock_path
from rys.sweep.results import read_rows

N = 30  # SmolLM2 layers


def test_a_second_lock_on_one_file_names_the_holder(tmp_path):
    results = tmp_path / "sub" / "r.jsonl"
    with ResultsLock(results):
        assert lock_path(results).read_text().strip() == str(os.getpid())
        # another process (flock is per open file: a second open in this process conflicts the same way)
        with pytest.raises(SweepError) as refused:
            ResultsLock(results).acquire()
        assert refused.value.message == f"results file {results} is in use by rys pid {os.getpid()}"
        assert "another --results" in refused.value.hint
    assert not lock_path(results).exists()  # released and removed
    with ResultsLock(results):  # free again
        pass


def test_a_killed_holder_leaves_the_file_free(tmp_path):
    results = tmp_path / "r.jsonl"
    code = ("import sys, time; from rys.sweep.claim import ResultsLock; "
            f"ResultsLock({str(results)!r}).acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SweepError, match=f"in use by rys pid {holder.pid}"):
            ResultsLock(results).acquire()
        holder.kill()
        holder.wait()
    finally:
        if holder.poll() is None:
            holder.kill()
    assert lock_path(results).exists()  # SIGKILL left the file, with a dead pid in it; the lock went
    with ResultsLock(results):
        assert lock_path(results).read_text().strip() == str(os.getpid())


@pytest.mark.parametrize("where", ["/proc/rys-test/r.jsonl", "/proc/version/r.jsonl"])
def test_a_results_path_that_cannot_be_made_is_one_line_before_any_server(where, server_starts):
    from click.testing import CliRunner

    from rys.cli import main

    out = CliRunner().invoke(main, ["sweep", "smollm2", "--probe", "math-logprob", "--results", where])
    assert out.exit_code == 2, out.output
    lines = out.output.strip().splitlines()
    assert lines[0].startswith(f"error: cannot create the folder of the results file {where}")
    assert lines[1].startswith("  fix:") and len(lines) == 2 and "Traceback" not in out.output
    assert server_starts == []


def _sweep_cmd(model, binary, results, tmp_path) -> list[str]:
    """A small real sweep (the baseline and 3 configs) as a separate rys process."""
    return [str(Path(sys.executable).parent / "rys"), "sweep", str(model), "--probe", "math-logprob",
            "--limit", "2", "--block-sizes", "2", "--stride", "12", "--ctx-size", "256", "--results", str(results),
            "--tmpdir", str(tmp_path / "store"), "--llama-server", str(binary), "--no-progress",
            "--no-report", "--confirm-top", "0", "--server-args", "--threads 1"]


@pytest.mark.server
@pytest.mark.slow
def test_two_sweeps_started_together_on_one_file_score_each_config_once(smollm2, llama_server_bin, tmp_path):
    results = tmp_path / "r.jsonl"
    cmd = _sweep_cmd(smollm2, llama_server_bin, results, tmp_path)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=400) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = next(i for i, p in enumerate(procs) if p.returncode == 2)
    winner = procs[1 - loser]
    err = outs[loser][1].strip().splitlines()
    assert err[0] == f"error: results file {results} is in use by rys pid {winner.pid}", err
    assert len(err) == 2 and "Traceback" not in outs[loser][1]
    rows = read_rows(results)
    paths = [r.path for r in rows]
    assert len(paths) == len(set(paths)) == 4  # the baseline and (0,2), (12,14), (24,26): each once
    assert not lock_path(results).exists()


@pytest.mark.server
@pytest.mark.slow
def test_a_sweep_started_while_another_runs_refuses_then_resumes_after(smollm2, llama_server_bin, tmp_path):
    results = tmp_path / "r.jsonl"
    cmd = _sweep_cmd(smollm2, llama_server_bin, results, tmp_path)
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (results.exists() and read_rows(results)):  # the first one is scoring
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 2
        assert f"is in use by rys pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert first.wait(timeout=400) == 0
    finally:
        if first.poll() is None:
            first.kill()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0 and "0 configs scored" in again.stdout, again.stdout + again.stderr
    assert len(read_rows(results)) == 4
