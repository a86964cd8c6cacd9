"""Runtime layer paths: the REAL patched llama-server running a path on the unchanged GGUF must give the
logprobs the STOCK llama-server gives on the rewritten GGUF of the same path.

The patched binary comes from $RYS_PATCHED_LLAMA_SERVER or the rys cache (rys setup llama-server --patched).
Where real parts are required (CI=true or RYS_REQUIRE_REAL=1) a missing one fails the run; otherwise it skips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rys import paths
from rys.fetch import sha256_of
from rys.llama.runtime import (
    MARKER,
    METHOD_REWRITE,
    METHOD_RUNTIME,
    RuntimePathError,
    path_method,
    runtime_path_args,
    supports_runtime_paths,
)

PROMPTS = ("The capital of France is", "def fibonacci(n):\n    ", "Question: What is 17 + 25?\nAnswer:")
TOP_K = 40


@pytest.fixture
def run(tmp_path):
    """run(binary, model, extra_args=()) -> a started LlamaServer (one slot); all stopped at teardown."""
    from rys.server.manager import LlamaServer, ServerConfig

    started = []

    def start(binary: Path, model: Path, extra_args=()):
        config = ServerConfig(binary=binary, ctx_size=512, slots=1, extra_args=tuple(extra_args),
                              log_dir=tmp_path / "logs", keep_logs=True)
        server = LlamaServer(Path(model), config, name=f"rt{len(started)}")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def _dists(server) -> list:
    return [server.client.next_token(prompt, top_k=TOP_K) for prompt in PROMPTS]


def _assert_same(a: list, b: list, what: str) -> None:
    for prompt, da, db in zip(PROMPTS, a, b):
        assert list(da.ids) == list(db.ids), f"{what}: different top tokens for {prompt!r}"
        np.testing.assert_allclose(da.logprobs, db.logprobs, rtol=0, atol=1e-4,
                                   err_msg=f"{what}: logprobs differ for {prompt!r}")


# -- no server ------------------------------------------------------------------------------------

def test_runtime_path_args_use_the_compact_form():
    assert runtime_path_args(paths.duplicate(12, 15, 40)) == \
        ["--override-kv", "rys.layer_path=str:0..14;12..39"]
    assert runtime_path_args([0, 1, 3]) == ["--override-kv", "rys.layer_path=str:0;1;3"]


def test_runtime_path_args_refuse_what_llama_cpp_cannot_take():
    with pytest.raises(RuntimePathError, match="127"):
        runtime_path_args(list(range(0, 120, 2)))  # 60 single items: too long for one override
    with pytest.raises(paths.PathError):
        runtime_path_args([])


def test_missing_binary_does_not_support_runtime_paths(tmp_path):
    assert not supports_runtime_paths(tmp_path / "nope")


# -- the stock server -----------------------------------------------------------------------------

def test_stock_server_is_detected_as_unpatched(llama_server_bin):
    assert not supports_runtime_paths(llama_server_bin)
    assert path_method(llama_server_bin) == METHOD_REWRITE
    with pytest.raises(RuntimePathError, match="does not support runtime layer paths"):
        runtime_path_args([0, 1, 1, 2], binary=llama_server_bin)


# -- the patched server ---------------------------------------------------------------------------

def test_patched_server_is_detected(patched_bin):
    assert supports_runtime_paths(patched_bin)
    assert path_method(patched_bin) == METHOD_RUNTIME
    assert runtime_path_args([0, 1, 1, 2], binary=patched_bin)


def _cases(n: int, dup: tuple[int, int], skipped: list[int], keep: int, triple: tuple[int, int]):
    return [("identity", list(range(n))),
            ("duplicate", paths.duplicate(*dup, n)),
            ("skip", paths.skip(skipped, n)),
            ("truncate", list(range(keep))),
            ("triple", paths.repeat(*triple, 3, n))]


# SmolLM2: 30 llama layers. Gemma 3 270M: 18 layers, global attention on 5, 11, 17 and sliding-window
# attention (with another RoPE base) elsewhere; every path below moves layers across that index pattern.
SMOLLM2_CASES = _cases(30, (10, 16), [7, 8], 20, (12, 15))
GEMMA3_CASES = _cases(18, (3, 8), [5], 12, (4, 7))


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("model_name, name, path",
                         [("smollm2", *c) for c in SMOLLM2_CASES] + [("gemma3", *c) for c in GEMMA3_CASES],
                         ids=[f"smollm2-{c[0]}" for c in SMOLLM2_CASES] + [f"gemma3-{c[0]}" for c in GEMMA3_CASES])
def test_runtime_path_equals_rewritten_file(request, patched_bin, llama_server_bin, run, tmp_path,
                                            model_name, name, path):
    from rys.gguf import build_single

    model = request.getfixturevalue(model_name)
    rewritten = build_single(model, tmp_path / f"{name}.gguf", path)
    expected = _dists(run(llama_server_bin, rewritten))

    server = run(patched_bin, model, runtime_path_args(path, binary=patched_bin))
    assert f"{len(path)} executed layers" in server.log_path.read_text(errors="replace")
    _assert_same(_dists(server), expected, f"{model_name} {name} {paths.format_path(path)}")


@pytest.mark.server
def test_patched_server_without_a_path_is_the_stock_model(patched_bin, llama_server_bin, run, smollm2):
    _assert_same(_dists(run(patched_bin, smollm2)), _dists(run(llama_server_bin, smollm2)), "no path")


@pytest.mark.server
@pytest.mark.parametrize("layout", ["single", "store"])
def test_rewritten_files_run_unchanged_on_the_patched_server(patched_bin, llama_server_bin, run, smollm2,
                                                             tmp_path, layout):
    """The patched server is rys's default once built, so it also serves rewritten GGUFs (rys build, the
    layer store). Their provenance must not read as a runtime path: the path would run twice."""
    from rys.gguf import LayerStore, build_single

    path = paths.duplicate(10, 16, 30)
    if layout == "single":
        rewritten = build_single(smollm2, tmp_path / "dup.gguf", path)
        _assert_same(_dists(run(patched_bin, rewritten)), _dists(run(llama_server_bin, rewritten)), layout)
    else:
        with LayerStore(tmp_path / "store").materialize(smollm2, path) as lease:
            rewritten = Path(lease.model_path)
            _assert_same(_dists(run(patched_bin, rewritten)), _dists(run(llama_server_bin, rewritten)), layout)


@pytest.mark.server
def test_a_path_changes_the_model(patched_bin, run, smollm2):
    """Guards the equality tests against a path that is silently ignored."""
    plain = _dists(run(patched_bin, smollm2))
    doubled = _dists(run(patched_bin, smollm2, runtime_path_args(paths.duplicate(10, 16, 30))))
    assert any(not np.allclose(a.logprobs[:5], b.logprobs[:5], atol=1e-3) or list(a.ids[:5]) != list(b.ids[:5])
               for a, b in zip(plain, doubled))


@pytest.mark.server
@pytest.mark.slow
def test_original_file_is_never_modified(patched_bin, run, gemma3):
    before = (sha256_of(gemma3), gemma3.stat().st_mtime_ns)
    server = run(patched_bin, gemma3, runtime_path_args(paths.repeat(4, 7, 3, 18)))
    _dists(server)
    server.stop()
    assert (sha256_of(gemma3), gemma3.stat().st_mtime_ns) == before


@pytest.mark.server
@pytest.mark.parametrize("value, message", [
    ("0..30", "rys layer path: layer 30 is out of range, the model has layers 0..29"),
    ("0..9;9..3", "rys layer path: bad item '9..3'"),
    ("0..9;x", "rys layer path: bad item 'x'"),
])
def test_refused_path_gives_a_clear_message(patched_bin, run, smollm2, value, message):
    from rys.server.failures import ModelLoadError

    # straight to the server, past rys's own path checks: the patch must refuse on its own
    with pytest.raises(ModelLoadError) as err:
        run(patched_bin, smollm2, ["--override-kv", f"rys.layer_path=str:{value}"])
    assert message in err.value.log_tail


def test_help_marker_is_what_detection_looks_for():
    # the marker is the contract between the patch and rys: keep both in step
    patch = Path(__file__).resolve().parents[1] / "vendor" / "llama.cpp" / "layer-path.patch"
    assert MARKER in patch.read_text()


# -- the seam: sweep, neuro and `rys build --runtime` choose the method here ----------------------

def test_the_seam_detects_the_method_from_the_server(patched_bin, llama_server_bin, smollm2, monkeypatch):
    from rys.serve_path import choose_method

    monkeypatch.delenv("RYS_PATH_METHOD", raising=False)
    path = paths.duplicate(10, 16, 30)
    assert choose_method(patched_bin, smollm2, path) == METHOD_RUNTIME
    assert choose_method(llama_server_bin, smollm2, path) == METHOD_REWRITE
    # the opt-out, and a pinned runtime the server cannot honour
    assert choose_method(patched_bin, smollm2, path, "rewrite") == METHOD_REWRITE
    monkeypatch.setenv("RYS_PATH_METHOD", "rewrite")
    assert choose_method(patched_bin, smollm2, path) == METHOD_REWRITE
    with pytest.raises(RuntimePathError, match="stock build"):
        choose_method(llama_server_bin, smollm2, path, "runtime")


def test_the_seam_falls_back_to_the_rewriter_where_the_patch_refuses(patched_bin, tmp_path, monkeypatch):
    from rys import serve_path
    from rys.errors import RysError
    from rys.gguf.fixtures import TinySpec, header_only

    # a real file of an architecture the table refuses (only its metadata is read to choose)
    model = header_only(TinySpec("minimax-01", n_layers=4), tmp_path / "m.gguf")
    monkeypatch.delenv("RYS_PATH_METHOD", raising=False)
    assert serve_path.choose_method(patched_bin, model, [0, 1, 1]) == METHOD_REWRITE
    with pytest.raises(RuntimePathError, match="minimax-01"):
        serve_path.choose_method(patched_bin, model, [0, 1, 1], "runtime")
    with pytest.raises(RysError, match="unknown layer-path method"):
        serve_path.choose_method(patched_bin, model, [0, 1, 1], "copy")


@pytest.mark.server
@pytest.mark.slow
def test_a_sweep_on_the_patched_server_writes_nothing_and_records_the_method(patched_bin, smollm2, tmp_path,
                                                                             monkeypatch):
    from rys.gguf import LayerStore
    from rys.gguf.provenance import file_sha256
    from rys.probes import load_probe
    from rys.server import ServerConfig
    from rys.sweep.results import ResultStore, read_rows
    from rys.sweep.runner import SweepJob, limit_items, run_configs
    from rys.sweep.space import block_config

    monkeypatch.delenv("RYS_PATH_METHOD", raising=False)
    store = LayerStore(root=tmp_path / "store")
    job = SweepJob(model=smollm2, model_sha256=file_sha256(smollm2), n_layers=30,
                   probes=[limit_items(load_probe("math-logprob"), 2)], results=ResultStore(tmp_path / "r.jsonl"),
                   server=ServerConfig(binary=patched_bin, ctx_size=256, log_dir=tmp_path / "logs"),
                   store=store, progress=False, log=lambda _: None)
    stats = run_configs(job, [block_config(10, 12, 30)])
    assert (stats.scored, stats.failed) == (2, 0)
    rows = read_rows(tmp_path / "r.jsonl")
    assert {r.provenance["method"] for r in rows} == {METHOD_RUNTIME}
    assert all(r.timings["bytes_written"] == 0 for r in rows)
    assert store.usage() == 0  # no layer file was written


def test_build_runtime_prints_a_command_and_writes_nothing(patched_bin, smollm2, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from rys.cli import main as cli

    monkeypatch.setenv("RYS_PATCHED_LLAMA_SERVER", str(patched_bin))
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(cli, ["build", str(smollm2), "--duplicate", "10", "16", "--runtime"])
    assert done.exit_code == 0, done.output
    # quoted: ';' would end the command in a shell
    assert f"-m {smollm2}" in done.output and "--override-kv 'rys.layer_path=str:0..15;10..29'" in done.output
    assert str(patched_bin) in done.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.server
def test_the_seam_rewrites_for_a_stock_server(llama_server_bin, smollm2, tmp_path, monkeypatch):
    from rys.gguf import LayerStore
    from rys.serve_path import serve_path
    from rys.server import ServerConfig

    monkeypatch.delenv("RYS_PATH_METHOD", raising=False)
    config = ServerConfig(binary=llama_server_bin, ctx_size=256, log_dir=tmp_path / "logs")
    store = LayerStore(root=tmp_path / "store")
    with serve_path(smollm2, paths.duplicate(10, 16, 30), config, store=store, start=True) as served:
        assert served.method == METHOD_REWRITE and served.bytes_written > 0
        assert served.model_path != smollm2 and served.config is config
        assert served.server.client.next_token(PROMPTS[0], top_k=1).ids
