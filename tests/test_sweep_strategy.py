"""Adaptive search and held-out confirmation on the real llama-server (SmolLM2, a few items).

The planted effect: one candidate path is SmolLM2 with layers 27-28 run twice (close to the unmodified
model), every other one cuts 3 to 9 middle layers out, which wrecks the answer likelihoods. Halving and
guided must both end with the planted path on top while scoring less than the whole grid, keep every
row in the one results file, confirm on fresh items, and score nothing again when rerun.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rys.cli import main
from rys.sweep.results import read_rows

pytestmark = [pytest.mark.server, pytest.mark.slow]

PLANTED = "0..28,27..29"
DAMAGED = [f"0..9,{10 + k}..29" for k in range(3, 10)]


@pytest.fixture
def paths_file(tmp_path):
    out = tmp_path / "paths.txt"
    out.write_text("\n".join([PLANTED, *DAMAGED]) + "\n")  # planted first: guided's seeded start skips it
    return out


def _sweep(smollm2, patched_bin, paths_file, results, *extra):
    args = ["sweep", str(smollm2), "--probe", "math-logprob", "--limit", "8", "--paths", str(paths_file),
            "--results", str(results), "--llama-server", str(patched_bin), "--server-args", "-t 1",
            "--ctx-size", "512", "--no-progress", "--no-html", "--top-k", "1", "--confirm-top", "1", *extra]
    run = CliRunner().invoke(main, args)
    assert run.exit_code == 0, run.output
    return run.output


def _search(rows):
    return [r for r in rows if r.stage == "search" and not r.is_baseline]


def test_halving_finds_the_planted_config_on_fewer_items(smollm2, patched_bin, paths_file, tmp_path):
    from rys.sweep.rank import combined_ranking

    results = tmp_path / "halving.jsonl"
    out = _sweep(smollm2, patched_bin, paths_file, results, "--strategy", "halving", "--halving-eta", "2",
                 "--halving-min-items", "2")
    rows = read_rows(results)
    search = _search(rows)
    # rungs of 2, 4 and 8 items: 8 configs, then 4, then 3 (never fewer than 3, nor than --confirm-top)
    assert sorted({r.n_items for r in search}) == [2, 4, 8]
    assert {r.n_items: sum(x.n_items == r.n_items for x in search) for r in search} == {2: 8, 4: 4, 8: 3}
    # each rung keeps the items its configs have from the rung before and scores only the new ones:
    # 8 x 2 + 4 x 2 + 3 x 4 = 36 (config, item) pairs scored, against the grid's 64
    assert {(r.n_items, r.timings.get("extended_items", 0)) for r in search} == {(2, 0), (4, 2), (8, 4)}
    assert sum(r.n_items - r.timings.get("extended_items", 0) for r in search) == 36
    # the plant is real: on the first rung the planted path beats every cut one
    first = {r.path: r.delta["delta"] for r in search if r.n_items == 2}
    assert all(first[PLANTED] > first[p] for p in DAMAGED)
    assert combined_ranking(rows)[0].path == PLANTED
    assert "items scored per (config, probe)" in out
    # held-out: the baseline and the top config on 8 fresh items, in the same file
    held = [r for r in rows if r.stage == "confirm"]
    assert sorted(r.config for r in held) == sorted([PLANTED, "baseline"])
    assert all(r.n_items == 8 and r.probe_sha256 != search[0].probe_sha256 for r in held)
    planted = next(r for r in held if r.path == PLANTED)  # the row holds both deltas
    assert planted.delta["search_delta"] == pytest.approx(next(r.delta["delta"] for r in search
                                                               if r.path == PLANTED and r.n_items == 8))
    assert "Held-out confirmation" in out and f"path {PLANTED}" in out
    # the extended row is what scoring the path on all 8 items at once gives, item by item
    alone = tmp_path / "planted.txt"
    alone.write_text(PLANTED + "\n")
    _sweep(smollm2, patched_bin, alone, tmp_path / "direct.jsonl", "--confirm-top", "0", "--no-report")
    direct = next(r for r in read_rows(tmp_path / "direct.jsonl") if r.path == PLANTED)
    extended = next(r for r in search if r.path == PLANTED and r.n_items == 8)
    assert "extended_items" not in direct.timings
    assert {i["id"]: i["score"] for i in extended.result["items"]} == pytest.approx(
        {i["id"]: i["score"] for i in direct.result["items"]}, abs=1e-9)
    # rerun: the same cuts from the same rows, nothing scored again
    again = _sweep(smollm2, patched_bin, paths_file, results, "--strategy", "halving", "--halving-eta", "2",
                   "--halving-min-items", "2", "--no-report")
    assert "\n0 configs scored" in again and len(read_rows(results)) == len(rows)


def test_guided_finds_the_planted_config_within_its_budget(smollm2, patched_bin, paths_file, tmp_path):
    from rys.sweep.rank import combined_ranking

    results = tmp_path / "guided.jsonl"
    out = _sweep(smollm2, patched_bin, paths_file, results, "--strategy", "guided", "--budget", "0.8")
    rows = read_rows(results)
    search = _search(rows)
    # Layers each path runs per item after the baseline rows it starts from (its shared prefix): the
    # planted one 27, 28, 29 after layer 28 (3), a cut one 10+k..29 after layer 9 (20-k). The grid runs
    # them all plus the 30-layer baseline: 3 + (17 + 16 + ... + 11) + 30 = 131 layers per item.
    ran = {PLANTED: 3, **{path: 20 - k for k, path in enumerate(DAMAGED, start=3)}}
    reused = {PLANTED: 29, **{path: 10 for path in DAMAGED}}
    # every row, in every batch, started from the baseline's rows: one server keeps them all search long
    assert {r.path: r.timings["reused_layers"] for r in search} == {r.path: reused[r.path] for r in search}
    assert sum(ran[r.path] for r in search) + 30 <= 0.8 * 131
    # 3 seeded random ones (16 + 14 + 15 layers, the planted path left out), then the surrogate's
    # batches within what is left: fewer than the grid, all on every item
    assert 4 <= len({r.path for r in search}) < 8 and all(r.n_items == 8 for r in search)
    assert combined_ranking(rows)[0].path == PLANTED
    assert "gradient-boosted surrogate" in out and "of the grid's compute" in out
    assert any(r.stage == "confirm" and r.path == PLANTED for r in rows)
    again = _sweep(smollm2, patched_bin, paths_file, results, "--strategy", "guided", "--budget", "0.8",
                   "--no-report")
    assert "\n0 configs scored" in again and len(read_rows(results)) == len(rows)
