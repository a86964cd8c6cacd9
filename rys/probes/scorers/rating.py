"""`rating`: a digit rating 0-9 read from the next-token distribution (the layer-scan probe format).

E = sum k * p_k over the digits renormalized, as layer-scan computes it; but the score is closeness of
E to the expected rating (1 - |E - expected| / 9), never E itself, so a probe rewards being right.
"""

from __future__ import annotations

import math

from rys.probes.scorers.base import Scorer, build_prompt, result
from rys.probes.scorers.choice import logsumexp, option_logprobs

DIGITS = tuple(str(d) for d in range(10))


def rating_outcome(digit_logprobs: dict[str, list[float]], expected: float) -> dict:
    mass = [logsumexp(digit_logprobs[d]) for d in DIGITS]
    total = logsumexp(mass)
    probs = [math.exp(m - total) for m in mass]
    mean = sum(k * p for k, p in enumerate(probs))
    var = sum((k - mean) ** 2 * p for k, p in enumerate(probs))
    best = max(range(10), key=lambda k: probs[k])
    target = round(expected)
    return {"score": 1 - abs(mean - expected) / 9, "p_correct": probs[target], "correct": best == target,
            "prediction": str(best), "coverage": math.exp(total),
            "detail": {"expectation": mean, "variance": var, "error": mean - expected}}


def rating_score(constant: float, expected: float) -> float:
    return 1 - abs(constant - expected) / 9


class RatingScorer(Scorer):
    name = "rating"

    def check_item(self, item):
        if isinstance(item.answer, bool) or not isinstance(item.answer, (int, float)) or not 0 <= item.answer <= 9:
            return f"the answer must be a rating from 0 to 9, got {item.answer!r}"
        return None

    def score_item(self, client, probe, item):
        logprobs = option_logprobs(client, build_prompt(client, probe, item), DIGITS)
        return result(item, **rating_outcome(logprobs, item.answer))

    def chance(self, items):
        # uniform over the digits: E = 4.5
        return sum(rating_score(4.5, item.answer) for item in items) / len(items)

    def constant(self, items):
        best = max(range(10), key=lambda c: sum(rating_score(c, item.answer) for item in items))
        return sum(rating_score(best, item.answer) for item in items) / len(items), str(best)
