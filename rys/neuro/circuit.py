"""Layer circuits: do two layers matter together more (or less) than each alone?

delta(x) = baseline score - score with x skipped (positive = the layers help). The interaction of a
pair is delta(a, b) - (delta(a) + delta(b)): above +0.05 the pair is synergistic (skipping both hurts
more than the sum), below -0.05 redundant (either one covers for the other), else independent.

A pair is called synergistic or redundant only when its interaction is also significant: per item the
interaction is score(a) + score(b) - score(a,b) - score(baseline), tested with the paired sign-flip
test, its p-value adjusted over every pair of the run (Benjamini-Hochberg). Otherwise it is independent
(no interaction the items can tell from chance).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from rys.neuro import NeuroError
from rys.neuro.ablate import ADJUST, ALPHA, SkipScores, score_skips
from rys.probes.stats import adjust_pvalues, paired_diffs, permutation_test

THRESHOLD = 0.05
# How many of the most important layers (by single-layer ablation) each strategy pairs up.
STRATEGY_TOP = {"fast": 6, "thorough": 12, "exhaustive": None}


def interaction(delta_ab: float, delta_a: float, delta_b: float) -> float:
    return delta_ab - (delta_a + delta_b)


def classify(value: float, significant: bool = True, threshold: float = THRESHOLD) -> str:
    if significant and value > threshold:
        return "synergistic"
    if significant and value < -threshold:
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
    p: float | None = None  # sign-flip test of the per-item interaction (None: not tested)
    p_adjusted: float | None = None  # over every pair of the run

    @property
    def interaction(self) -> float:
        return interaction(self.delta_ab, self.delta_a, self.delta_b)

    @property
    def significant(self) -> bool:
        return self.p_adjusted is not None and self.p_adjusted < ALPHA

    @property
    def kind(self) -> str:
        return classify(self.interaction, self.significant)


def item_interactions(scores: SkipScores, a: int, b: int):
    """Per item: score(a) + score(b) - score(a,b) - score(baseline), i.e. delta(a,b) - delta(a) - delta(b)."""
    base = scores.baseline.items
    d_a = paired_diffs(scores.results[(a,)].items, base)
    d_b = paired_diffs(scores.results[(b,)].items, base)
    d_ab = paired_diffs(scores.results[(a, b)].items, base)
    return d_ab - d_a - d_b


def test_pairs(scores: SkipScores, pairs: list[Pair]) -> list[Pair]:
    """The pairs with their interaction p-values, adjusted over all of them."""
    ps = [permutation_test(item_interactions(scores, p.a, p.b)) for p in pairs]
    return [Pair(p.a, p.b, p.delta_a, p.delta_b, p.delta_ab, raw, q)
            for p, raw, q in zip(pairs, ps, adjust_pvalues(ps, ADJUST))]


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
    return scores, test_pairs(scores, out)
