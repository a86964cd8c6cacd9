"""`eq`: four emotion ratings 0-10 by greedy generation, EQ-bench first-pass scoring.

score = conf * (1 - sum|pred - ref| / 40) + (1 - conf) * 0.5, conf = the share of the four emotions
that parsed (the error term is averaged over the parsed ones). Note the formula gives an unanswered
item 0.5: the honesty check reports that as a constant-answer baseline.
"""

from __future__ import annotations

import re

from rys.probes.scorers.base import Scorer, build_prompt, result


def parse_ratings(text: str, emotions) -> dict[str, float]:
    """emotion -> the first rating 0-10 written after its name ("Anger: 7", "anger = 7/10", "Sad - 2").

    A minus sign on the number stays part of it ("Angry: -3" is -3, outside 0-10, so not a rating),
    while a dash between name and number ("Sad - 2") is only a separator.
    """
    found = {}
    for emotion in emotions:
        match = re.search(rf"\b{re.escape(emotion)}\b\W{{0,4}}?(?<!-)(-?\d+(?:\.\d+)?)", text, re.IGNORECASE)
        if match and 0 <= float(match.group(1)) <= 10:
            found[emotion] = float(match.group(1))
    return found


def eq_score(ratings: dict[str, float], reference: dict[str, float]) -> float:
    conf = len(ratings) / len(reference)
    if not ratings:
        return 0.5
    error = sum(abs(ratings[e] - reference[e]) for e in ratings) / (10 * len(ratings))
    return conf * (1 - error) + (1 - conf) * 0.5


def eq_outcome(answer: str, reference: dict[str, float]) -> dict:
    ratings = parse_ratings(answer, reference)
    score = eq_score(ratings, reference)
    return {"score": score, "p_correct": None, "correct": score >= 0.9 and len(ratings) == len(reference),
            "prediction": ", ".join(f"{e}: {v:g}" for e, v in ratings.items()) or None,
            "coverage": len(ratings) / len(reference), "detail": {"text": answer}}


def eq_chance_item(reference: dict[str, float]) -> float:
    # uniform integer ratings 0..10 for every emotion
    error = sum(sum(abs(u - r) for u in range(11)) / 11 for r in reference.values()) / (10 * len(reference))
    return 1 - error


class EqScorer(Scorer):
    name = "eq"
    generates = True

    def check_item(self, item):
        ref = item.answer
        if not isinstance(ref, dict) or not ref or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 10 for v in ref.values()):
            return "the answer must map each emotion to a reference rating 0-10"
        return None

    def score_item(self, client, probe, item):
        generation = client.generate(build_prompt(client, probe, item), max_tokens=probe.max_tokens)
        return result(item, **eq_outcome(generation.answer, item.answer))

    def chance(self, items):
        return sum(eq_chance_item(item.answer) for item in items) / len(items)

    def constant(self, items):
        """The best of: the same rating for every emotion, and no parsable answer at all (0.5)."""
        def mean_for(c):
            return sum(eq_score({e: c for e in item.answer}, item.answer) for item in items) / len(items)
        best = max(range(11), key=mean_for)
        return max((mean_for(best), f"{best} for every emotion"), (0.5, "no answer"), key=lambda c: c[0])
