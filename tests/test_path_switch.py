"""Switching a running server's layer path (vendor/llama.cpp/path-switch.patch), on the REAL patched
llama-server: a switched server must score exactly what a server started with that path scores, refuse
what does not fit the KV cache it made at start (and keep running its old path), and a sweep that
switches must write the same rows as one that restarts per config.

Where real parts are required (CI=true or RYS_REQUIRE_REAL=1) a missing one fails the run; otherwise it skips.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from rys import paths as layer_paths
from rys.server import PathSwitchRefused

pytestmark = pytest.mark.server

CASES = [("The capital of France is", " Paris, and the capital of Italy is Rome."),
         ("Question: What is 17 + 25?\nAnswer:", " 42")]


def _scores(client) -> list:
    """What a sweep reads from a server: continuation logprobs and a next-token distribution."""
    out = []
    for prefix, continuation in CASES:
        out.append(client.score_continuation(prefix, continuation).logprobs)
        dist = client.next_token(prefix, top_k=20)
        out.append(list(zip(dist.ids.tolist(), dist.logprobs.tolist())))
    return out


def test_a_switched_server_scores_exactly_what_a_fresh_server_with_that_path_scores(patched_serve, smollm2):
    longest = layer_paths.duplicate(10, 20, 30)  # 40 executed layers: the KV cache every later path uses
    server = patched_serve(smollm2, longest)
    pid = server._proc.pid
    before = _scores(server.client)  # leaves these prompts cached under the old path
    for path in (layer_paths.duplicate(20, 23, 30), list(range(30)), [0, 1, 2, *range(5, 30)], longest):
        server.client.set_layer_path(path)
        fresh = patched_serve(smollm2, path)
        assert _scores(server.client) == _scores(fresh.client), layer_paths.format_path(path)
        fresh.stop()
    assert _scores(server.client) == before  # back on the start path: the start path's scores, bit for bit
    assert server._proc.pid == pid and server.alive()  # one process throughout: nothing was restarted


def test_a_path_that_does_not_fit_is_refused_and_the_old_path_keeps_running(patched_serve, smollm2):
    short = layer_paths.duplicate(20, 22, 30)
    server = patched_serve(smollm2, short)
    before = _scores(server.client)
    with pytest.raises(PathSwitchRefused, match="do not fit the KV cache") as err:
        server.client.set_layer_path(layer_paths.duplicate(10, 20, 30))  # 40 layers > the 32 it started with
    assert "start a server" in str(err.value)
    with pytest.raises(PathSwitchRefused, match="layer 30 is out of range"):
        server.client.set_layer_path([0, 30])
    assert _scores(server.client) == before
    bad = requests.post(server.url + "/rys/layer-path", json={"layers": [1, 2]}, timeout=10)
    assert bad.status_code == 400 and '{\\"path\\"' in bad.text


def test_gemma3_switches_only_where_every_sliding_window_flag_stays(patched_serve, gemma3):
    # Gemma 3 270M: 18 layers, every 6th global (5, 11, 17), the rest sliding-window with a KV cache of
    # their own kind. A path fits only if each position keeps the kind it had at start.
    server = patched_serve(gemma3, None)
    fits = [*range(6), *range(6), *range(12, 18)]  # layer 5 lands on position 11: global on global
    server.client.set_layer_path(fits)
    fresh = patched_serve(gemma3, fits)
    assert _scores(server.client) == _scores(fresh.client)
    with pytest.raises(PathSwitchRefused, match="sliding window"):
        server.client.set_layer_path([*range(5), *range(6, 18)])  # layer 6 (sliding) at position 5 (global)
    assert _scores(server.client) == _scores(fresh.client)  # still on `fits`


def test_a_switch_waits_for_running_requests(patched_serve, smollm2):
    # The switch is queued behind a generation in progress; the generation finishes on its own path.
    import time
    from concurrent.futures import ThreadPoolExecutor

    path = layer_paths.duplicate(20, 22, 30)
    server = patched_serve(smollm2, path)
    reference = server.client.generate("Count: 1, 2, 3,", max_tokens=96)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(server.client.generate, "Count: 1, 2, 3,", max_tokens=96)
        deadline = time.monotonic() + 30
        while not any(s.get("is_processing") for s in requests.get(server.url + "/slots", timeout=10).json()):
            assert time.monotonic() < deadline and not running.done(), "the generation never showed as running"
            time.sleep(0.005)
        server.client.set_layer_path(range(30))
        assert running.result().text == reference.text
    plain = patched_serve(smollm2, None)
    assert _scores(server.client) == _scores(plain.client)


def _sweep(patched_sweep, model: Path, n_layers: int, results: Path, configs, switch) -> None:
    """A real sweep with switching alone (tests/test_prefix_resume.py adds prefix reuse)."""
    stats = patched_sweep(model, n_layers, results, configs, switch_paths=switch, reuse_prefix=False)
    assert stats.scored == len(configs) + 1


@pytest.mark.slow
def test_a_sweep_that_switches_paths_writes_the_rows_of_one_that_restarts(patched_sweep, server_starts, smollm2,
                                                                          tmp_path):
    from rys.sweep.results import read_rows
    from rys.sweep.space import block_config

    configs = [block_config(10, 12, 30), block_config(20, 23, 30), block_config(4, 5, 30)]
    _sweep(patched_sweep, smollm2, 30, tmp_path / "s.jsonl", configs, None)
    switched = len(server_starts)
    _sweep(patched_sweep, smollm2, 30, tmp_path / "r.jsonl", configs, False)
    # the baseline's server, then one for all configs; a fresh server per config without the switch
    assert (switched, len(server_starts) - switched) == (2, 4)
    rows = read_rows(tmp_path / "s.jsonl")
    # longest path first, so every later path fits the KV cache of the first server
    assert [r.config for r in rows] == ["baseline", "(20,23)", "(10,12)", "(4,5)"]
    assert [r.timings["path_switched"] for r in rows] == [False, False, True, True]
    assert all(r.timings["bytes_written"] == 0 for r in rows)
    assert all(r.timings["materialize_s"] == 0.0 for r in rows if r.timings["path_switched"])
    by_path = {r.path: r for r in read_rows(tmp_path / "r.jsonl")}
    assert not any(r.timings["path_switched"] for r in by_path.values())
    for row in rows:  # bit for bit: same path, same arguments, fresh caches
        assert row.result["items"] == by_path[row.path].result["items"], row.config
        assert row.provenance["method"] == "runtime"


@pytest.mark.slow
def test_a_sweep_restarts_for_a_path_the_server_refuses(patched_sweep, server_starts, gemma3, tmp_path):
    from rys.sweep.results import read_rows
    from rys.sweep.space import Config

    longest = Config((*range(18), *range(12, 18)))  # 24 layers, started first
    fits = Config((*range(6), *range(6), *range(12, 18)))  # same window kind at every position
    refused = Config((*range(5), *range(6, 18)))  # layer 6 (sliding) where layer 5 (global) was
    _sweep(patched_sweep, gemma3, 18, tmp_path / "g.jsonl", [refused, fits, longest], None)
    assert len(server_starts) == 3  # baseline, longest (then switched to fits), refused
    rows = {r.path: r for r in read_rows(tmp_path / "g.jsonl")}
    assert rows[longest.key].timings["path_switched"] is False
    assert rows[fits.key].timings["path_switched"] is True
    assert rows[refused.key].timings["path_switched"] is False
    assert all(r.n_items == 2 for r in rows.values())
