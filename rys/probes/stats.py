"""Honest statistics over per-item scores: bootstrap CIs, paired deltas, sign and permutation tests,
and multiple-comparison adjustment (Holm, Benjamini-Hochberg) for sweeps that test many configs.

Everything is seeded so a report is reproducible; the defaults (2,000 resamples, 95%) are cheap for
probe sets of tens to hundreds of items.
"""

from __future__ import annotations

import functools
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
    ci_low: float  # -inf / +inf: an end the permutation test cannot bound at this alpha (too few items)
    ci_high: float
    p: float
    n: int
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        return self.p < self.alpha

    def describe(self) -> str:
        verdict = f"significant, p={self.p:.3g}" if self.significant else f"not significant, p={self.p:.3g}"
        return (f"{self.delta:+.4f} [{_end(self.ci_low)}, {_end(self.ci_high)}] "
                f"({verdict}, n={self.n})")

    def to_dict(self) -> dict:
        """JSON-safe: an unbounded CI end is None."""
        return {"delta": self.delta, "ci_low": _finite(self.ci_low), "ci_high": _finite(self.ci_high), "p": self.p,
                "n": self.n, "alpha": self.alpha, "significant": self.significant}


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def _end(value: float | None) -> str:
    return "unbounded" if value is None or math.isinf(value) else f"{value:+.4f}"


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


EXACT_MAX = 16  # up to this many paired items every sign pattern is enumerated (2^16 = 65,536)
N_PERM = 10000


@functools.lru_cache(maxsize=8)
def _signs(n: int, n_perm: int, seed: int) -> tuple[np.ndarray, bool]:
    """The sign patterns of the sign-flip test: all 2^n when n <= EXACT_MAX (exact), else n_perm seeded
    random ones. Cached: every row of a sweep with n items shares the same patterns."""
    if n <= EXACT_MAX:
        return np.array(list(product((1, -1), repeat=n)), dtype=np.int8), True
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 2, size=(n_perm, n), dtype=np.int8) * 2 - 1).astype(np.int8), False


@dataclass(frozen=True)
class SignFlip:
    """The paired sign-flip permutation test of "mean difference = d" for every d at once.

    Under H0(d) the differences x - d are symmetric around 0, so flipping their signs leaves their
    distribution unchanged. A pattern s counts as at least as extreme as the data when
    |s.(x - d)| >= |sum(x - d)|; that holds on one closed interval of d around mean(x) (a quadratic in d
    with a non-positive leading term), so p(d) falls away from the mean on both sides and the set
    {d : p(d) >= alpha} is an interval: the confidence interval that agrees with the test exactly
    (0 lies outside it if and only if p(0) < alpha).
    """

    lows: np.ndarray  # per pattern: the interval of d where it counts, sorted ascending by low end
    highs: np.ndarray  # sorted descending by high end
    exact: bool
    total: int
    mean: float
    n: int

    @classmethod
    def of(cls, diffs: Iterable[float], n_perm: int = N_PERM, seed: int = 0) -> SignFlip:
        x = _array(diffs)
        n = int(x.size)
        signs, exact = _signs(n, int(n_perm), int(seed))
        a_sum = signs @ x  # s.x
        b_sum = signs.sum(axis=1, dtype=np.int64).astype(float)  # s.1
        total = float(x.sum())
        # |A - B d| >= |S - n d|  <=>  (n^2 - B^2) d^2 - 2 (n S - A B) d + (S^2 - A^2) <= 0
        qa = n * n - b_sum ** 2
        qb = n * total - a_sum * b_sum
        qc = total ** 2 - a_sum ** 2
        scale = max(1.0, float(np.abs(x).max())) * n
        always = qa <= 0.5  # the all-plus and all-minus patterns: always as extreme as the data
        safe = np.where(always, 1.0, qa)
        root = np.sqrt(np.maximum(qb ** 2 - qa * qc, 0.0))
        tol = 1e-9 * scale / n
        lows = np.where(always, -np.inf, (qb - root) / safe - tol)
        highs = np.where(always, np.inf, (qb + root) / safe + tol)
        return cls(np.sort(lows), np.sort(highs)[::-1], exact, int(signs.shape[0]), float(x.mean()), n)

    def _p(self, hits: int) -> float:
        # Monte Carlo counts the observed pattern too, so its p is never 0
        return hits / self.total if self.exact else (hits + 1) / (self.total + 1)

    def p(self, d: float = 0.0) -> float:
        """Two-sided p of mean difference = d."""
        if d <= self.mean:
            hits = int(np.searchsorted(self.lows, d, side="right"))  # patterns whose interval starts <= d
        else:
            hits = int(np.searchsorted(-self.highs, -d, side="right"))
        return self._p(hits)

    def interval(self, alpha: float = 0.05) -> tuple[float | None, float | None]:
        """{d : p(d) >= alpha}; None for an end the test cannot bound (too few patterns for alpha)."""
        need = math.ceil(alpha * self.total) if self.exact else math.ceil(alpha * (self.total + 1) - 1)
        if need <= 0:  # alpha at or below the smallest p this many patterns can give: nothing is rejected
            return None, None
        need = min(need, self.total)  # alpha = 1: the interval shrinks to the points every pattern covers
        low, high = float(self.lows[need - 1]), float(self.highs[need - 1])
        return (None if math.isinf(low) else low), (None if math.isinf(high) else high)


