"""Honest statistics over per-item scores: bootstrap CIs, paired deltas, sign and permutation tests,
and multiple-comparison adjustment (Holm, Benjamini-Hochberg) for sweeps that test many configs.

Everything is seeded so a report is reproducible; the defaults (2,000 resamples, 95%) are cheap for
probe sets of tens to hundreds of items.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

from rys.errors import RysError


class StatsError(RysError):
    pass


@dataclass(frozen=True)
class Delta:
    """b - a over paired items: mean difference, its bootstrap CI and a paired test's p-value."""

    delta: float
    ci_low: float
    ci_high: float
    p: float
    n: int
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        return self.p < self.alpha

    def describe(self) -> str:
        verdict = f"significant, p={self.p:.3g}" if self.significant else f"not significant, p={self.p:.3g}"
        return (f"{self.delta:+.4f} [{self.ci_low:+.4f}, {self.ci_high:+.4f}] "
                f"({verdict}, n={self.n})")

    def to_dict(self) -> dict:
        return {"delta": self.delta, "ci_low": self.ci_low, "ci_high": self.ci_high, "p": self.p,
                "n": self.n, "alpha": self.alpha, "significant": self.significant}


def _array(values: Iterable[float]) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        raise StatsError("no values to compute statistics over", "run the probe on at least one item")
    return arr


def bootstrap_ci(values: Iterable[float], n_boot: int = 2000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean."""
    arr = _array(values)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(n_boot, arr.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def binomial_two_sided(a: int, b: int) -> float:
    """Exact two-sided p of a split a:b under a fair coin (the sign test; McNemar's exact test on the
    discordant counts)."""
    n = a + b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(a, b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def sign_test(diffs: Iterable[float]) -> float:
    """Two-sided exact binomial sign test; ties (zero differences) are dropped."""
    arr = _array(diffs)
    return binomial_two_sided(int((arr > 0).sum()), int((arr < 0).sum()))


def permutation_test(diffs: Iterable[float], n_perm: int = 10000, seed: int = 0) -> float:
    """Two-sided paired sign-flip permutation test of mean(diffs) == 0.

    Exact (all 2^n sign patterns) for up to 16 non-zero differences, Monte Carlo otherwise; the Monte
    Carlo p counts the observed pattern so it is never 0.
    """
    arr = _array(diffs)
    arr = arr[arr != 0]
    if arr.size == 0:
        return 1.0
    observed = abs(arr.sum())
    tol = 1e-12 * max(1.0, observed)
    if arr.size <= 16:
        signs = np.array(list(product((1.0, -1.0), repeat=arr.size)))
        return float((np.abs(signs @ arr) >= observed - tol).mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(n_perm, arr.size))
    hits = int((np.abs(signs @ arr) >= observed - tol).sum())
    return (hits + 1) / (n_perm + 1)


def _scores_by_id(items: Sequence) -> dict[str, float]:
    out = {}
    for item in items:
        item_id, score = (item["id"], item["score"]) if isinstance(item, dict) else (item.id, item.score)
        out[str(item_id)] = float(score)
    return out


def paired_delta(a_items: Sequence, b_items: Sequence, n_boot: int = 2000, alpha: float = 0.05,
                 seed: int = 0) -> Delta:
    """Delta of b over a (e.g. config over baseline), paired by item id.

    Items are ItemResults or their dicts. CI: bootstrap over items of the mean paired difference;
    p: the paired sign-flip permutation test.
    """
    a, b = _scores_by_id(a_items), _scores_by_id(b_items)
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b))[:3], sorted(set(b) - set(a))[:3]
        raise StatsError(f"runs do not cover the same items (only in a: {only_a}, only in b: {only_b})",
                         "compare runs of the same probe version (same probe sha256)")
    diffs = _array(b[k] - a[k] for k in sorted(a))
    low, high = bootstrap_ci(diffs, n_boot=n_boot, alpha=alpha, seed=seed)
    return Delta(delta=float(diffs.mean()), ci_low=low, ci_high=high, p=permutation_test(diffs, seed=seed),
                 n=int(diffs.size), alpha=alpha)


ADJUST_METHODS = ("holm", "bh")


def adjust_pvalues(pvalues: Sequence[float], method: str = "bh") -> list[float]:
    """Multiple-comparison adjusted p-values, in the input order (stable API: rys.neuro imports it).

    Compare each adjusted p with alpha to decide "significant" over the whole family of tests:

    - ``"holm"``: Holm's step-down adjustment; controls the family-wise error rate (the chance of even
      one false "significant") under any dependence. p_(k) (k-th smallest of m) becomes
      max_{l<=k} min(1, (m - l + 1) p_(l)).
    - ``"bh"``: Benjamini-Hochberg; controls the false discovery rate (the expected share of false ones
      among those marked), valid for independent or positively dependent tests, as configs scored on
      the same items are. p_(k) becomes min_{l>=k} min(1, m p_(l) / l) (scipy's
      false_discovery_control). Under the global null (no real effect anywhere) it bounds the chance of
      any false mark by alpha too, like Holm.

    An empty list gives an empty list; a p outside [0, 1] or NaN raises StatsError.
    """
    ps = [float(p) for p in pvalues]
    if any(not (0.0 <= p <= 1.0) for p in ps):  # NaN fails both comparisons
        raise StatsError(f"p-values must lie in [0, 1], got {[p for p in ps if not 0.0 <= p <= 1.0][:3]}",
                         "pass the raw p-values of the paired tests")
    if method not in ADJUST_METHODS:
        raise StatsError(f"unknown adjustment method {method!r}", f"use one of {', '.join(ADJUST_METHODS)}")
    if not ps:
        return []
    if method == "bh":
        from scipy.stats import false_discovery_control  # scipy is heavy; import when used

        return [min(1.0, float(p)) for p in false_discovery_control(ps, method="bh")]
    m = len(ps)
    order = sorted(range(m), key=lambda k: ps[k])
    out = [0.0] * m
    running = 0.0
    for rank, k in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[k]))
        out[k] = running
    return out
