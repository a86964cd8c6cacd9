"""Tuned-lens math without a server: KL, the gradient, least squares, the lens file, the prompt split."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.special import log_softmax as scipy_log_softmax
from scipy.stats import entropy

from rys.neuro import NeuroError
from rys.neuro.calibrate import split_prompts
from rys.neuro.head import Head, log_softmax
from rys.neuro.tuned import (
    LensMismatch,
    Translator,
    TunedLens,
    final_logprobs,
    fit_layer,
    kl_gradient,
    kl_rows_bits,
    least_squares,
    lens_logprobs,
    load_lens,
    mean_kl,
    save_lens,
)

RNG = np.random.default_rng(7)


def _head(softcap=None, d=8, v=40) -> Head:
    return Head(RNG.normal(size=(v, d)).astype(np.float32), (1 + 0.2 * RNG.normal(size=d)).astype(np.float32), 1e-5,
                softcap)


def test_kl_matches_scipy_and_log_softmax_matches_scipy():
    z = RNG.normal(size=(3, 11))
    assert np.allclose(log_softmax(z), scipy_log_softmax(z, axis=-1))
    p, q = scipy_log_softmax(RNG.normal(size=(3, 11)), axis=-1), scipy_log_softmax(RNG.normal(size=(3, 11)), axis=-1)
    expected = [entropy(np.exp(a), np.exp(b), base=2) for a, b in zip(p, q)]
    assert np.allclose(kl_rows_bits(p, q), expected)


def test_identity_translator_is_the_logit_lens():
    """A = I, b = 0: RMSNorm(u) x gain through the head, written out by hand."""
    head = _head()
    u = RNG.normal(size=(5, 8)).astype(np.float32)
    by_hand = (u / np.sqrt((u ** 2).mean(axis=1, keepdims=True) + head.eps)) * head.gain @ head.weight.T
    got = lens_logprobs(head, u, Translator.identity(8))
    assert np.allclose(got, scipy_log_softmax(by_hand, axis=-1), atol=1e-5)
    assert np.allclose(got, lens_logprobs(head, u), atol=1e-6)


@pytest.mark.parametrize("softcap", [None, 3.0])
def test_gradient_matches_finite_differences(softcap):
    head = _head(softcap)
    u = RNG.normal(size=(20, 8)).astype(np.float32)
    final = final_logprobs(head, RNG.normal(size=(20, 8)).astype(np.float32))
    tr = Translator((np.eye(8) + 0.1 * RNG.normal(size=(8, 8))).astype(np.float32),
                    (0.1 * RNG.normal(size=8)).astype(np.float32))
    kl, gw, gb = kl_gradient(head, u, final, tr)
    assert kl == pytest.approx(mean_kl(head, u, final, tr), rel=1e-5)
    h = 1e-2
    for i, j in [(0, 1), (3, 3), (7, 2)]:
        up, down = copy.deepcopy(tr), copy.deepcopy(tr)
        up.weight[i, j] += h
        down.weight[i, j] -= h
        numeric = (mean_kl(head, u, final, up) - mean_kl(head, u, final, down)) / (2 * h)
        assert gw[i, j] == pytest.approx(numeric, abs=2e-3, rel=2e-2)
    up, down = copy.deepcopy(tr), copy.deepcopy(tr)
    up.bias[4] += h
    down.bias[4] -= h
    assert gb[4] == pytest.approx((mean_kl(head, u, final, up) - mean_kl(head, u, final, down)) / (2 * h), abs=2e-3,
                                  rel=2e-2)


def test_least_squares_without_ridge_is_lstsq():
    u = RNG.normal(size=(50, 6))
    target = u @ RNG.normal(size=(6, 6)) + RNG.normal(size=6) + 0.01 * RNG.normal(size=(50, 6))
    tr = least_squares(u, target, ridge=0.0)
    coef, *_ = np.linalg.lstsq(np.hstack([u, np.ones((50, 1))]), target, rcond=None)
    assert np.allclose(tr.weight, coef[:6].T, atol=1e-4) and np.allclose(tr.bias, coef[6], atol=1e-4)


def test_fit_recovers_a_known_translator_and_never_loses_to_the_identity():
    """States that are a known affine map of the final ones: the fit must get far below the identity."""
    head = _head(d=8, v=60)
    final_u = RNG.normal(size=(300, 8)).astype(np.float32)
    mix = (np.eye(8) + 0.5 * RNG.normal(size=(8, 8))).astype(np.float32)
    u = np.linalg.solve(mix, (final_u - 0.3).T).T.astype(np.float32)  # mix @ u + 0.3 = final_u
    log = final_logprobs(head, final_u)
    fit = fit_layer(0, head, u[:200], final_u[:200], log[:100], u[200:], log[200:], ridges=(1e-6,), adam_steps=3)
    assert fit.selection_kl < 0.01 * fit.identity_selection_kl
    # nothing to learn: the identity stays
    same = fit_layer(0, head, final_u[:200], final_u[:200], log[:100], final_u[200:], log[200:], adam_steps=2)
    assert same.selection_kl <= same.identity_selection_kl


def test_lens_file_round_trip_and_refusals(tmp_path):
    tr = Translator(RNG.normal(size=(4, 4)).astype(np.float32), RNG.normal(size=4).astype(np.float32))
    lens = TunedLens("ab" * 32, "toy.gguf", 3, 4, {1: tr}, {"held_out": {"layers": [0, 1, 2]}})
    path = save_lens(lens, tmp_path / "lens.safetensors")
    back = load_lens(path)
    assert np.array_equal(back.translator(1).weight, tr.weight) and np.array_equal(back.translator(1).bias, tr.bias)
    assert back.translator(0).is_identity and back.info == lens.info and back.model_sha256 == "ab" * 32
    with pytest.raises(LensMismatch, match="another model"):
        back.check_model(tmp_path / "lens.safetensors", sha256="cd" * 32)
    (tmp_path / "junk.safetensors").write_bytes(b"not a lens")
    with pytest.raises(NeuroError, match="not a tuned lens"):
        load_lens(tmp_path / "junk.safetensors")
    with pytest.raises(NeuroError, match="not found"):
        load_lens(tmp_path / "missing.safetensors")


def test_split_is_disjoint_and_covers_every_prompt():
    split = split_prompts(12, 0.25, seed=3)
    parts = [set(v) for v in split.values()]
    assert sum(len(p) for p in parts) == 12 and set.union(*parts) == set(range(12))
    assert len(split["held_out"]) == 3 and all(split.values())
    with pytest.raises(NeuroError, match="at least 4 prompts"):
        split_prompts(3, 0.25, 0)
