"""Automatic layer labels from position, significant ablation effects and answer emergence.

A label that claims a function (reasoning, semantic) is earned only by an ablation effect that survives
multiple-comparison control over the layers tested (rys.neuro.ablate: Benjamini-Hochberg adjusted
p < 0.05, the score drops when the layer is skipped). Every other layer is labelled by its position
alone (early, middle, output), and the label says so (`by_effect` False). Four items of a probe the
model answers at chance earn nothing: no effect is significant, every layer is labelled by position.

The rules are deliberately simple so a report can state them in one table (RULES) and a user can check
every label by hand against the charts next to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

EARLY_FRACTION = 0.15  # relative depth below which layers are "early"
OUTPUT_FRACTION = 0.90  # relative depth above which layers are "output"

LABELS = ("early", "middle", "reasoning", "semantic", "output")
EFFECT_LABELS = ("reasoning", "semantic")
RULES = {
    "early": f"by position: relative depth < {EARLY_FRACTION:.2f} (always layer 0), next to the embedding",
    "middle": "by position only: between early and output, with no significant ablation effect",
    "reasoning": "by effect: skipping it lowers the score significantly (adjusted over the layers tested), "
                 "and it comes before the answer emerges in the lens",
    "semantic": "by effect: skipping it lowers the score significantly (adjusted over the layers tested), "
                "at or after the layer where the answer emerges (lens rank <= 10)",
    "output": f"by position: relative depth > {OUTPUT_FRACTION:.2f} (always the last layer), shaping the final "
              "distribution",
}


@dataclass
class LayerLabel:
    layer: int
    label: str
    relative_depth: float
    important: bool  # a significant drop when skipped (adjusted p < alpha and importance > 0)
    by_effect: bool  # the label comes from that effect, not from the layer's position
    reason: str


def relative_depth(layer: int, n_layers: int) -> float:
    """Centre of the layer on a 0..1 depth scale, comparable across models."""
    return (layer + 0.5) / n_layers


def important_layers(importance: Sequence[float], significant: Sequence[bool]) -> list[bool]:
    """Layers whose skip lowers the score significantly: the effect is positive and survives the adjustment."""
    return [bool(s and v > 0) for v, s in zip(importance, significant)]


def label_layers(importance: Sequence[float], significant: Sequence[bool], emergence: int | None) -> list[LayerLabel]:
    """importance[l] = ablation delta of layer l (baseline - skipped); significant[l] = its adjusted test;
    emergence = first layer where the answer reaches rank <= 10 (None: never, so a significant middle
    layer counts as before emergence)."""
    n = len(importance)
    important = important_layers(importance, significant)
    labels = []
    for layer in range(n):
        depth = relative_depth(layer, n)
        if depth < EARLY_FRACTION or layer == 0:
            label = "early"
        elif depth > OUTPUT_FRACTION or layer == n - 1:
            label = "output"
        elif not important[layer]:
            label = "middle"
        elif emergence is None or layer < emergence:
            label = "reasoning"
        else:
            label = "semantic"
        labels.append(LayerLabel(layer, label, depth, important[layer], label in EFFECT_LABELS, RULES[label]))
    return labels
