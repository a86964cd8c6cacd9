"""Logit-lens math on full-vocabulary next-token distributions (pure functions, numpy only).

A distribution is a dense vector of natural-log probabilities indexed by token id, as llama-server's
`completion_probabilities` gives them (n_probs = n_vocab). Metrics follow logos-in-layers: entropy and
KL in bits, answer rank = 1 + number of tokens strictly more probable than the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LN2 = float(np.log(2.0))
RANK_THRESHOLDS = (1, 5, 10)
KL_THRESHOLDS = (0.5, 1.0)
COPY_P1 = 0.95  # copy collapse: top-1 is a prompt token with p1 > 0.95 ...
COPY_MARGIN = 0.10  # ... and p1 - p2 > 0.10


def normalize(logprobs: np.ndarray) -> np.ndarray:
    """Log-probabilities shifted so they sum to exactly 1 (the server's rounded values sum to ~1.0001)."""
    lp = np.asarray(logprobs, dtype=np.float64)
    top = lp.max()
    return lp - (top + np.log(np.exp(lp - top).sum()))


def entropy_bits(logprobs: np.ndarray) -> float:
    lp = np.asarray(logprobs, dtype=np.float64)
    p = np.exp(lp)
    live = p > 0
    return float(-(p[live] * lp[live]).sum() / LN2)


def kl_bits(p_logprobs: np.ndarray, q_logprobs: np.ndarray) -> float:
    """KL(P || Q) in bits; infinite when Q gives zero mass to a token P can emit."""
    lp = np.asarray(p_logprobs, dtype=np.float64)
    lq = np.asarray(q_logprobs, dtype=np.float64)
    p = np.exp(lp)
    live = p > 0
    if np.any(np.isneginf(lq[live])):
        return float("inf")
    # Clamp at 0: rounding can make an identical pair come out as -1e-17.
    return max(0.0, float((p[live] * (lp[live] - lq[live])).sum() / LN2))


def rank_of(logprobs: np.ndarray, token: int) -> int:
    lp = np.asarray(logprobs)
    return 1 + int((lp > lp[token]).sum())


def top_k(logprobs: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k most probable (token id, probability) pairs, most probable first; ties by lower id."""
    lp = np.asarray(logprobs, dtype=np.float64)
    k = min(k, lp.size)
    ids = np.argpartition(-lp, k - 1)[:k]
    ids = ids[np.lexsort((ids, -lp[ids]))]
    return [(int(i), float(np.exp(lp[i]))) for i in ids]


def copy_collapse(logprobs: np.ndarray, prompt_ids: Sequence[int]) -> bool:
    """The layer just copies a prompt token: top-1 occurs in the prompt, p1 > 0.95 and p1 - p2 > 0.10."""
    (t1, p1), (_, p2) = top_k(logprobs, 2)
    return t1 in set(prompt_ids) and p1 > COPY_P1 and p1 - p2 > COPY_MARGIN


@dataclass
class LayerStats:
    """What the lens reads at one layer for one prompt (layer = 0-based index of the last layer run)."""

    layer: int
    entropy_bits: float
    kl_bits: float  # KL(P_layer || P_final)
    top: list[tuple[int, float]]  # top-k (token id, probability)
    answer_prob: float | None = None
    answer_rank: int | None = None
    copy_collapse: bool = False
    semantic_collapse: bool = False  # top-1 is the answer

    @property
    def top_mass(self) -> float:
        return sum(p for _, p in self.top)


def layer_stats(layer: int, logprobs: np.ndarray, final: np.ndarray, prompt_ids: Sequence[int],
                answer: int | None = None, k: int = 5) -> LayerStats:
    lp, final = normalize(logprobs), normalize(final)
    top = top_k(lp, max(k, 2))
    stats = LayerStats(layer=layer, entropy_bits=entropy_bits(lp), kl_bits=kl_bits(lp, final), top=top[:k],
                       copy_collapse=copy_collapse(lp, prompt_ids))
    if answer is not None:
        stats.answer_prob = float(np.exp(lp[answer]))
        stats.answer_rank = rank_of(lp, answer)
        stats.semantic_collapse = top[0][0] == answer
    return stats


def first_layer(layers: Sequence[LayerStats], test) -> int | None:
    return next((s.layer for s in layers if test(s)), None)


def summary_layers(layers: Sequence[LayerStats]) -> dict[str, int | None]:
    """First layer reaching each milestone, or None when none does."""
    out: dict[str, int | None] = {}
    for r in RANK_THRESHOLDS:
        out[f"first_rank_le_{r}"] = first_layer(layers, lambda s, r=r: s.answer_rank is not None and s.answer_rank <= r)
    for t in KL_THRESHOLDS:
        out[f"first_kl_below_{t}"] = first_layer(layers, lambda s, t=t: s.kl_bits < t)
    out["copy_collapse"] = first_layer(layers, lambda s: s.copy_collapse)
    out["semantic_collapse"] = first_layer(layers, lambda s: s.semantic_collapse)
    return out
