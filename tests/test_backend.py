"""rys's llama.cpp patches on a GPU backend, on the REAL patched llama-server built for it.

Which build: $RYS_BACKEND_BIN (scripts/gpu-check.sh passes its CUDA build), else the Vulkan build in the
rys cache (scripts/test.sh builds it: Mesa's lavapipe is a real Vulkan device on a machine without a GPU;
ggml-vulkan hides CPU-type devices, GGML_VK_VISIBLE_DEVICES=0 shows it). Offloads: $RYS_BACKEND_NGL
(default "99,10": every layer on the device, then layers split between CPU and device); models:
$RYS_BACKEND_MODELS (default smollm2). $RYS_BACKEND_REPORT, if set, gets one JSON line per measured
comparison (docs/runtime.md's backend table is made from them).

Each comparison is exact (==) unless the backend is shown to round differently; where it is, the
tolerance is a named constant below with the reason. Where the Vulkan suite is asked for
(RYS_VULKAN_SUITE=1, as scripts/test.sh sets) a missing build fails the run; otherwise it skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rys import paths as layer_paths
from rys.prefix import reuse_layer, suffix
from rys.server import PathSwitchRefused

pytestmark = [pytest.mark.server, pytest.mark.backend]

CASES = [("The capital of France is", " Paris, and the capital of Italy is Rome."),
         ("Question: What is 17 + 25?\nAnswer:", " 42")]
TOP_K = 10
# The backend's entropies against numpy's (f32 weights dequantized, f64 softmax): the bound
# tests/test_attention.py uses for the CPU build, whose kernels differ from numpy's as much.
ATTENTION_TOL_BITS = 0.08


def _backend_binary() -> Path | None:
    given = os.environ.get("RYS_BACKEND_BIN")
    if given:
        return Path(given)
    from rys.llama.locate import build_dir

    binary = build_dir("vulkan", patched=True) / "bin" / "llama-server"
    return binary if binary.exists() else None


@pytest.fixture(scope="module")
def backend_bin() -> Path:
    binary = _backend_binary()
    if binary is None:
        message = "no GPU-backend build (rys setup llama-server --patched --backend vulkan, or $RYS_BACKEND_BIN)"
        if os.environ.get("RYS_VULKAN_SUITE") == "1":
            pytest.fail(message + ": scripts/test.sh asked for the Vulkan suite", pytrace=False)
        pytest.skip(message)
    return binary


@pytest.fixture
def device_env(backend_bin, monkeypatch):
    """Shows lavapipe to ggml-vulkan where no other device is visible; the servers inherit it."""
    from rys.llama.features import list_devices

    if not list_devices(backend_bin):  # only Vulkan reads it; CPU-type Vulkan devices are hidden without it
        monkeypatch.setenv("GGML_VK_VISIBLE_DEVICES", "0")
    devices = list_devices(backend_bin)
    if not devices:
        pytest.fail(f"{backend_bin} sees no device (install mesa-vulkan-drivers for lavapipe)", pytrace=False)
    return devices


def _offloads() -> list[str]:
    return [n.strip() for n in os.environ.get("RYS_BACKEND_NGL", "99,10").split(",") if n.strip()]


def _models() -> list[str]:
    return [m.strip() for m in os.environ.get("RYS_BACKEND_MODELS", "smollm2").split(",") if m.strip()]


@pytest.fixture(params=_models())
def model(request) -> tuple[Path, int]:
    from rys.gguf.source import open_source
    from rys.models import resolve_model

    path = resolve_model(request.param, install=False)
    return path, open_source(path).n_layers


@pytest.fixture
def serve(backend_bin, device_env, tmp_path):
    """serve(model, ngl, path=None, extra=()) -> a started server of the backend build; all stopped."""
    from rys.llama.runtime import runtime_path_args
    from rys.server.manager import LlamaServer, ServerConfig

    started = []

    def start(model_path: Path, ngl: str, path=None, extra=()):
        args = ("-ngl", ngl, "-fa", "off", *extra, *(runtime_path_args(path) if path is not None else ()))
        server = LlamaServer(Path(model_path), ServerConfig(binary=backend_bin, ctx_size=256, slots=1,
                                                            extra_args=args, log_dir=tmp_path / "logs",
                                                            startup_timeout=300),
                             name=f"gpu{len(started)}")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def _scores(client) -> list:
    out = []
    for prefix, continuation in CASES:
        out.append(client.score_continuation(prefix, continuation).logprobs)
        dist = client.next_token(prefix, top_k=TOP_K)
        out.append(list(zip(dist.ids.tolist(), dist.logprobs.tolist())))
    return out


def _max_diff(a: list, b: list) -> float:
    """The largest logprob difference between two _scores results (inf when top tokens differ)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if x and isinstance(x[0], tuple):
            if [t for t, _ in x] != [t for t, _ in y]:
                return float("inf")
            x, y = [v for _, v in x], [v for _, v in y]
        worst = max(worst, float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) if len(x) else 0.0)
    return worst


