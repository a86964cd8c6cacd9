"""Prefix resume (vendor/llama.cpp/prefix-resume.patch), on the REAL patched llama-server: a config that
starts with the unmodified model's first layers runs only the rest of its path, fed with the residual rows
the baseline kept, and must score exactly what the whole path scores on a fresh server.

Where real parts are required (CI=true or RYS_REQUIRE_REAL=1) a missing one fails the run; otherwise it skips.
"""

from __future__ import annotations

import pytest

from rys import paths as layer_paths
from rys.prefix import reuse_layer, suffix
from rys.server import RequestFailed, ServerConfig

pytestmark = pytest.mark.server

CASES = [("The capital of France is", " Paris, and the capital of Italy is Rome."),
         ("Question: What is 17 + 25?\nAnswer:", " 42")]


def _scores(client, cache: bool = True) -> list:
    """Continuation logprobs and a top-20 next-token distribution per case, each asked twice (the second
    time from the prompt cache, unless cache=False)."""
    if not cache:
        client.request_fields = {**client.request_fields, "cache_prompt": False}
    out = []
    for _ in range(2):
        for prefix, continuation in CASES:
            out.append(client.score_continuation(prefix, continuation).logprobs)
            dist = client.next_token(prefix, top_k=20)
            out.append(list(zip(dist.ids.tolist(), dist.logprobs.tolist())))
    return out


def _capture(client, layers, cache: bool = True) -> list:
    client.request_fields = {"rys_capture_layers": list(layers)}
    try:
        return _scores(client, cache)
    finally:
        client.request_fields = {}


def _resumed(client, path, layer, cache: bool = True) -> list:
    client.set_layer_path(suffix(path, layer))
    client.request_fields = {"rys_resume_layer": layer}
    try:
        return _scores(client, cache)
    finally:
        client.request_fields = {}


def test_a_resumed_config_scores_exactly_what_its_whole_path_scores(patched_serve, smollm2):
    server = patched_serve(smollm2, None)
    configs = [layer_paths.duplicate(i, j, 30) for i, j in ((0, 2), (6, 9), (20, 22))]
    layers = [reuse_layer(p, 30) for p in configs]
    assert layers == [1, 8, 21]
    plain = _capture(server.client, layers)
    for path, layer in zip(configs, layers):
        fresh = patched_serve(smollm2, path)
        assert _resumed(server.client, path, layer) == _scores(fresh.client), layer_paths.format_path(path)
        fresh.stop()
    # a plain request after resumed ones: cached prompts from injected rows are not reused
    suffix_path = suffix(configs[-1], layers[-1])
    alone = patched_serve(smollm2, suffix_path)
    assert _scores(server.client) == _scores(alone.client)
    server.client.set_layer_path(range(30))
    assert _scores(server.client) == plain  # the capture did not change the baseline's scores


def test_gemma3_injected_rows_skip_the_embedding_scale(patched_serve, gemma3):
    # Gemma 3 scales token embeddings by sqrt(n_embd); rows fed back must not be. This suffix keeps every
    # global-attention layer on a global position, so the identity server can switch to it.
    # Without the prompt cache: this Q4_K_M model's scores depend on how a prompt is split into batches
    # (a cached prefix moves them by up to 0.15 nats on any server), so only from-scratch scores compare.
    path = [*range(12), *range(6, 18)]  # layers 6..11 twice
    layer = reuse_layer(path, 18)
    assert layer == 11 and suffix(path, layer) == [*range(6, 18)]
    server = patched_serve(gemma3, None)
    _capture(server.client, [layer], cache=False)
    fresh = patched_serve(gemma3, path)
    assert _resumed(server.client, path, layer, cache=False) == _scores(fresh.client, cache=False)


def test_what_cannot_be_resumed_is_refused_with_the_reason(patched_serve, smollm2):
    server = patched_serve(smollm2, None)
    client = server.client
    client.request_fields = {"rys_resume_layer": 5}
    with pytest.raises(RequestFailed, match="no residual rows were kept for this prompt after layer 5"):
        client.next_token("Never captured", top_k=1)
    client.request_fields = {"rys_capture_layers": [29]}
    with pytest.raises(RequestFailed, match="layer 29 is out of range; layers 0..28 can be captured"):
        client.next_token("Hello", top_k=1)
    client.request_fields = {"rys_capture_layers": [5]}
    client.next_token("Hello", top_k=1)
    client.request_fields = {"rys_resume_layer": 5}
    with pytest.raises(RequestFailed, match="n_predict must be 0 or 1"):
        client.generate("Hello", max_tokens=4)
    client.request_fields = {"rys_capture_layers": [5], "rys_resume_layer": 5}
    with pytest.raises(RequestFailed, match="not both"):
        client.next_token("Hello", top_k=1)
    two = patched_serve(smollm2, None, slots=2).client
    two.request_fields = {"rys_capture_layers": [5]}
    with pytest.raises(RequestFailed, match="one slot"):
        two.next_token("Hello", top_k=1)
    assert server.alive()