def permutation_test(diffs: Iterable[float], n_perm: int = N_PERM, seed: int = 0) -> float:
    """Two-sided paired sign-flip permutation test of mean(diffs) == 0.

    Exact (all 2^n sign patterns) for up to 16 differences, Monte Carlo otherwise; the Monte Carlo p
    counts the observed pattern so it is never 0 (its floor is 1/(n_perm + 1)).
    """
    return SignFlip.of(diffs, n_perm=n_perm, seed=seed).p(0.0)


def permutation_interval(diffs: Iterable[float], alpha: float = 0.05, n_perm: int = N_PERM,
                         seed: int = 0) -> tuple[float | None, float | None]:
    """The (1 - alpha) CI of the mean difference that inverts permutation_test: 0 is outside it
    exactly when permutation_test(diffs) < alpha. None for an unbounded end."""
    return SignFlip.of(diffs, n_perm=n_perm, seed=seed).interval(alpha)


def _scores_by_id(items: Sequence) -> dict[str, float]:
    out = {}
    for item in items:
        item_id, score = (item["id"], item["score"]) if isinstance(item, dict) else (item.id, item.score)
        out[str(item_id)] = float(score)
    return out


def paired_diffs(a_items: Sequence, b_items: Sequence) -> np.ndarray:
    """b - a per item, paired by item id (sorted by id)."""
    a, b = _scores_by_id(a_items), _scores_by_id(b_items)
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b))[:3], sorted(set(b) - set(a))[:3]
        raise StatsError(f"runs do not cover the same items (only in a: {only_a}, only in b: {only_b})",
                         "compare runs of the same probe version (same probe sha256)")
    return _array(b[k] - a[k] for k in sorted(a))


def paired_delta(a_items: Sequence, b_items: Sequence, alpha: float = 0.05, n_perm: int = N_PERM,
                 seed: int = 0) -> Delta:
    """Delta of b over a (e.g. config over baseline), paired by item id.

    Items are ItemResults or their dicts. p: the paired sign-flip permutation test; CI: that same test
    inverted (permutation_interval), so "significant" (p < alpha) and "the CI excludes 0" always agree.
    This p is one test on its own: where many configs or layers are tested, decide on adjust_pvalues.
    """
    diffs = paired_diffs(a_items, b_items)
    test = SignFlip.of(diffs, n_perm=n_perm, seed=seed)
    low, high = test.interval(alpha)
    return Delta(delta=float(diffs.mean()), ci_low=-math.inf if low is None else low,
                 ci_high=math.inf if high is None else high, p=test.p(0.0), n=int(diffs.size), alpha=alpha)


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
