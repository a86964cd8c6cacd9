"""Honesty checks printed next to every probe score: chance, constant answer, coverage."""

from __future__ import annotations

LOW_COVERAGE = 0.5  # below this mean coverage the model mostly does not answer in the expected format


def honesty_flags(score: float, ci_low: float, chance: float | None, constant: float | None,
                  coverage: float | None, baseline: float | None = None) -> list[str]:
    """Flags for one probe result.

    degenerate: one constant answer reaches the model's score (the baseline's score when comparing a
    config with a baseline), so the probe cannot tell this model from a constant;
    at-chance: the 95% CI of the score reaches down to the chance score;
    low-coverage: the model puts most of its answers outside the expected format.
    """
    flags = []
    if constant is not None and constant >= (score if baseline is None else baseline):
        flags.append("degenerate")
    if chance is not None and ci_low <= chance:
        flags.append("at-chance")
    if coverage is not None and coverage < LOW_COVERAGE:
        flags.append("low-coverage")
    return flags
