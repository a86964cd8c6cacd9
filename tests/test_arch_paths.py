"""Every accepted architecture, verified on a generated tiny model (tests/arch_specs.py, rys.gguf.fixtures)
against the REAL servers: the stock llama-server loads it and the identity rewrite equals the plain file;
a duplication and a skip rewritten by rys, on the stock server, equal the same paths run by the patched
server on the unchanged file, bit for bit (CPU, one thread, one slot). Paths move layers across each
architecture's per-layer differences (sliding-window layers, MoE on some layers, a dense prefix,
recurrent/attention layers), so a layer that did not keep its own kind would change the logprobs. A path
the table refuses is refused by the patched server too (it carries the same table)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from arch_specs import SPECS

from rys import paths
from rys.gguf.arch_rules import REWRITE, RUNTIME
from rys.gguf.check import path_problems_for
from rys.llama.runtime import runtime_path_args

PROMPTS = ("The capital of France is", "def add(a, b):\n    return")
TOP_K = 20

# Candidates in order; each test takes the first its architecture's rules accept under both methods.
DUPLICATIONS = ((2, 4), (2, 6), (1, 5))
SKIPS = ((3,), (2, 3), (4, 5), (2, 3, 4, 5))


@pytest.fixture(scope="module")
def built(llama_server_bin):
    """tiny(arch) -> the generated model of tests/arch_specs.py (built once, cached in the rys cache)."""
    from rys.gguf.fixtures import tiny_model

    return lambda arch: tiny_model(SPECS[arch], llama_server_bin)


@pytest.fixture
def run(tmp_path):
    from rys.server.manager import LlamaServer, ServerConfig

    started = []

    def start(binary: Path, model: Path, extra_args=()):
        config = ServerConfig(binary=binary, ctx_size=256, slots=1, extra_args=("-t", "1", *extra_args),
                              log_dir=tmp_path / "logs", keep_logs=True)
        server = LlamaServer(Path(model), config, name=f"arch{len(started)}")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def _dists(server) -> list:
    return [server.client.next_token(prompt, top_k=TOP_K) for prompt in PROMPTS]


def _same(a, b) -> bool:
    return all(list(x.ids) == list(y.ids) and np.array_equal(np.asarray(x.logprobs), np.asarray(y.logprobs))
               for x, y in zip(a, b))


def _first_accepted(model, n: int, candidates) -> list[int] | None:
    for path in candidates:
        if not path_problems_for(model, path, REWRITE) and not path_problems_for(model, path, RUNTIME):
            return path
    return None


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(SPECS))
def test_generated_model_paths_rewrite_equals_runtime(arch, built, llama_server_bin, patched_bin, run, tmp_path):
    from rys.gguf import build_single

    model = built(arch)
    n = SPECS[arch].n_layers
    plain = _dists(run(llama_server_bin, model))
    identity = build_single(model, tmp_path / "identity.gguf", list(range(n)))
    assert _same(_dists(run(llama_server_bin, identity)), plain), f"{arch}: the identity rewrite differs"

    dup = _first_accepted(model, n, [paths.duplicate(i, j, n) for i, j in DUPLICATIONS if j <= n])
    cut = _first_accepted(model, n, [paths.skip(list(s), n) for s in SKIPS])
    checked = [(name, path) for name, path in (("duplicate", dup), ("skip", cut)) if path is not None]
    assert checked, f"{arch}: no candidate path is accepted"
    for name, path in checked:
        rewritten = build_single(model, tmp_path / f"{name}.gguf", path)
        expected = _dists(run(llama_server_bin, rewritten))
        server = run(patched_bin, model, runtime_path_args(path, binary=patched_bin))
        assert f"{len(path)} executed layers" in server.log_path.read_text(errors="replace")
        assert _same(_dists(server), expected), f"{arch} {name} {paths.format_path(path)}: runtime != rewrite"
        if name == "duplicate":
            assert not _same(expected, plain), f"{arch}: the duplication changed nothing (path ignored?)"


def _refused_paths(model, n: int) -> list[tuple[list[int], list[str]]]:
    """Paths the table refuses at run time for this model, with the reasons."""
    out = []
    for path in ([paths.duplicate(i, j, n) for i, j in ((1, 2), (2, 5), (0, 3))]
                 + [paths.skip(list(s), n) for s in ((0,), (1,), (3,))] + [list(range(3))]):
        problems = path_problems_for(model, path, RUNTIME)
        if problems:
            out.append((path, problems))
    return out


@pytest.mark.server
@pytest.mark.parametrize("arch", ["glm4moe", "ernie4_5-moe", "smollm3", "lfm2", "deepseek", "gemma4", "qwen35"])
def test_the_patched_server_refuses_what_the_table_refuses(arch, built, patched_bin, tmp_path):
    from rys.server.failures import ServerError
    from rys.server.manager import LlamaServer, ServerConfig

    model = built(arch)
    refused = _refused_paths(model, SPECS[arch].n_layers)
    assert refused, f"{arch}: expected the table to refuse some path"
    path, problems = refused[0]
    config = ServerConfig(binary=patched_bin, ctx_size=256, slots=1,
                          extra_args=("-t", "1", *runtime_path_args(path, binary=patched_bin)), log_dir=tmp_path)
    with pytest.raises(ServerError) as err:
        LlamaServer(model, config, name="refused").start()
    text = str(err.value) + "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
    phrase = "derives" if "derives" in problems[0] else "only recurrent layers"
    assert phrase in problems[0] and "rys layer path:" in text and phrase in text, text[-2000:]
