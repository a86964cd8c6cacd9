"""Results store, ranking math, exports and reports on hand-made rows (no server needed)."""

import json
import os
import struct

import psutil
import pytest

from rys import paths as layer_paths
from rys.sweep import SweepError
from rys.sweep.export import choose, mergekit_yaml, parse_mergekit_yaml, slices
from rys.sweep.heatmap import build_grid, png_figure
from rys.sweep.rank import combined_ranking, dominates, pareto_front, zscores
from rys.sweep.report import write_report
from rys.sweep.results import Failure, ResultStore, Row, read_failures, read_rows

N = 6


def make_row(i, j, probe, delta, times=2, sig=None, model="m" * 64, n=10, stage="search", prefix="q"):
    """A row with per-item records over n items, the baseline scoring 0.5 on each. A significant config
    moves every item by `delta` (exact sign-flip p = 2/2^n); any other alternates +-0.4 around it."""
    path = list(range(N)) if times == 1 else layer_paths.repeat(i, j, times, N)
    strong = (abs(delta or 0) > 0.1) if sig is None else sig
    diffs = [0.0] * n if times == 1 else [delta + (0 if strong else 0.4 * (-1) ** k) for k in range(n)]
    items = [{"id": f"{prefix}{k}", "category": "c", "score": 0.5 + x, "correct": True} for k, x in enumerate(diffs)]
    d = None if delta is None else {"delta": delta, "ci_low": delta - 0.1, "ci_high": delta + 0.1, "p": 0.01}
    return Row(config="baseline" if times == 1 else f"({i},{j})", path=layer_paths.format_path(path), i=i, j=j,
               times=times, interleaved=False, n_layers=len(path), probe=probe,
               probe_sha256=("p" if stage == "search" else "h") * 64,
               score=0.5 + (delta or 0), ci=[0.4, 0.6], coverage=0.9, n_items=n, delta=d, result={"items": items},
               timings={}, provenance={"model": "/x/model.gguf", "model_sha256": model}, stage=stage,
               probe_version="p" * 64)


def test_zscores_by_hand():
    # mean 2, population std sqrt(2/3)
    z = zscores([1.0, 2.0, 3.0])
    assert z == pytest.approx([-1.224744871, 0.0, 1.224744871])
    assert zscores([4.0, 4.0]) == [0.0, 0.0]


def test_pareto_and_combined_ranking():
    rows = [make_row(0, 0, "math", 0.0, times=1), make_row(0, 0, "eq", 0.0, times=1)]
    # math deltas (0.3, 0.1, 0.2), eq deltas (0.0, 0.4, -0.1)
    for (i, j), m, e in [((1, 3), 0.3, 0.0), ((2, 4), 0.1, 0.4), ((3, 5), 0.2, -0.1)]:
        rows += [make_row(i, j, "math", m), make_row(i, j, "eq", e)]
    ranked = combined_ranking(rows)
    assert [r.config for r in ranked] == ["(1,3)", "(2,4)", "(3,5)"]  # z-sums .762, .164, -.926
    # z(math) = (1.2247, -1.2247, 0); z(eq) for (0, .4, -.1): mean .1, std .21602 -> (-.4629, 1.3887, -.9258)
    by = {r.config: r for r in ranked}
    assert by["(1,3)"].combined == pytest.approx(1.224744871 - 0.462910050)
    assert by["(2,4)"].combined == pytest.approx(-1.224744871 + 1.388730150)
    # (3,5) is beaten by (1,3) on both probes
    assert [r.config for r in pareto_front(ranked)] == ["(1,3)", "(2,4)"]
    assert dominates({"a": 1, "b": 1}, {"a": 1, "b": 0}) and not dominates({"a": 1}, {"a": 1})


