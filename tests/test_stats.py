"""Statistics against hand-computed values."""

import math

import pytest

from rys.probes.results import ItemResult
from rys.probes.stats import StatsError, bootstrap_ci, paired_delta, permutation_test, sign_test


def items(scores, prefix="q"):
    return [ItemResult(id=f"{prefix}{i}", category="c", score=s, correct=s > 0.5) for i, s in enumerate(scores)]


def test_bootstrap_ci_constant_and_bounds():
    assert bootstrap_ci([0.3] * 10) == (pytest.approx(0.3), pytest.approx(0.3))
    # normal approximation: 0.5 +- 1.96 * 0.5 / sqrt(40) = [0.345, 0.655]
    low, high = bootstrap_ci([0, 1] * 20)
    assert low == pytest.approx(0.345, abs=0.03) and high == pytest.approx(0.655, abs=0.03)
    assert bootstrap_ci([0, 1] * 20) == (low, high)  # seeded: reproducible
    with pytest.raises(StatsError):
        bootstrap_ci([])


def test_sign_test_exact():
    assert sign_test([1, 1, 1, 1, 1]) == pytest.approx(2 / 32)
    assert sign_test([1, -1]) == 1.0
    assert sign_test([0, 0, 0.5]) == 1.0  # one non-zero difference: p = 2 * 1/2
    assert sign_test([0, 0]) == 1.0


def test_permutation_test_exact_enumeration():
    # sign patterns of (1, 2, 3): sums 6, 0, 2, -4, 4, -2, 0, -6 -> |sum| >= 6 twice in 8
    assert permutation_test([1, 2, 3]) == pytest.approx(0.25)
    assert permutation_test([0, 0]) == 1.0
    # Monte Carlo branch (> 16 differences) never returns 0
    p = permutation_test([1.0] * 20)
    assert 0 < p < 0.001


def test_paired_delta_small_sample_is_not_significant():
    d = paired_delta(items([0, 0, 0, 0]), items([1, 1, 1, 1]))
    # the smallest exact p of 4 pairs is 2/16 > 0.05: the test cannot reject anything, so its CI is unbounded
    assert d.delta == 1.0 and (d.ci_low, d.ci_high) == (-math.inf, math.inf)
    assert (d.to_dict()['ci_low'], d.to_dict()['ci_high']) == (None, None)
    assert d.p == pytest.approx(2 / 16) and not d.significant
    assert "not significant" in d.describe()


def test_paired_delta_pairs_by_id_and_detects_real_gain():
    a = items([0.2] * 30)
    b = list(reversed(items([0.2] * 5 + [0.6] * 25)))  # order must not matter
    d = paired_delta([x.to_dict() for x in a], b)
    assert d.delta == pytest.approx(25 * 0.4 / 30)
    assert d.significant and d.ci_low > 0
    assert d.to_dict()["significant"] is True


def test_paired_delta_needs_the_same_items():
    with pytest.raises(StatsError, match="same items"):
        paired_delta(items([1, 0]), items([1, 0, 1]))


def test_adjust_holm_hand_computed():
    from rys.probes.stats import adjust_pvalues
    # sorted 0.01, 0.02, 0.03, 0.5 (m=4): 4*0.01=0.04, 3*0.02=0.06, 2*0.03=0.06, 1*0.5=0.5
    assert adjust_pvalues([0.03, 0.5, 0.01, 0.02], "holm") == pytest.approx([0.06, 0.5, 0.04, 0.06])
    # step-down monotonicity: the second 0.02 gives 2*0.02=0.04, below the running max 3*0.02=0.06
    assert adjust_pvalues([0.02, 0.02, 0.9], "holm") == pytest.approx([0.06, 0.06, 0.9])
    assert adjust_pvalues([0.4, 0.6], "holm") == pytest.approx([0.8, 0.8])  # 2*0.4, max(0.8, 0.6)
    assert adjust_pvalues([0.9, 0.9], "holm") == [1.0, 1.0]