def _report(**fields) -> None:
    target = os.environ.get("RYS_BACKEND_REPORT")
    if target:
        with open(target, "a") as fh:
            fh.write(json.dumps(fields) + "\n")


def _assert_close(a, b, tol: float, what: str, **fields) -> None:
    diff = _max_diff(a, b)
    _report(what=what, max_abs_diff=diff, tolerance=tol, **fields)
    if tol == 0:
        assert a == b, f"{what}: not bit for bit (max difference {diff:.3g})"
    else:
        assert diff <= tol, f"{what}: max difference {diff:.3g} > {tol}"


@pytest.mark.parametrize("ngl", _offloads())
def test_runtime_paths_equal_the_rewritten_ggufs(serve, model, ngl, tmp_path):
    from rys.gguf.build import build_single

    model_path, n = model
    plain = _scores(serve(model_path, ngl).client)
    identity = _scores(serve(model_path, ngl, list(range(n))).client)
    _assert_close(identity, plain, 0, "identity runtime path vs the plain file", ngl=ngl)
    cases = {"duplication": layer_paths.duplicate(n // 2 - 3, n // 2, n),
             "skip": [*range(5), *range(6, n)], "truncation": list(range(n - 4))}
    for name, path in cases.items():
        runtime = _scores(serve(model_path, ngl, path).client)
        rewritten_file = build_single(model_path, tmp_path / f"{name}.gguf", path)
        file_ngl = _same_placement_ngl(path, n, ngl)
        rewritten = _scores(serve(rewritten_file, file_ngl).client)
        _assert_close(runtime, rewritten, 0, f"runtime {name} vs rewritten GGUF", ngl=ngl, file_ngl=file_ngl,
                      path=layer_paths.format_path(path))


def _same_placement_ngl(path: list[int], n: int, ngl: str) -> str:
    """The -ngl under which the rewritten file runs each path position on the device its runtime twin
    uses. A runtime path runs a layer where its weights are (the last ngl - 1 physical layers and the
    output on the device); a file offloads its own last layers. Without this the two differ by which
    kernels ran (lavapipe vs the CPU: up to 0.19 nats on a truncation at -ngl 10), not by the path."""
    from rys.llama.runtime import offload_sides

    side = offload_sides(("-ngl", ngl), n)
    if side is None:
        return ngl
    on_device = [side(layer) for layer in path]
    k = sum(on_device)
    assert on_device == [0] * (len(path) - k) + [1] * k, "the device layers are not the path's tail"
    return str(k + 1)  # + the output


@pytest.mark.parametrize("ngl", _offloads())
def test_a_switch_loop_keeps_the_server_alive_and_scores_what_fresh_servers_score(serve, model, ngl):
    # Before the fix, switching a Vulkan server between such paths and sending one request after each
    # killed it within 8 requests (SIGSEGV, or "double free or corruption" at the first request after a
    # switch); on the CPU it never failed. Under a partial offload a switch must also keep every position
    # on the device it started on: which paths the server refuses is predicted here from the rule.
    from rys.llama.runtime import offload_sides

    model_path, n = model
    mid = n // 2
    longest = layer_paths.duplicate(mid - 6, mid + 2, n)
    paths = [list(range(n)), layer_paths.duplicate(mid - 3, mid, n), layer_paths.duplicate(2, 10, n),
             list(range(n - 9))]
    side = offload_sides(("-ngl", ngl), n) or (lambda layer: 0)
    fits = {layer_paths.format_path(p): all(side(a) == side(b) for a, b in zip(p, longest)) for p in paths}
    server = serve(model_path, ngl, longest)
    pid = server.pid
    refused, switched = set(), 0
    fresh = {}
    for round_ in range(3):
        for path in paths:
            key = layer_paths.format_path(path)
            try:
                server.client.set_layer_path(path)
            except PathSwitchRefused:
                refused.add(key)
                continue
            switched += 1
            got = _scores(server.client)
            if key not in fresh:
                starter = serve(model_path, ngl, path)
                fresh[key] = _scores(starter.client)
                starter.stop()
            _assert_close(got, fresh[key], 0, "switched server vs a fresh server", ngl=ngl, path=key,
                          round=round_)
    assert server.alive() and server.pid == pid, server.log_tail()
    assert refused == {key for key, ok in fits.items() if not ok} and switched >= 6, (refused, fits)
    _report(what="switch loop", ngl=ngl, switched=switched, refused=sorted(refused))


@pytest.mark.parametrize("ngl", _offloads()[:1])
def test_a_resumed_suffix_scores_what_its_whole_path_scores(serve, model, ngl):
    model_path, n = model
    path = layer_paths.duplicate(n // 2 - 2, n // 2, n)
    layer = reuse_layer(path, n)
    server = serve(model_path, ngl)
    client = server.client
    rounds = []
    # Rounds as a sweep runs them (capture on the whole path, resume on a suffix, back): before the fix,
    # the capture and resume toggles recreated the scheduler and a Vulkan server died within 4 rounds.
    for round_ in range(4):
        if round_:
            client.set_layer_path(list(range(n)))
        client.request_fields = {"rys_capture_layers": [layer]}
        plain = _scores(client)
        client.set_layer_path(suffix(path, layer))
        client.request_fields = {"rys_resume_layer": layer}
        rounds.append((plain, _scores(client)))
        client.request_fields = {}
    assert server.alive(), server.log_tail()
    whole = _scores(serve(model_path, ngl, path).client)
    baseline = _scores(serve(model_path, ngl).client)
    for round_, (plain, resumed) in enumerate(rounds):
        _assert_close(resumed, whole, 0, "resumed suffix vs whole path", ngl=ngl, path=layer_paths.format_path(path),
                      round=round_)
        _assert_close(plain, baseline, 0, "capturing server vs plain server", ngl=ngl, round=round_)


@pytest.mark.parametrize("ngl", _offloads()[:1])
def test_one_pass_continuation_scores_equal_forced_tokens(serve, model, ngl):
    model_path, _ = model
    client = serve(model_path, ngl, extra=("-ub", "1")).client  # each position alone in both methods
    for prefix, continuation in CASES:
        one_pass = client.score_continuation(prefix, continuation)
        ids, cont = client.tokenize(prefix, add_special=True), client.tokenize(continuation)
        forced = [client._forced_entry(ids + cont[:i], t)[0] for i, t in enumerate(cont)]
        assert one_pass.requests == 1
        diff = float(np.max(np.abs(np.asarray(one_pass.logprobs) - np.asarray(forced))))
        _report(what="one-pass vs forced continuation (-ub 1)", ngl=ngl, max_abs_diff=diff, tolerance=1e-5)
        assert diff <= 1e-5, f"{prefix!r}: {diff}"


def test_a_short_sweep_switches_and_reuses_prefixes(backend_bin, device_env, model, tmp_path):
    from rys.sweep.results import failures_path, read_failures, read_rows

    model_path, n = model
    results = tmp_path / "r.jsonl"
    env = dict(os.environ)
    done = subprocess.run([sys.executable, "-m", "rys.cli", "sweep", str(model_path), "--probe", "math-logprob",
                           "--limit", "2", "--block-sizes", "2", "--stride", str(max(2, n // 3)),
                           "--llama-server", str(backend_bin), "--server-args", f"-ngl {_offloads()[0]}",
                           "--results", str(results), "--report-dir", str(tmp_path / "rep")],
                          capture_output=True, text=True, timeout=1200, env=env, check=False)
    # a failure keeps the reasons (with the llama-server log tail): CI's tmp_path is gone afterwards
    failures = failures_path(results)
    why = failures.read_text()[-4000:] if failures.exists() else ""
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:] + why
    rows = read_rows(results)
    assert len(rows) >= 3 and not read_failures(results), why
    configs = [r for r in rows if not r.is_baseline]
    assert all(r.timings["path_switched"] for r in configs[1:])
    assert any(r.timings["reused_layers"] > 0 for r in configs)
    _report(what="short sweep", configs=len(configs), switched=sum(r.timings["path_switched"] for r in configs))


@pytest.mark.parametrize("ngl", _offloads()[:1])
def test_attention_entropies_equal_numpy_and_the_readout_toggles(serve, backend_bin, device_env, model, ngl, tmp_path):
    # neuro-readout.patch: per-head entropies of one layer against the numpy computation of
    # tests/test_attention.py, from the same build's /embeddings rows; the readout switched off and on
    # between plain requests (each switch plans the compute buffers again) changes nothing. On Vulkan the
    # readout crashed lavapipe servers at their first request in 7 of 23 runs, so rys refuses it there
    # and the readout runs with the build's CPU backend (--device none), as the refusal says.
    from gguf import GGUFReader
    from test_attention import LAYER, TEXT, _tensor, numpy_entropies

    from rys.llama.runtime import runtime_path_args
    from rys.neuro import NeuroError
    from rys.neuro.attention import attention_config, entropies
    from rys.server.manager import LlamaServer, ServerConfig

    model_path, n = model
    if GGUFReader(model_path).fields["general.architecture"].contents() != "llama":
        pytest.skip("the numpy side is written for the llama architecture")
    args: tuple[str, ...] = ("-ngl", ngl)
    if any(d.startswith("Vulkan") for d in device_env):
        with pytest.raises(NeuroError, match="Vulkan device") as refused:
            attention_config(ServerConfig(binary=backend_bin, extra_args=args))
        assert "--device none" in refused.value.hint
        args += ("--device", "none")
    attention_config(ServerConfig(binary=backend_bin, extra_args=args))  # accepted now
    server = serve(model_path, args[1], extra=args[2:])
    client = server.client
    ids = client.tokenize(TEXT, add_special=True)
    first = entropies(client, ids)
    between = _scores(client)
    second = entropies(client, ids)
    assert server.alive(), server.log_tail()
    assert np.array_equal(first, second)
    plain = _scores(serve(model_path, args[1], extra=args[2:]).client)
    _assert_close(between, plain, 0, "scores after the attention readout vs a plain server", server_args=" ".join(args))

    rows_config = ServerConfig(binary=backend_bin, ctx_size=256, embeddings=True, log_dir=tmp_path / "logs",
                               extra_args=(*args, "-fa", "off", *runtime_path_args(range(LAYER))))
    with LlamaServer(model_path, rows_config, name="rows") as rows_server:
        normed = rows_server.client.embeddings(ids).astype(np.float64)
    expected = numpy_entropies(model_path, LAYER, normed / _tensor(GGUFReader(model_path), "output_norm.weight"))
    diff = np.abs(first[LAYER] - expected)
    _report(what="attention entropy (bits) vs numpy", server_args=" ".join(args), layer=LAYER,
            max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()), tolerance=ATTENTION_TOL_BITS)
    assert first.shape[0] == n and diff.max() < ATTENTION_TOL_BITS and diff.max() > 0
