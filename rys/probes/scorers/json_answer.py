"""`json`: instruction following checked by generation: the reply must contain a JSON object with
the required keys and values.

score = the share of required keys present with exactly the required value (0 when no object parses);
correct = all of them; coverage = a JSON object parsed at all.
"""

from __future__ import annotations

import json

from rys.probes.scorers.base import Scorer, build_prompt, result
from rys.probes.scorers.number import cross_chance, cross_constant, cross_scores


def first_json_object(text: str) -> dict | None:
    """The first JSON object in the text (code fences and prose around it are fine)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
            if isinstance(value, dict):
                return value
        except json.JSONDecodeError:
            pass
        start = text.find("{", start + 1)
    return None


def json_score(obj: dict | None, required: dict) -> float:
    if obj is None:
        return 0.0
    return sum(key in obj and obj[key] == value and type(obj[key]) is type(value)
               for key, value in required.items()) / len(required)


def json_outcome(answer: str, required: dict) -> dict:
    obj = first_json_object(answer)
    score = json_score(obj, required)
    return {"score": score, "p_correct": None, "correct": score == 1.0,
            "prediction": None if obj is None else json.dumps(obj, sort_keys=True)[:200],
            "coverage": 0.0 if obj is None else 1.0, "detail": {"text": answer}}


class JsonScorer(Scorer):
    name = "json"
    generates = True

    def check_item(self, item):
        if not isinstance(item.answer, dict) or not item.answer:
            return "the answer must be the object of required keys and values"
        return None

    def score_item(self, client, probe, item):
        generation = client.generate(build_prompt(client, probe, item), max_tokens=probe.max_tokens)
        return result(item, **json_outcome(generation.answer, item.answer))

    def _table(self, items):
        return cross_scores(items, lambda answer, item: json_score(answer, item.answer))

    def chance(self, items):
        return cross_chance(self._table(items))

    def constant(self, items):
        return cross_constant(items, self._table(items))