def test_adjust_bh_hand_computed():
    from rys.probes.stats import adjust_pvalues
    # sorted 0.01, 0.02, 0.03, 0.5 (m=4): m*p/rank = 0.04, 0.04, 0.04, 0.5; then min from the top
    assert adjust_pvalues([0.03, 0.5, 0.01, 0.02], "bh") == pytest.approx([0.04, 0.5, 0.04, 0.04])
    # 0.01*3/1 = 0.03, 0.04*3/2 = 0.06, 0.045*3/3 = 0.045 -> min from the top gives 0.045 for rank 2
    assert adjust_pvalues([0.01, 0.04, 0.045], "bh") == pytest.approx([0.03, 0.045, 0.045])
    assert adjust_pvalues([], "bh") == []
    assert adjust_pvalues([0.2], "holm") == [0.2]


def test_adjust_rejects_bad_input():
    from rys.probes.stats import adjust_pvalues
    with pytest.raises(StatsError, match="unknown"):
        adjust_pvalues([0.1], "bonferonni")
    with pytest.raises(StatsError, match=r"\[0, 1\]"):
        adjust_pvalues([float("nan")])
    with pytest.raises(StatsError):
        adjust_pvalues([1.5])


def _brute_p(diffs, d):
    """All 2^n sign patterns counted directly: an independent computation of the exact test."""
    from itertools import product as patterns

    x = [v - d for v in diffs]
    observed = abs(sum(x))
    hits = sum(abs(sum(s * v for s, v in zip(signs, x))) >= observed - 1e-9
               for signs in patterns((1, -1), repeat=len(x)))
    return hits / 2 ** len(x)


def test_permutation_matches_brute_force_and_ci_inverts_it():
    import numpy as np

    from rys.probes.stats import SignFlip, permutation_interval

    rng = np.random.default_rng(3)
    for trial in range(12):
        n = int(rng.integers(3, 10))
        diffs = list(np.round(rng.normal(0.3 * (trial % 3), 1.0, n), 2))
        test = SignFlip.of(diffs)
        low, high = permutation_interval(diffs, alpha=0.1)
        assert test.p(0.0) == pytest.approx(_brute_p(diffs, 0.0))
        # inside the interval the brute-force test does not reject at 0.1; outside it does
        span = (high if high is not None else 5) - (low if low is not None else -5)
        for d in np.linspace((low or -5) - span, (high or 5) + span, 41):
            inside = (low is None or d >= low - 1e-9) and (high is None or d <= high + 1e-9)
            near_end = any(e is not None and abs(d - e) < 1e-6 for e in (low, high))
            if not near_end:
                assert inside == (_brute_p(diffs, d) >= 0.1), (diffs, d, low, high)


def test_ci_and_significance_agree_monte_carlo():
    import numpy as np

    rng = np.random.default_rng(5)
    for trial in range(40):
        a = items(rng.uniform(0, 1, 30))
        b = items(np.clip(np.array([x.score for x in a]) + rng.normal(0.08, 0.25, 30), 0, 1))
        d = paired_delta(a, b)
        excludes_zero = d.ci_low > 0 or d.ci_high < 0
        assert excludes_zero == d.significant
        assert d.ci_low < d.delta < d.ci_high


def test_interval_unbounded_below_the_permutation_floor():
    from rys.probes.stats import permutation_interval

    # 3 items: the smallest exact p is 2/8; at alpha 0.1 nothing can be rejected
    assert permutation_interval([1.0, 2.0, 3.0], alpha=0.1) == (None, None)
    # at alpha 0.3 the all-same-sign patterns (p = 0.25 at 0) reject 0: the interval excludes it
    low, high = permutation_interval([1.0, 2.0, 3.0], alpha=0.3)
    assert low > 0 and high is not None and high > 2.0 > low
