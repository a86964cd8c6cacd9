"""compare.py: exact McNemar, paired bootstrap and verdicts against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rys.evaluate.compare import (
    MismatchedRuns,
    bootstrap_summary,
    compare_samples,
    mcnemar_exact,
    paired_bootstrap,
)


def test_mcnemar_exact_hand_values():
    # n = 10 discordant, k = 2: 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 2 * 56 / 1024
    assert mcnemar_exact(2, 8) == pytest.approx(112 / 1024)
    assert mcnemar_exact(8, 2) == pytest.approx(112 / 1024)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(3, 3) == 1.0  # the two-sided tail sum exceeds 1 and is clipped
    assert mcnemar_exact(0, 0) == 1.0


def test_bootstrap_constant_differences_have_a_point_interval():
    low, high, p = paired_bootstrap([0, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], n_boot=500)
    assert (low, high) == (0.5, 0.5)
    assert p == pytest.approx(2 / 501)  # no resample is <= 0: the smoothed floor 2 * 1 / (R + 1)
    low, high, p = paired_bootstrap([1, 2, 3], [1, 2, 3], n_boot=500)
    assert (low, high, p) == (0.0, 0.0, 1.0)


def test_bootstrap_two_documents_matches_the_exact_resampling_distribution():
    # diffs [0, 1]: a resample mean is 0 with prob 1/4, 0.5 with 1/2, 1 with 1/4,
    # so P(mean <= 0) = 1/4 and p = 2 * 1/4 = 0.5; the 95% interval spans [0, 1].
    low, high, p = paired_bootstrap([0, 0], [0, 1], n_boot=20_000)
    assert (low, high) == (0.0, 1.0)
    assert p == pytest.approx(0.5, abs=0.02)


def test_bootstrap_summary_percentiles():
    means = np.arange(1, 1001) / 1000  # all > 0
    low, high, p = bootstrap_summary(means)
    assert low == pytest.approx(np.percentile(means, 2.5))
    assert high == pytest.approx(np.percentile(means, 97.5))
    assert p == pytest.approx(2 / 1001)


def _samples(values, metric="acc", filt="none", prompt="p"):
    return [
        {"doc_id": i, "filter": filt, "metrics": [metric], metric: v,
         "doc_hash": f"d{i}", "prompt_hash": f"{prompt}{i}", "target_hash": "t"}
        for i, v in enumerate(values)
    ]


def test_compare_binary_metric_uses_mcnemar_on_discordant_pairs():
    # 20 documents: 9 both right, 1 only A right (b), 7 only B right (c), 3 both wrong.
    a = [1] * 9 + [1] + [0] * 7 + [0] * 3
    b = [1] * 9 + [0] + [1] * 7 + [0] * 3
    result = compare_samples({"t": _samples(a)}, {"t": _samples(b)}, n_boot=2000)
    (row,) = result.rows
    assert row.test == "mcnemar" and row.n == 20
    assert row.a == pytest.approx(0.5) and row.b == pytest.approx(0.8)
    assert row.delta == pytest.approx(0.3)
    expected_p = 2 * sum(math.comb(8, k) for k in range(2)) / 2**8  # = 18/256
    assert row.p == pytest.approx(expected_p)
    assert row.ci_low <= 0.3 <= row.ci_high
    assert row.verdict == "no significant difference"  # p = 0.0703 > 0.05
    assert result.average.improvement == pytest.approx(0.3)
    assert result.average.p == pytest.approx(expected_p)


def test_compare_significant_and_lower_is_better():
    a = [0] * 12
    b = [1] * 12  # c = 12: p = 2 / 4096
    result = compare_samples({"t": _samples(a)}, {"t": _samples(b)}, n_boot=500)
    assert result.rows[0].p == pytest.approx(2 / 4096)
    assert result.rows[0].verdict == "B better"
    flipped = compare_samples({"t": _samples(a)}, {"t": _samples(b)}, {"t": {"acc": False}}, n_boot=500)
    assert flipped.rows[0].verdict == "B worse"
    assert flipped.average.improvement == pytest.approx(-1.0)


def test_compare_continuous_metric_uses_bootstrap_and_average_weights_tasks_equally():
    a1, b1 = [0.2, 0.4, 0.6, 0.8], [0.3, 0.5, 0.7, 0.9]  # +0.1 on every document
    a2, b2 = [1, 1], [0, 0]  # -1.0, binary
    result = compare_samples(
        {"cont": _samples(a1, "f1"), "bin": _samples(a2)},
        {"cont": _samples(b1, "f1"), "bin": _samples(b2)},
        n_boot=1000,
    )
    rows = {r.task: r for r in result.rows}
    assert rows["cont"].test == "bootstrap" and rows["cont"].delta == pytest.approx(0.1)
    assert rows["cont"].ci_low == pytest.approx(0.1) and rows["cont"].ci_high == pytest.approx(0.1)
    assert rows["bin"].test == "mcnemar" and rows["bin"].p == pytest.approx(2 / 4)
    assert result.average.improvement == pytest.approx((0.1 - 1.0) / 2)
    # every replicate of the average is (0.1 + -1.0) / 2 exactly: a point interval
    assert result.average.ci_low == pytest.approx(-0.45) and result.average.ci_high == pytest.approx(-0.45)


def test_non_numeric_metrics_are_skipped_with_a_reason():
    a = [{**s, "metrics": ["acc", "bleu"], "bleu": ["ref", "pred"]} for s in _samples([1, 0])]
    result = compare_samples({"t": a}, {"t": a}, n_boot=100)
    assert [r.metric for r in result.rows] == ["acc"]
    assert result.skipped and result.skipped[0].startswith("t/bleu")


def test_refuses_different_documents_prompts_and_tasks():
    with pytest.raises(MismatchedRuns, match="different documents"):
        compare_samples({"t": _samples([1, 0, 1])}, {"t": _samples([1, 0])})
    changed = _samples([1, 0])
    changed[1]["doc_hash"] = "other"
    with pytest.raises(MismatchedRuns, match="document text differs"):
        compare_samples({"t": _samples([1, 0])}, {"t": changed})
    with pytest.raises(MismatchedRuns, match="prompt differs"):
        compare_samples({"t": _samples([1, 0])}, {"t": _samples([1, 0], prompt="chat")})
    with pytest.raises(MismatchedRuns, match="different tasks"):
        compare_samples({"t": _samples([1])}, {"u": _samples([1])})
