"""The sweep's commands: argument checks, report/export from a results file, sweep.py's flag translation."""

import importlib.util
from pathlib import Path

from click.testing import CliRunner
from test_sweep_outputs import N, make_row

from rys import paths as layer_paths
from rys.cli import main
from rys.sweep.export import parse_mergekit_yaml
from rys.sweep.results import ResultStore

ROOT = Path(__file__).resolve().parent.parent


def _results(tmp_path, model):
    results = tmp_path / "r.jsonl"
    store = ResultStore(results)
    for row in (make_row(0, 0, "math", 0.0, times=1), make_row(1, 3, "math", 0.3), make_row(2, 4, "math", 0.1)):
        row.provenance["model"] = str(model)
        store.append(row)
    return results


def test_export_path_yaml_and_gguf(tmp_path, smollm2):
    results = _results(tmp_path, smollm2)
    run = CliRunner().invoke(main, ["export", str(results)])  # best = confirmed best: there is none yet
    assert run.exit_code != 0 and "no held-out confirmation" in run.output and "search-best" in run.output
    run = CliRunner().invoke(main, ["export", str(results), "--config", "search-best"])
    assert run.exit_code == 0 and run.output.strip() == layer_paths.format_path(layer_paths.duplicate(1, 3, N))
    # held-out items: the search's winner (1,3) does not hold up, the runner-up (2,4) does
    store = ResultStore(results)
    for row in (make_row(0, 0, "math", 0.0, times=1, stage="confirm", prefix="h"),
                make_row(1, 3, "math", 0.05, sig=False, stage="confirm", prefix="h"),
                make_row(2, 4, "math", 0.2, stage="confirm", prefix="h")):
        store.append(row)
    run = CliRunner().invoke(main, ["export", str(results)])
    assert run.exit_code == 0 and run.output.strip() == layer_paths.format_path(layer_paths.duplicate(2, 4, N))
    run = CliRunner().invoke(main, ["report", str(results), "--out", str(tmp_path / "rep"), "--no-html"])
    assert "search +0.1000 -> held-out +0.2000" in run.output and "confirmed best: (2,4)" in run.output
    run = CliRunner().invoke(main, ["export", str(results), "--config", "2,4", "--format", "yaml",
                                    "--hf-model", "org/m"])
    assert run.exit_code == 0 and parse_mergekit_yaml(run.output) == layer_paths.duplicate(2, 4, N)

    # A standalone GGUF of a real model's path (the results' N is 6: pass a full path for the 30-layer model)
    out = tmp_path / "best.gguf"
    run = CliRunner().invoke(main, ["export", str(results), "--config", "0..9,5..29", "--format", "gguf",
                                    "--out", str(out)])
    assert run.exit_code == 0, run.output
    from rys.gguf.source import open_source

    assert open_source(out).n_layers == 35


def test_report_command(tmp_path, smollm2):
    results = _results(tmp_path, smollm2)
    run = CliRunner().invoke(main, ["report", str(results), "--out", str(tmp_path / "rep"), "--no-html"])
    assert run.exit_code == 0, run.output
    assert "baseline score" in run.output and (tmp_path / "rep" / "heatmap.math.png").is_file()


def test_sweep_refuses_bad_arguments_before_starting_anything(tmp_path, smollm2, llama_server_bin):
    base = ["sweep", str(smollm2), "--probe", "math", "--results", str(tmp_path / "r.jsonl"),
            "--llama-server", str(llama_server_bin)]
    for extra, message in ((["--block-sizes", "2 x"], "whole numbers"),
                           (["--workers", "2", "--port", "8080"], "--port"),
                           (["--workers", "3", "--worker-args", "-t 1", "--worker-args", "-t 2"], "once per worker"),
                           (["--start-min", "9", "--start-max", "2"], "start-max"),
                           (["--block-sizes", "40"], "block sizes"),
                           (["--probe", "nope"], "unknown probe")):
        run = CliRunner().invoke(main, base + extra)
        assert run.exit_code == 2 and message in run.output, (extra, run.output)
    assert not (tmp_path / "r.jsonl").exists()


def _sweep_py():
    spec = importlib.util.spec_from_file_location("sweep_py", ROOT / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_py_speaks_llm_circuit_finder_flags():
    module = _sweep_py()
    argv = module.translate(["--model", "m.gguf", "--llama-server", "/bin/ls", "--tmpdir", "/tmp/x",
                             "--results", "r.jsonl", "--block-sizes", "3", "4", "5", "--stride", "2",
                             "--start-min", "4", "--start-max", "20", "--skip-baseline", "--port", "9000",
                             "--limit", "8", "--server-args", "-t", "4", "--no-mmap"], n_layers=30)
    assert argv == ["sweep", "m.gguf", "--probe", "math,eq", "--llama-server", "/bin/ls", "--tmpdir", "/tmp/x",
                    "--results", "r.jsonl", "--stride", "2", "--start-min", "4", "--port", "9000",
                    "--start-max", "20", "--block-sizes", "3 4 5", "--server-args", "-t 4 --no-mmap",
                    "--skip-baseline", "--limit", "8"]
    # a quoted string works too, as `rys sweep --server-args` takes it
    assert module.translate(["--model", "m", "--server-args", "-t 4"])[-2:] == ["--server-args", "-t 4"]


def test_sweep_py_defaults_are_llm_circuit_finders():
    # theirs: 8-layer blocks, stride 4, starts 4 .. n - 8 - 4
    argv = _sweep_py().translate(["--model", "m.gguf"], n_layers=30)
    assert argv == ["sweep", "m.gguf", "--probe", "math,eq", "--stride", "4", "--start-min", "4",
                    "--start-max", "18", "--block-sizes", "8"]
    from rys.sweep.space import PairSpace

    assert PairSpace(30, block_sizes=(8,), stride=4, start_min=4, start_max=18).pairs() == [
        (4, 12), (8, 16), (12, 20), (16, 24)]
