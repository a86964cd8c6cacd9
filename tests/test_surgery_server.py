"""Rewritten models on the REAL llama-server with REAL models: identity paths are bit-identical, split
layout and single file agree exactly, duplication changes the output, Gemma 3 keeps its SWA layers."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import gguf
import pytest
import requests

from rys.gguf import LayerStore, build_single
from rys.paths import duplicate, skip, truncate

pytestmark = pytest.mark.server

PROMPT = "The capital of France is Paris. The capital of Germany is"


@pytest.fixture
def store():
    """A store on tmpfs like the real default (/dev/shm), removed afterwards."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="rys-test-store-", dir=base))
    yield LayerStore(root, limit_bytes=2 * 10**9)
    shutil.rmtree(root, ignore_errors=True)


_ORIGINALS: dict[Path, list] = {}  # the unmodified models' answers, computed once per session


def original_logprobs(serve, model: Path) -> list[tuple[int, float]]:
    if model not in _ORIGINALS:
        _ORIGINALS[model] = top_logprobs(serve, model)
    return _ORIGINALS[model]


def top_logprobs(serve, model: Path) -> list[tuple[int, float]]:
    """Next-token top-10 (id, logprob) at temperature 0 on one slot: deterministic, compared exactly."""
    server = serve(model, slots=1, ctx_size=128)
    try:
        reply = requests.post(f"{server.url}/completion", timeout=120, json={
            "prompt": PROMPT, "n_predict": 1, "n_probs": 10, "temperature": 0, "cache_prompt": False})
        reply.raise_for_status()
        return [(t["id"], t["logprob"]) for t in reply.json()["completion_probabilities"][0]["top_logprobs"]]
    finally:
        server.stop()  # one server at a time


@pytest.mark.parametrize("model_fixture, n_layers", [("smollm2", 30), ("gemma3", 18)])
def test_identity_path_is_bit_identical(request, serve, store, tmp_path, model_fixture, n_layers):
    model = request.getfixturevalue(model_fixture)
    original = original_logprobs(serve, model)
    single = build_single(model, tmp_path / "identity.gguf", list(range(n_layers)))
    assert top_logprobs(serve, single) == original
    with store.materialize(model, range(n_layers)) as split:
        assert top_logprobs(serve, split.model_path) == original


def test_split_layout_equals_single_file(serve, store, smollm2, tmp_path):
    original = original_logprobs(serve, smollm2)
    for name, path in [("dup", duplicate(10, 14, 30)), ("skip", skip([3, 17], 30)), ("trunc", truncate(12))]:
        single = top_logprobs(serve, build_single(smollm2, tmp_path / f"{name}.gguf", path))
        with store.materialize(smollm2, path) as split:
            assert top_logprobs(serve, split.model_path) == single, name
        assert single != original, name  # the path really changed the model


def test_gemma3_duplication_keeps_sliding_window_layers(serve, store, gemma3, tmp_path):
    path = duplicate(4, 8, 18)  # shifts layers 8.. by 4: index-derived SWA would now be wrong
    out = build_single(gemma3, tmp_path / "dup.gguf", path)
    written = gguf.GGUFReader(out).fields["gemma3.attention.sliding_window_pattern"].contents()
    source_swa = [il % 6 < 5 for il in range(18)]  # llama.cpp's default for gemma3: every 6th is global
    assert written == [source_swa[s] for s in path]
    assert written != [p % 6 < 5 for p in range(len(path))]  # what llama.cpp would have derived
    dup = top_logprobs(serve, out)
    assert dup != original_logprobs(serve, gemma3)
    with store.materialize(gemma3, path) as split:
        assert top_logprobs(serve, split.model_path) == dup