@pytest.mark.slow
def test_a_resumed_sweep_writes_the_rows_of_a_sweep_that_restarts(patched_sweep, server_starts, smollm2, tmp_path):
    from rys.sweep.results import read_rows
    from rys.sweep.space import block_config

    first = [block_config(10, 12, 30), block_config(20, 23, 30), block_config(0, 1, 30)]
    more = [block_config(4, 6, 30), block_config(25, 27, 30)]
    resumed = tmp_path / "resumed.jsonl"
    patched_sweep(smollm2, 30, resumed, first)
    assert len(server_starts) == 1  # one server for everything
    rows = read_rows(resumed)
    assert [r.timings["reused_layers"] for r in rows] == [0, 23, 12, 1]  # longest path first
    # the baseline is in the results now: the next run's first config starts a server of its own, which
    # then keeps the baseline's rows (scored again, not written) for the configs after it
    patched_sweep(smollm2, 30, resumed, more)
    assert len(server_starts) == 2
    later = read_rows(resumed)[len(rows):]
    assert [(r.config, r.timings["reused_layers"]) for r in later] == [("(4,6)", 0), ("(25,27)", 27)]

    restarted = tmp_path / "restarted.jsonl"
    patched_sweep(smollm2, 30, restarted, first + more, switch_paths=False)
    expected = {r.path: r.result["items"] for r in read_rows(restarted)}
    got = {r.path: r.result["items"] for r in read_rows(resumed)}
    assert got == expected  # bit for bit, config by config

    # two workers: the second one's server keeps the baseline's rows on its own before it resumes
    two = tmp_path / "two.jsonl"
    patched_sweep(smollm2, 30, two, first + more, workers=2)
    assert {r.path: r.result["items"] for r in read_rows(two)} == expected


@pytest.mark.slow
def test_a_gemma3_sweep_falls_back_where_a_suffix_does_not_fit(patched_sweep, server_starts, gemma3, tmp_path):
    # The baseline's server (18 positions, global attention at 5, 11, 17) cannot take `longest`'s suffix
    # 17,12..17 (a global layer at position 0) nor its whole path (24 layers): a fresh server runs it. That
    # server keeps no rows yet, so it primes itself on the unmodified path, then runs the other two
    # configs' suffixes, which keep every global layer on a global position.
    from rys.sweep.results import read_rows
    from rys.sweep.space import Config

    longest = Config((*range(18), *range(12, 18)))
    fits = Config((*range(6), *range(6), *range(12, 18)))
    shifted = Config((*range(5), *range(6, 18)))
    patched_sweep(gemma3, 18, tmp_path / "g.jsonl", [shifted, fits, longest])
    assert len(server_starts) == 2  # the baseline's server, then one for `longest`
    rows = {r.path: r for r in read_rows(tmp_path / "g.jsonl")}
    assert {p: r.timings["reused_layers"] for p, r in rows.items()} == {
        "0..17": 0, longest.key: 0, fits.key: 6, shifted.key: 5}
    assert all(r.n_items == 2 for r in rows.values())


@pytest.mark.slow
def test_ablations_on_one_switched_server_equal_ablations_on_their_own_servers(patched_bin, server_starts, smollm2,
                                                                                tmp_path):
    # rys ablate / circuit: one server for the baseline and every skip path, each skip of layer s run from
    # the rows kept after layer s-1 (only layers s+1.. evaluated); the same item records as one server
    # per path.
    from rys.neuro.ablate import score_skips
    from rys.probes import load_probe
    from rys.sweep.runner import limit_items

    probe = limit_items(load_probe("math-logprob"), 2)
    config = ServerConfig(binary=patched_bin, ctx_size=256, extra_args=("-t", "1"), log_dir=tmp_path / "logs")
    skips = [(0,), (3,), (17,), (28,), (29,), (10, 11), (5, 20)]
    switched = score_skips(smollm2, probe, config, skips)
    assert len(server_starts) == 1
    alone = score_skips(smollm2, probe, config, skips, switch=False, workers=1)
    assert len(server_starts) == 1 + 1 + len(skips)
    assert not switched.failed and not alone.failed
    assert switched.baseline.items == alone.baseline.items
    assert {s: r.items for s, r in switched.results.items()} == {s: r.items for s, r in alone.results.items()}


@pytest.mark.slow
@pytest.mark.parametrize("model, layers", [("smollm2", [0, 3, 17, 28]), ("gemma3", [0, 5, 6, 11])])
def test_a_lens_on_one_switched_server_equals_a_lens_on_a_server_per_layer(patched_bin, server_starts, model, layers,
                                                                            tmp_path, request):
    # rys lens: one server reads every layer; the lens at layer L runs only layer L from the rows kept
    # after L-1 (on Gemma 3 a global layer cannot sit at position 0, so those layers run their whole
    # truncated path). The same stats as one server per truncated path, and the self-test stays exact.
    from rys.neuro.lens import LensPrompt, run_lens

    gguf = request.getfixturevalue(model)
    prompts = [LensPrompt("paris", "The capital of France is", "Paris")]
    config = ServerConfig(binary=patched_bin, ctx_size=256, extra_args=("-t", "1"), log_dir=tmp_path / "logs")
    one = run_lens(gguf, prompts, config, layers=layers)
    assert server_starts == ["lens"]
    per_layer = run_lens(gguf, prompts, config, layers=layers, switch=False, workers=1)
    assert len(server_starts) > 2
    assert one.self_test_kl_bits == 0.0
    for a, b in zip(one.prompts, per_layer.prompts):
        assert a.layers == b.layers
