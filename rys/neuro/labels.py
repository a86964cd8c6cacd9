"""Automatic layer labels from position, ablation importance and answer emergence.

The rules are deliberately simple so a report can state them in one table (RULES) and a user can
check every label by hand against the charts next to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EARLY_FRACTION = 0.15  # relative depth below which layers are "early"
OUTPUT_FRACTION = 0.90  # relative depth above which layers are "output"
IMPORTANT_QUANTILE = 2 / 3  # a layer is important when its ablation delta is > 0 and in the top third
SEMANTIC_SPAN = 0.10  # layers within this fraction of depth after emergence are "semantic"

LABELS = ("early", "syntax", "reasoning", "semantic", "formatting", "output")
RULES = {
    "early": f"relative depth < {EARLY_FRACTION:.2f}: token and position features next to the embedding",
    "syntax": "before the answer emerges, not important when skipped",
    "reasoning": "before the answer emerges, important when skipped (ablation delta > 0, top third)",
    "semantic": f"the answer has emerged (lens rank <= 10) within {SEMANTIC_SPAN:.2f} of depth, or "
                "later and still important",
    "formatting": "after the answer emerged and the semantic span, not important when skipped",
    "output": f"relative depth > {OUTPUT_FRACTION:.2f}: shaping the final distribution",
}


@dataclass
class LayerLabel:
    layer: int
    label: str
    relative_depth: float
    important: bool
    reason: str


def relative_depth(layer: int, n_layers: int) -> float:
    """Centre of the layer on a 0..1 depth scale, comparable across models."""
    return (layer + 0.5) / n_layers


def important_layers(importance: Sequence[float]) -> list[bool]:
    values = np.asarray(importance, dtype=float)
    cut = float(np.quantile(values, IMPORTANT_QUANTILE))
    return [bool(v > 0 and v >= cut) for v in values]


def label_layers(importance: Sequence[float], emergence: int | None) -> list[LayerLabel]:
    """importance[l] = ablation delta of layer l; emergence = first layer where the answer reaches
    rank <= 10 (None: never, then every middle layer counts as before emergence)."""
    n = len(importance)
    important = important_layers(importance)
    span = max(1, round(SEMANTIC_SPAN * n))
    labels = []
    for layer in range(n):
        depth = relative_depth(layer, n)
        if depth < EARLY_FRACTION or layer == 0:
            label = "early"
        elif depth > OUTPUT_FRACTION or layer == n - 1:
            label = "output"
        elif emergence is None or layer < emergence:
            label = "reasoning" if important[layer] else "syntax"
        elif layer < emergence + span or important[layer]:
            label = "semantic"
        else:
            label = "formatting"
        labels.append(LayerLabel(layer, label, depth, important[layer], RULES[label]))
    return labels
