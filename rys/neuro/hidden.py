"""Hidden states of the truncated models, block influence and cosine to the final layer.

llama-server's /embeddings (pooling none) returns RMSNorm(h) * output_norm.weight for every token,
where h is the residual after the last layer the path runs. Dividing by output_norm.weight leaves
RMSNorm(h) = h / rms(h): the residual direction, which is all a cosine needs. Block influence
(ShortGPT) of a layer = 1 - cos(h_in, h_out), averaged over the prompt's tokens; the input of layer 0
is the token embedding, read from the GGUF.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from rys.neuro import NeuroError


def remove_gain(normed: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """normed / gain per channel; a zero gain channel carries no information and becomes 0."""
    normed = np.asarray(normed, dtype=np.float64)
    gain = np.asarray(gain, dtype=np.float64)
    return np.divide(normed, gain, out=np.zeros_like(normed), where=gain != 0)


def token_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine between matching rows (tokens) of two [n_tokens, n_embd] arrays."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.divide((a * b).sum(axis=-1), norms, out=np.zeros(norms.shape), where=norms > 0)


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(token_cosines(a, b).mean())


def block_influence(before: np.ndarray, after: np.ndarray) -> float:
    """1 - cos(h_in, h_out) of one layer, averaged over tokens."""
    return 1.0 - mean_cosine(before, after)


def _tensor(source, name: str):
    found = [t for t in source.global_tensors if t.name == name]
    if not found:
        raise NeuroError(f"the model has no {name} tensor", "hidden states need a model with a final norm "
                         "(output_norm.weight) and a token embedding (token_embd.weight)")
    return found[0]


def read_gain(source) -> np.ndarray:
    """output_norm.weight: the final RMSNorm's per-channel gain (a small tensor, F32 in every GGUF)."""
    ref = _tensor(source, "output_norm.weight")
    if ref.ggml_type != GGMLQuantizationType.F32:
        raise NeuroError(f"output_norm.weight is stored as type {ref.ggml_type}, not F32",
                         "re-convert the model with llama.cpp's converter (it keeps norms in F32)")
    return np.fromfile(ref.file, dtype=np.float32, count=ref.dims[0], offset=ref.offset)


def embedding_rows(source, token_ids: Sequence[int]) -> np.ndarray:
    """The token embeddings of `token_ids` (the input of layer 0), dequantized row by row from the file.

    Architectures that scale the embedding (Gemma: x sqrt(n_embd)) scale every row alike, which no
    cosine sees."""
    ref = _tensor(source, "token_embd.weight")
    n_embd, n_vocab = ref.dims[0], ref.dims[1]
    row_bytes = ref.nbytes // n_vocab
    table = np.memmap(ref.file, dtype=np.uint8, mode="r", offset=ref.offset, shape=(n_vocab, row_bytes))
    rows = np.array(table[list(token_ids)])
    return dequantize(rows, GGMLQuantizationType(ref.ggml_type)).reshape(len(token_ids), n_embd)
