"""Statistics against hand-computed values."""

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
    assert d.delta == 1.0 and (d.ci_low, d.ci_high) == (1.0, 1.0)
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
