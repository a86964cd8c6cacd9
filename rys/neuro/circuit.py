"""Layer circuits: do two layers matter together more (or less) than each alone?

delta(x) = baseline score - score with x skipped (positive = the layers help). The interaction of a
pair is delta(a, b) - (delta(a) + delta(b)): above +0.05 the pair is synergistic (skipping both hurts
more than the sum), below -0.05 redundant (either one covers for the other), else independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from rys.neuro import NeuroError
from rys.neuro.ablate import SkipScores, score_skips

THRESHOLD = 0.05
# How many of the most important layers (by single-layer ablation) each strategy pairs up.
STRATEGY_TOP = {"fast": 6, "thorough": 12, "exhaustive": None}


def interaction(delta_ab: float, delta_a: float, delta_b: float) -> float:
    return delta_ab - (delta_a + delta_b)


def classify(value: float, threshold: float = THRESHOLD) -> str:
    if value > threshold:
        return "synergistic"
    if value < -threshold:
        return "redundant"
    return "independent"


def candidate_pairs(importance: dict[int, float], strategy: str) -> list[tuple[int, int]]:
    """Pairs (a < b) of the strategy's top layers by single-layer importance (all layers: exhaustive)."""
    if strategy not in STRATEGY_TOP:
        raise NeuroError(f"unknown circuit strategy {strategy!r}", f"use one of: {', '.join(STRATEGY_TOP)}")
    top = STRATEGY_TOP[strategy]
    ranked = sorted(importance, key=lambda layer: (-importance[layer], layer))
    chosen = sorted(ranked if top is None else ranked[:top])
    return list(combinations(chosen, 2))


@dataclass
class Pair:
    a: int
    b: int
    delta_a: float
    delta_b: float
    delta_ab: float

    @property
    def interaction(self) -> float:
        return interaction(self.delta_ab, self.delta_a, self.delta_b)

    @property
    def kind(self) -> str:
        return classify(self.interaction)


def run_circuit(model: Path, probe, config, strategy: str = "fast", *, layers: list[int] | None = None,
                journal: Path | None = None, store=None, workers: int = 2,
                on_done=None) -> tuple[SkipScores, list[Pair]]:
    """Single-layer ablation of `layers` (default all), then pairwise skips of the strategy's
    candidate pairs among them."""
    from rys.gguf.source import open_source

    layers = list(range(open_source(model).n_layers)) if layers is None else sorted(set(layers))
    kwargs = {"journal": journal, "store": store, "workers": workers, "on_done": on_done}
    singles = score_skips(model, probe, config, [(layer,) for layer in layers], **kwargs)
    importance = singles.importance()
    pairs = candidate_pairs(importance, strategy)
    scores = score_skips(model, probe, config, [*singles.results, *pairs], previous=singles, **kwargs)
    scores.failed.update(singles.failed)
    out = [Pair(a, b, importance[a], importance[b], scores.row((a, b)).importance)
           for a, b in pairs if (a, b) in scores.results]
    return scores, out
