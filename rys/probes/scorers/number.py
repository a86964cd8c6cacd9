"""`number`: short greedy generation, scored with Ng's hard-math partial credit.

`number` scores the answer the reply gives: its first integer that is not echoed from the question
(thinking text already stripped by the client), the same one `correct` and `prediction` read, so
"0 1 2 3 4 5 56088" earns the credit of 0, not of 56088: a list of guesses is not an answer.
`number-best` is Ng's original rule, kept as an explicit choice for comparisons with the peers: the
best over every integer in the reply (still never an integer echoed from the question, so
"123 * 456 = ..." earns nothing for 123).
"""

from __future__ import annotations

import re

from rys.probes.scorers.base import Scorer, build_prompt, result

# "1,234,567" is one number; "3, 4" are two.
_INTEGER = re.compile(r"(?<![\d.])-?\d{1,3}(?:,\d{3})+(?!\d)|-?\d+")


def integers(text: str) -> list[int]:
    return [int(m.replace(",", "")) for m in _INTEGER.findall(text)]


def ng_score(answer: int, expected: int) -> float:
    """Right-pad the shorter number with zeros to the longer length L (pad = zeros added), then
    clamp((1 - |a - e| / max(a, e)) * (1 - pad / L), 0, 1). A wrong sign scores 0."""
    if answer == expected:
        return 1.0
    if (answer < 0) != (expected < 0):
        return 0.0
    a, e = str(abs(answer)), str(abs(expected))
    width = max(len(a), len(e))
    pad = width - min(len(a), len(e))
    a_pad, e_pad = int(a.ljust(width, "0")), int(e.ljust(width, "0"))
    closeness = 1 - abs(a_pad - e_pad) / max(a_pad, e_pad)
    return min(1.0, max(0.0, closeness * (1 - pad / width)))


def number_outcome(answer: str, question: str, expected: int, best_of_all: bool = False) -> dict:
    """Score of the reply's answer (its first non-echoed integer), or with best_of_all the best over
    all its non-echoed integers (Ng's rule)."""
    echoed = set(integers(question))
    candidates = [n for n in integers(answer) if n not in echoed]
    prediction = candidates[0] if candidates else None
    if best_of_all:
        score = max((ng_score(n, expected) for n in candidates), default=0.0)
    else:
        score = 0.0 if prediction is None else ng_score(prediction, expected)
    return {"score": score, "p_correct": None, "correct": prediction == expected,
            "prediction": None if prediction is None else str(prediction),
            "coverage": 1.0 if candidates else 0.0,
            "detail": {"text": answer, "integers": len(set(candidates))}}


def cross_scores(items, score):
    """score(gold of item j as the answer, item i) for every pair: the chance and constant baselines
    of generation scorers (a well-formed answer that belongs to another question)."""
    return [[score(other.answer, item) for item in items] for other in items]


def cross_chance(table) -> float | None:
    n = len(table)
    if n < 2:
        return None
    return sum(table[j][i] for j in range(n) for i in range(n) if i != j) / (n * (n - 1))


def cross_constant(items, table) -> tuple[float, str]:
    j = max(range(len(items)), key=lambda k: sum(table[k]))
    return sum(table[j]) / len(items), str(items[j].answer)


class NumberScorer(Scorer):
    name = "number"
    generates = True
    best_of_all = False

    def check_item(self, item):
        if isinstance(item.answer, bool) or not isinstance(item.answer, int):
            return f"the answer must be an integer, got {item.answer!r}"
        if item.answer in integers(item.prompt):
            return "the answer appears in the question, so an echo could not be told from an answer"
        return None

    def score_item(self, client, probe, item):
        generation = client.generate(build_prompt(client, probe, item), max_tokens=probe.max_tokens)
        return result(item, **number_outcome(generation.answer, item.prompt, item.answer, self.best_of_all))

    def _table(self, items):
        return cross_scores(items, lambda answer, item: ng_score(answer, item.answer))

    def chance(self, items):
        return cross_chance(self._table(items))

    def constant(self, items):
        return cross_constant(items, self._table(items))


class NumberBestScorer(NumberScorer):
    """Ng's rule: the best partial credit over every integer in the reply."""

    name = "number-best"
    best_of_all = True
