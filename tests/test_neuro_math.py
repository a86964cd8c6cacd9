"""Pure neuro math against hand-computed values: lens metrics, interactions, block influence, labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rys.neuro import NeuroError, circuit, hidden, labels, lens_math


def lp(*probs):
    with np.errstate(divide="ignore"):
        return np.log(np.array(probs, dtype=float))


def test_entropy_bits_by_hand():
    assert lens_math.entropy_bits(lp(0.5, 0.5)) == pytest.approx(1.0)
    assert lens_math.entropy_bits(lp(0.25, 0.25, 0.25, 0.25)) == pytest.approx(2.0)
    # -(0.5 log2 0.5 + 2 * 0.25 log2 0.25) = 0.5 + 1 = 1.5; the zero-mass token adds nothing
    assert lens_math.entropy_bits(lp(0.5, 0.25, 0.25, 0.0)) == pytest.approx(1.5)


def test_kl_bits_by_hand():
    p, q = lp(0.5, 0.5), lp(0.25, 0.75)
    # 0.5 log2(0.5/0.25) + 0.5 log2(0.5/0.75) = 0.5 - 0.5 * 0.5849625 = 0.2075187
    assert lens_math.kl_bits(p, q) == pytest.approx(0.5 + 0.5 * math.log2(2 / 3))
    assert lens_math.kl_bits(p, q) == pytest.approx(0.20751874963942196)
    assert lens_math.kl_bits(p, p) == 0.0
    assert lens_math.kl_bits(lp(1.0, 0.0), lp(0.5, 0.5)) == pytest.approx(1.0)
    assert lens_math.kl_bits(lp(0.5, 0.5), lp(1.0, 0.0)) == math.inf


def test_normalize_fixes_rounded_server_values():
    raw = lp(0.5, 0.3, 0.2) + 1e-4  # the server's values sum to slightly more than 1
    assert np.exp(lens_math.normalize(raw)).sum() == pytest.approx(1.0, abs=1e-12)
    assert np.exp(lens_math.normalize(raw)) == pytest.approx([0.5, 0.3, 0.2])


def test_rank_counts_strictly_more_probable_tokens():
    d = lp(0.1, 0.4, 0.4, 0.1)
    assert lens_math.rank_of(d, 1) == 1  # a tie with token 2 does not push it down
    assert lens_math.rank_of(d, 0) == 3
    assert lens_math.top_k(d, 3) == [(1, pytest.approx(0.4)), (2, pytest.approx(0.4)), (0, pytest.approx(0.1))]


def test_copy_collapse_needs_prompt_token_high_p_and_margin():
    assert lens_math.copy_collapse(lp(0.96, 0.04), prompt_ids=[0, 7])
    assert not lens_math.copy_collapse(lp(0.96, 0.04), prompt_ids=[1])  # top-1 not in the prompt
    assert not lens_math.copy_collapse(lp(0.94, 0.06), prompt_ids=[0])  # p1 not above 0.95


def test_layer_stats_and_summary_layers():
    final = lp(0.1, 0.8, 0.1)
    layers = [
        lens_math.layer_stats(0, lp(0.97, 0.02, 0.01), final, prompt_ids=[0], answer=1),
        lens_math.layer_stats(1, lp(0.5, 0.3, 0.2), final, prompt_ids=[0], answer=1),
        lens_math.layer_stats(2, lp(0.1, 0.8, 0.1), final, prompt_ids=[0], answer=1),
    ]
    assert layers[0].copy_collapse and not layers[1].copy_collapse
    assert [s.answer_rank for s in layers] == [2, 2, 1]
    assert layers[2].kl_bits == 0.0 and layers[2].semantic_collapse
    assert layers[1].answer_prob == pytest.approx(0.3)
    h = -(0.5 * math.log2(0.5) + 0.3 * math.log2(0.3) + 0.2 * math.log2(0.2))
    assert layers[1].entropy_bits == pytest.approx(h)
    # KL(layer 1 || final) = 0.5 log2 5 + 0.3 log2 0.375 + 0.2 log2 2 = 0.6549 (below 1 bit, not 0.5)
    assert layers[1].kl_bits == pytest.approx(0.5 * math.log2(5) + 0.3 * math.log2(0.375) + 0.2)
    summary = lens_math.summary_layers(layers)
    assert summary == {"first_rank_le_1": 2, "first_rank_le_5": 0, "first_rank_le_10": 0,
                       "first_kl_below_0.5": 2, "first_kl_below_1.0": 1,
                       "copy_collapse": 0, "semantic_collapse": 2}

    from rys.neuro.lens import _positive_from

    # the control answer must win from a layer to the end: a tiny positive blip early is not it
    assert _positive_from(layers, [4e-11, -1e-12, 0.3]) == 2
    assert _positive_from(layers, [0.1, 0.2, 0.3]) == 0 and _positive_from(layers, [0.1, 0.2, -0.1]) is None


def test_interaction_arithmetic_and_classes():
    assert circuit.interaction(0.30, 0.10, 0.05) == pytest.approx(0.15)
    significant = {"p": 0.001, "p_adjusted": 0.01}
    pair = circuit.Pair(3, 7, delta_a=0.10, delta_b=0.05, delta_ab=0.30, **significant)
    assert pair.kind == "synergistic"
    assert circuit.Pair(3, 7, 0.10, 0.05, 0.08, **significant).kind == "redundant"  # 0.08 - 0.15 = -0.07
    assert circuit.Pair(3, 7, 0.10, 0.05, 0.17, **significant).kind == "independent"  # +0.02
    assert circuit.classify(0.05) == "independent"  # the threshold itself is not enough
    # a large interaction the items cannot tell from chance is no class
    assert circuit.Pair(3, 7, 0.10, 0.05, 0.30, p=0.01, p_adjusted=0.2).kind == "independent"
    assert circuit.Pair(3, 7, 0.10, 0.05, 0.30).kind == "independent"  # untested


def test_pair_interaction_test_by_hand():
    """Per item: score(a) + score(b) - score(a,b) - baseline; 8 items all +0.3: exact sign-flip p = 2/256."""
    from rys.neuro.ablate import SkipScores
    from rys.probes.results import ItemResult, ProbeResult

    def result(scores):
        items = [ItemResult(id=f"i{k}", category="all", score=v, correct=v > 0.5) for k, v in enumerate(scores)]
        m = sum(scores) / len(scores)
        return ProbeResult("toy", "sha", "choice", len(items), m, m, None, m, m, None, None, None, [], {}, items)

    base, one = result([0.9] * 8), result([0.8] * 8)  # each single skip costs 0.1
    both = result([0.4] * 8)  # skipping both costs 0.5: interaction +0.3 on every item
    noisy = result([0.4, 1.0] * 4)  # +0.3, -0.3, ...: mean 0
    scores = SkipScores("m", "toy", "sha", 4, base, {(0,): one, (1,): one, (2,): one, (0, 1): both, (0, 2): noisy})
    assert circuit.item_interactions(scores, 0, 1).tolist() == pytest.approx([0.3] * 8)
    tested = circuit.test_pairs(scores, [circuit.Pair(0, 1, 0.1, 0.1, 0.5), circuit.Pair(0, 2, 0.1, 0.1, 0.2)])
    assert tested[0].p == pytest.approx(2 / 256) and tested[1].p == pytest.approx(1.0)
    # BH over two pairs: 2/256 * 2 / 1 = 1/64
    assert tested[0].p_adjusted == pytest.approx(1 / 64) and tested[0].kind == "synergistic"
    # with 6 items the best p is 2/64, adjusted 1/16: no longer significant, so no class
    six = SkipScores("m", "toy", "sha", 4, result([0.9] * 6), {(0,): result([0.8] * 6), (1,): result([0.8] * 6),
                                                              (0, 1): result([0.4] * 6), (2,): result([0.8] * 6),
                                                              (0, 2): result([0.4, 1.0] * 3)})
    weak = circuit.test_pairs(six, [circuit.Pair(0, 1, 0.1, 0.1, 0.5), circuit.Pair(0, 2, 0.1, 0.1, 0.2)])
    assert weak[0].p_adjusted == pytest.approx(1 / 16) and weak[0].kind == "independent"
    assert tested[1].kind == "independent"


def test_candidate_pairs_by_strategy():
    importance = {layer: float(layer % 5) for layer in range(10)}  # layers 4, 9 best, then 3, 8, ...
    assert circuit.candidate_pairs(importance, "fast")[:3] == [(2, 3), (2, 4), (2, 7)]
    assert len(circuit.candidate_pairs(importance, "fast")) == 15
    assert set(sum(circuit.candidate_pairs(importance, "fast"), ())) == {2, 3, 4, 7, 8, 9}
    assert len(circuit.candidate_pairs(importance, "exhaustive")) == 45
    with pytest.raises(NeuroError, match="strategy"):
        circuit.candidate_pairs(importance, "quick")


def test_block_influence_by_hand():
    gain = np.array([2.0, 0.5])
    # two tokens; normed = direction * gain, so dividing the gain out must recover the directions
    dirs = [np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([[0.0, 1.0], [0.0, 1.0]])]
    states = [hidden.remove_gain(d * gain, gain) for d in dirs]
    # layer 0: cos = (1/sqrt2 + 0)/2; layer 1: cos = (1/sqrt2 + 1)/2
    assert hidden.block_influence(states[0], states[1]) == pytest.approx(1 - 0.5 / math.sqrt(2))
    assert hidden.block_influence(states[1], states[2]) == pytest.approx(1 - (1 / math.sqrt(2) + 1) / 2)
    assert hidden.mean_cosine(states[0], states[2]) == 0.0
    assert hidden.block_influence(states[2], states[2] * 3.0) == pytest.approx(0.0)  # scale-free


def test_remove_gain_zero_channel():
    assert hidden.remove_gain(np.array([[4.0, 3.0]]), np.array([2.0, 0.0])).tolist() == [[2.0, 0.0]]


def test_labels_follow_the_rules():
    n = 20
    importance = [0.0] * n
    significant = [False] * n
    for layer, value in ((8, 0.3), (15, 0.2), (5, 0.1), (1, 0.5), (12, 0.2)):
        importance[layer], significant[layer] = value, True
    importance[10] = 0.4  # large, but not significant: labelled by position only
    importance[16], significant[16] = -0.3, True  # skipping it helps: no functional label either
    got = labels.label_layers(importance, significant, emergence=12)
    names = [x.label for x in got]
    assert names[:3] == ["early", "early", "early"]  # depth (2 + 0.5) / 20 = 0.125 < 0.15; layer 1 stays early
    assert names[8] == "reasoning" and names[5] == "reasoning" and names[10] == "middle"
    assert names[12] == "semantic" and names[15] == "semantic" and names[16] == "middle"
    assert names[18:] == ["output", "output"]  # depth 0.925 > 0.90
    assert [x.layer for x in got if x.by_effect] == [5, 8, 12, 15]
    assert set(names) <= set(labels.LABELS)
    # never emerging: a significant middle layer is reasoning
    assert "semantic" not in [x.label for x in labels.label_layers(importance, significant, emergence=None)]


def test_no_significant_effect_labels_no_layer_by_effect():
    importance = [0.0, 0.5, 0.9, 0.7, 0.3, 0.2, 0.8, 0.1, 0.6, 0.4]
    got = labels.label_layers(importance, [False] * 10, emergence=5)
    assert not any(x.by_effect for x in got) and {x.label for x in got} == {"early", "middle", "output"}


def test_cross_probe_correlation_and_shared_layers():
    from rys.neuro import crossprobe

    a, b, c = [0.0, 0.2, 0.4, 0.0], [0.0, 0.1, 0.2, 0.0], [0.3, 0.0, 0.0, 0.0]
    corr = crossprobe.correlation([a, b, c])
    assert corr[0][1] == pytest.approx(1.0) and corr[0][0] == pytest.approx(1.0)
    # centred a = [-.15, .05, .25, -.15], c = [.225, -.075, -.075, -.075]: -0.045 / sqrt(0.11 * 0.0675)
    assert corr[0][2] == pytest.approx(-0.52223, abs=1e-5)
    assert crossprobe.correlation([a, [0.1] * 4])[0][1] is None
    sig_a, sig_b, sig_c = [False, True, True, False], [False, False, True, False], [True, False, False, False]
    got = crossprobe.shared_and_specific(["a", "b", "c"], [a, b, c], [sig_a, sig_b, sig_c])
    assert got == {"shared": [], "specific": {"a": [1], "b": [], "c": [0]}}  # a and b share layer 2
    assert crossprobe.shared_and_specific(["a", "b"], [a, b], [sig_a, sig_b]) == {"shared": [2],
                                                                                "specific": {"a": [1], "b": []}}
    # nothing significant: nothing is important, however large the deltas
    assert crossprobe.shared_and_specific(["a", "b"], [a, b], [[False] * 4] * 2)["shared"] == []


def test_in_order_keeps_order_and_stops_at_a_failure():
    import time

    from rys.neuro.pipeline import in_order

    started = []

    def job(x):
        started.append(x)
        time.sleep(0.05 if x == 0 else 0.0)  # the first job finishes last: results still come in order
        if x == 3:
            raise ValueError("boom")
        return x * 10

    assert list(in_order(job, [0, 1, 2], workers=2)) == [(0, 0), (1, 10), (2, 20)]
    started.clear()
    with pytest.raises(ValueError, match="boom"):
        list(in_order(job, range(3, 40), workers=1))
    assert started[0] == 3 and len(started) <= 2  # at most the job a free worker took meanwhile


def test_share_cores_gives_each_server_in_flight_its_share(monkeypatch):
    import os

    from rys.neuro.pipeline import share_cores

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert share_cores(["-ngl", "0"], 2) == ["-ngl", "0", "--threads", "2"]
    assert share_cores([], 1) == []  # one server: llama-server's own default
    assert share_cores(["-t", "3"], 2) == ["-t", "3"]  # the user's choice wins
    assert share_cores(["--threads=3"], 2) == ["--threads=3"]
    assert share_cores(["-t=3"], 2) == ["-t=3"]
    assert share_cores([], 8) == ["--threads", "1"]
