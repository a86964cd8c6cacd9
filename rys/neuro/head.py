"""The model's own output head, read from the GGUF: final RMSNorm gain, epsilon and unembedding matrix.

With it a hidden state becomes a next-token distribution in numpy, exactly the way llama.cpp's graph
ends (RMSNorm(h) x output_norm.weight, times output.weight, optional final logit soft-capping). The
tuned lens needs that to score a translated state, which no server request can return.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from rys.neuro import NeuroError
from rys.neuro.hidden import read_gain


@dataclass
class Head:
    weight: np.ndarray  # [n_vocab, n_embd] float32, dequantized
    gain: np.ndarray  # [n_embd] output_norm.weight
    eps: float  # the final norm's epsilon
    softcap: float | None = None  # final_logit_softcapping (Gemma 2), else None

    @property
    def n_vocab(self) -> int:
        return self.weight.shape[0]

    @property
    def n_embd(self) -> int:
        return self.weight.shape[1]

    def logits(self, normed: np.ndarray) -> np.ndarray:
        """Logits of rows that already went through the final norm and gain ([n, n_embd] -> [n, n_vocab])."""
        z = np.asarray(normed, dtype=np.float32) @ self.weight.T
        if self.softcap:
            z = self.softcap * np.tanh(z / self.softcap)
        return z

    def logprobs(self, normed: np.ndarray) -> np.ndarray:
        return log_softmax(self.logits(normed))


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z)
    top = z.max(axis=-1, keepdims=True)
    shifted = z - top
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def dequantized(ref) -> np.ndarray:
    """A whole tensor from the file as float32, shape [dims[-1], ..., dims[0]] (numpy order)."""
    raw = np.memmap(ref.file, dtype=np.uint8, mode="r", offset=ref.offset, shape=(ref.nbytes,))
    kind = GGMLQuantizationType(ref.ggml_type)
    shape = tuple(reversed(ref.dims))
    if kind == GGMLQuantizationType.F32:
        return np.array(raw.view(np.float32).reshape(shape))
    if kind == GGMLQuantizationType.F16:
        return raw.view(np.float16).reshape(shape).astype(np.float32)
    rows = np.array(raw).reshape(int(np.prod(shape[:-1])), -1)
    return dequantize(rows, kind).reshape(shape).astype(np.float32)


def read_head(model: str | Path) -> Head:
    """The output head of a GGUF model; tied embeddings (no output.weight) use token_embd.weight."""
    from rys.gguf.source import open_source

    source = open_source(model)
    tensors = {t.name: t for t in source.global_tensors}
    ref = tensors.get("output.weight") or tensors.get("token_embd.weight")
    if ref is None:
        raise NeuroError(f"{Path(model).name} has neither output.weight nor token_embd.weight",
                         "the tuned lens needs a model with an unembedding matrix")
    eps = source.value(f"{source.arch}.attention.layer_norm_rms_epsilon")
    if eps is None:
        raise NeuroError(f"{Path(model).name} ({source.arch}) has no RMSNorm epsilon "
                         f"({source.arch}.attention.layer_norm_rms_epsilon)",
                         "the tuned lens supports models whose final norm is an RMSNorm")
    softcap = source.value(f"{source.arch}.final_logit_softcapping")
    return Head(weight=dequantized(ref), gain=read_gain(source).astype(np.float32), eps=float(eps),
                softcap=float(softcap) if softcap else None)
