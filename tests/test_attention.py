"""Attention entropy from the patched llama-server (neuro-readout.patch) on SmolLM2, against numpy.

The numpy side is written here from the GGUF alone (gguf-py's reader and dequantizer): the layer's input
rows (the /embeddings of the path that stops before it, final-norm gain divided out), RMSNorm x
attn_norm, the Q/K projections, llama.cpp's "normal" RoPE (adjacent pairs), causal softmax, entropy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rys.neuro import NeuroError
from rys.neuro.attention import ATTENTION, attention_config, entropies, run_attention
from rys.neuro.lens import LensPrompt
from rys.server.manager import LlamaServer, ServerConfig

LAYER = 3
TEXT = "The capital of France is Paris, and the capital of Germany is"
# The server multiplies Q4_1 weights with 8-bit quantized activations and keeps K in an f16 cache;
# numpy uses dequantized f32 weights and f32 activations. Measured on this prompt: max |diff| 0.039 bits,
# mean 0.006 at layer 3 (0.038 / 0.007 at layer 10), on entropies of ~1-2 bits.
TOLERANCE_BITS = 0.08
MEAN_TOLERANCE_BITS = 0.015


@pytest.fixture(scope="module")
def attention_bin(patched_bin):
    from rys.llama.features import has_feature

    if not has_feature(patched_bin, ATTENTION):
        pytest.fail(f"{patched_bin} predates neuro-readout.patch: run rys setup llama-server --patched")
    return patched_bin


def _tensor(reader, name: str) -> np.ndarray:
    from gguf.quants import dequantize

    t = next(t for t in reader.tensors if t.name == name)
    return dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)]).astype(np.float64)


def _field(reader, key: str):
    f = reader.fields[key]
    return f.parts[f.data[0]][0]


def numpy_entropies(model: Path, layer: int, u: np.ndarray) -> np.ndarray:
    """[head, position] entropies (bits) of `layer` given its input rows u (any scale: RMSNorm removes it)."""
    from gguf import GGUFReader

    reader = GGUFReader(model)
    n_head = int(_field(reader, "llama.attention.head_count"))
    n_kv = int(_field(reader, "llama.attention.head_count_kv"))
    eps = float(_field(reader, "llama.attention.layer_norm_rms_epsilon"))
    base = float(_field(reader, "llama.rope.freq_base"))
    x = u / np.sqrt((u ** 2).mean(axis=1, keepdims=True) + eps) * _tensor(reader, f"blk.{layer}.attn_norm.weight")
    q = x @ _tensor(reader, f"blk.{layer}.attn_q.weight").T
    k = x @ _tensor(reader, f"blk.{layer}.attn_k.weight").T
    n, d = len(u), q.shape[1] // n_head
    q, k = q.reshape(n, n_head, d), k.reshape(n, n_kv, d)
    theta = np.arange(n)[:, None] * base ** (-np.arange(0, d, 2) / d)  # [pos, d/2]
    cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]

    def rope(v):
        even, odd = v[..., 0::2], v[..., 1::2]
        out = np.empty_like(v)
        out[..., 0::2], out[..., 1::2] = even * cos - odd * sin, even * sin + odd * cos
        return out

    q, k = rope(q), rope(k)
    out = np.zeros((n_head, n))
    for h in range(n_head):
        scores = q[:, h] @ k[:, h // (n_head // n_kv)].T / np.sqrt(d)
        scores[np.triu_indices(n, 1)] = -np.inf  # causal
        p = np.exp(scores - scores.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[h] = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
    return out


def test_server_entropies_equal_numpy_and_lie_in_bounds(smollm2, attention_bin, tmp_path):
    from gguf import GGUFReader

    from rys.llama.runtime import runtime_path_args

    logs = tmp_path / "logs"
    config = attention_config(ServerConfig(binary=attention_bin, ctx_size=256, extra_args=("-t", "1"), log_dir=logs))
    with LlamaServer(smollm2, config, name="attention") as server:
        ids = server.client.tokenize(TEXT, add_special=True)
        ent = entropies(server.client, ids)
    # the input rows of LAYER: /embeddings of the path 0..LAYER-1, its final-norm gain divided out
    rows_config = ServerConfig(binary=attention_bin, ctx_size=256, embeddings=True, log_dir=logs,
                               extra_args=("-t", "1", *runtime_path_args(range(LAYER))))
    with LlamaServer(smollm2, rows_config, name="rows") as server:
        normed = server.client.embeddings(ids).astype(np.float64)
    gain = _tensor(GGUFReader(smollm2), "output_norm.weight")
    expected = numpy_entropies(smollm2, LAYER, normed / gain)

    got = ent[LAYER]
    assert got.shape == expected.shape == (9, len(ids))
    assert np.abs(got - expected).max() < TOLERANCE_BITS, np.abs(got - expected).max()
    assert np.abs(got - expected).mean() < MEAN_TOLERANCE_BITS
    assert np.abs(got - expected).max() > 0  # two computations, not one copied
    bound = np.log2(np.arange(1, len(ids) + 1))
    assert ent.shape[0] == 30 and np.all(ent >= 0) and np.all(ent <= bound + 1e-4)
    assert np.all(ent <= np.log2(len(ids)) + 1e-4) and np.all(ent[:, :, 0] == 0)
    assert ent[:, :, 1:].std() > 0.1  # heads differ: not a constant


def test_a_duplicated_layer_reports_both_passes(smollm2, attention_bin, tmp_path):
    config = ServerConfig(binary=attention_bin, ctx_size=256, extra_args=("-t", "1"), log_dir=tmp_path / "logs")
    prompt = [LensPrompt("p", TEXT)]
    plain = run_attention(smollm2, prompt, config)
    dup = run_attention(smollm2, prompt, config, path=[*range(6), *range(3, 30)])
    assert len(dup.path) == 33 and dup.labels()[3:9] == ["3#1", "4#1", "5#1", "3#2", "4#2", "5#2"]
    first, second = dup.prompts[0].entropy[3], dup.prompts[0].entropy[6]  # layer 3, passes 1 and 2
    # the first pass sees the unmodified model's input; the second the output of layers 3..5
    assert np.allclose(first, plain.prompts[0].entropy[3], atol=1e-4)
    assert np.abs(second - first).max() > 0.05
    assert dup.prompts[0].entropy.shape == (33, 9, plain.prompts[0].n_tokens)


def test_refusals(smollm2, llama_server_bin, attention_bin, tmp_path):
    with pytest.raises(NeuroError, match="cannot read attention"):
        run_attention(smollm2, [LensPrompt("p", TEXT)], ServerConfig(binary=llama_server_bin))
    with pytest.raises(NeuroError, match="flash attention off"):
        attention_config(ServerConfig(binary=attention_bin, extra_args=("-fa", "on")))
    # the server itself refuses the readout with flash attention on
    config = ServerConfig(binary=attention_bin, ctx_size=128, extra_args=("-t", "1", "-fa", "on"),
                          log_dir=tmp_path / "logs")
    with LlamaServer(smollm2, config, name="fa-on") as server:
        from rys.server import RequestFailed

        with pytest.raises(RequestFailed, match="flash attention"):
            server.client._complete(server.client.tokenize(TEXT, add_special=True), n_predict=1, rys_attention=True)