def test_store_appends_resume_keys_and_cuts_a_torn_line(tmp_path):
    path = tmp_path / "r.jsonl"
    store = ResultStore(path)
    row = make_row(1, 3, "math", 0.2)
    store.append(row)
    with open(path, "ab") as fh:  # a writer killed mid-line
        fh.write(b'{"config": "(2,4)", "pa')
    assert [r.path for r in read_rows(path)] == [row.path]
    again = ResultStore(path)
    assert again.is_done("m" * 64, row.path, "math", "p" * 64)
    assert not again.is_done("x" * 64, row.path, "math", "p" * 64)
    again.append(make_row(2, 4, "math", 0.1))
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["status"] == "ok" for line in lines)
    again.record_failure(Failure(config="(3,5)", path="0..4,3..5", probes=["math"], error="ModelLoadError",
                                 reason="boom", log_tail="tail"))
    assert [f.reason for f in read_failures(path)] == ["boom"]
    assert len(read_rows(path)) == 2  # failures never become rows


def test_corrupt_middle_line_is_a_clear_error(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("not json\n{}\n")
    with pytest.raises(SweepError, match="r.jsonl:1"):
        read_rows(path)


def test_slices_are_minimal_and_yaml_round_trips():
    path = layer_paths.parse_path("0..9,5..29")
    assert slices(path) == [(0, 10), (5, 30)]
    assert slices([0, 1, 1, 2, 5, 4]) == [(0, 2), (1, 3), (5, 6), (4, 5)]
    for p in (path, [0, 1, 1, 2, 5, 4], layer_paths.interleave(3, 6, 3, 10), list(range(30))):
        text = mergekit_yaml(p, "HuggingFaceTB/SmolLM2-135M-Instruct")
        assert parse_mergekit_yaml(text) == p
    text = mergekit_yaml(path, "org/model")
    assert "merge_method: passthrough" in text and "layer_range: [5, 30]" in text
    with pytest.raises(SweepError, match="slices"):
        parse_mergekit_yaml("merge_method: passthrough\n")


def test_choose_best_pair_or_path():
    rows = [make_row(0, 0, "math", 0.0, times=1), make_row(1, 3, "math", 0.1), make_row(2, 5, "math", 0.3)]
    assert choose(rows, "search-best") == layer_paths.duplicate(2, 5, N)
    with pytest.raises(SweepError, match="no held-out confirmation"):
        choose(rows, "best")  # the search's winner is not "the best config" until items it never saw agree
    assert choose(rows, "1,3") == layer_paths.duplicate(1, 3, N)
    assert choose(rows, "0..5,4,5") == [0, 1, 2, 3, 4, 5, 4, 5]


def test_grid_axes_and_marks():
    from rys.sweep.rank import verdicts

    rows = [make_row(1, 3, "math", 0.3), make_row(2, 3, "math", -0.2), make_row(1, 4, "math", 0.05)]
    judged = verdicts(rows + [make_row(0, 0, "math", 0.0, times=1)])["math"]
    grid = build_grid(rows, "t", top_k=2, judged=judged)
    assert grid.i_values == [1, 2] and grid.j_values == [3, 4]
    assert grid.delta[0, 0] == pytest.approx(0.3) and grid.delta[1, 0] == pytest.approx(-0.2)
    assert grid.delta[1, 1] != grid.delta[1, 1]  # (2,4) not scored: NaN
    assert grid.significant[0, 0] and not grid.significant[0, 1]
    assert grid.top == [(1, 3), (1, 4)]
    fig = png_figure(grid)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("j") and ax.get_ylabel().startswith("i")
    assert ax.get_xlim() == (2.5, 4.5) and ax.get_ylim() == (0.5, 2.5)


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_report_from_results_only(tmp_path):
    results = tmp_path / "r.jsonl"
    store = ResultStore(results)
    for probe in ("math", "eq"):
        store.append(make_row(0, 0, probe, 0.0, times=1))
        for (i, j), d in [((1, 3), 0.3), ((2, 4), -0.2), ((1, 4), 0.05)]:
            store.append(make_row(i, j, probe, d if probe == "math" else -d))
    report = write_report(results, tmp_path / "out", top_k=2)
    names = sorted(p.name for p in report.files)
    assert names == ["heatmap.eq.html", "heatmap.eq.png", "heatmap.math.html", "heatmap.math.png", "ranking.tsv",
                     "summary.txt"]
    ranking = [line.split("\t") for line in (tmp_path / "out" / "ranking.tsv").read_text().splitlines()]
    assert ranking[0][:6] == ["rank", "config", "i", "j", "z_sum", "eq:score"] and ranking[0][-1] == "path"
    # eq deltas are the negated math deltas, so the z-sums are all 0 and the order falls back to the path
    assert sorted(r[1] for r in ranking[1:]) == ["(1,3)", "(1,4)", "(2,4)"]
    by = {r[1]: dict(zip(ranking[0], r)) for r in ranking[1:]}
    assert by["(1,3)"]["math:delta"] == "+0.3000" and by["(1,3)"]["eq:delta"] == "-0.3000"
    assert by["(1,3)"]["math:significant"] == "yes" and by["(1,4)"]["math:significant"] == "no"
    assert _png_size(tmp_path / "out" / "heatmap.math.png")[0] > 200
    html = (tmp_path / "out" / "heatmap.math.html").read_text()
    assert len(html) > 3_000_000 and '<script src="http' not in html  # plotly.js embedded: opens offline
    assert "Pareto front" in report.summary and "baseline score 0.5000" in report.summary
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_report_keeps_the_latest_probe_version(tmp_path):
    results = tmp_path / "r.jsonl"
    store = ResultStore(results)
    old = make_row(1, 3, "math", 0.4)
    old.probe_sha256, old.probe_version = "o" * 64, ""  # e.g. an earlier run with --limit 4
    for row in (old, make_row(0, 0, "math", 0.0, times=1), make_row(2, 4, "math", 0.1)):
        store.append(row)
    report = write_report(results, tmp_path / "out", html=False)
    assert "(2,4)" in report.summary and "(1,3)" not in report.summary


def test_report_refuses_mixed_models(tmp_path):
    results = tmp_path / "r.jsonl"
    store = ResultStore(results)
    store.append(make_row(1, 3, "math", 0.1))
    store.append(make_row(1, 3, "math", 0.1, model="n" * 64))
    with pytest.raises(SweepError, match="mixes 2 models"):
        write_report(results)
    assert os.path.exists(results)


def test_sparse_first_refines_around_the_best_coarse_config():
    from rys.sweep.runner import refine_plan
    from rys.sweep.space import PairSpace

    space = PairSpace(N, block_sizes=(2,), stride=2)  # coarse: (0,2), (2,4), (4,6)
    rows = [make_row(0, 0, "math", 0.0, times=1), make_row(0, 2, "math", -0.1), make_row(2, 4, "math", 0.3),
            make_row(4, 6, "math", 0.1), make_row(1, 4, "math", 0.9)]  # (1,4): not in this space
    top, configs = refine_plan(rows, space, refine_top=1)
    assert top == [(2, 4)]
    assert [(c.i, c.j) for c in configs] == [(1, 3), (2, 4), (3, 5)]


def test_servers_start_ahead_only_on_the_cpu(tmp_path, fake_devices):
    from rys.sweep.runner import can_start_ahead, shared_cpu_threads

    cpu = fake_devices("cpu", "  (none)\\n")
    gpu = fake_devices("gpu", "  CUDA0: NVIDIA H100 80GB HBM3 (81000 MiB, 80000 MiB free)\\n")
    assert can_start_ahead(cpu) and not can_start_ahead(gpu)
    assert can_start_ahead(gpu, ["-ngl", "0"]) and can_start_ahead(gpu, ["--device", "none"])
    assert not can_start_ahead(fake_devices("broken", "  (none)\\n", code=1))
    assert not can_start_ahead(tmp_path / "missing")
    huge = tmp_path / "huge.gguf"
    with open(huge, "wb") as fh:  # sparse: as big as all free memory, without using any
        fh.truncate(psutil.virtual_memory().available)
    assert not can_start_ahead(cpu, model=huge)

    cores = len(os.sched_getaffinity(0))
    assert shared_cpu_threads([], [], 1) == ["--threads", str(max(1, cores // 2))]
    assert shared_cpu_threads([], [], 4) == ["--threads", str(max(1, cores // 8))]
    assert shared_cpu_threads(["-t", "3"], [], 1) == [] and shared_cpu_threads([], [["--threads", "2"]], 1) == []
    assert shared_cpu_threads(["--threads=3"], [], 1) == [] and shared_cpu_threads([], [["-t=2"]], 1) == []
