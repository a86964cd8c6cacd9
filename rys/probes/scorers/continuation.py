"""`continuation`: log-likelihood of a (multi-token) gold answer after the prompt.

score = exp(mean token logprob): the per-token geometric-mean probability, so long and short answers
compare; p_correct = exp(sum): the probability of the whole answer. correct = every gold token has
p > 0.5, i.e. greedy decoding is certain to produce the answer.
"""

from __future__ import annotations

import math

from rys.probes.scorers.base import Scorer, build_prompt, result


def continuation_outcome(logprobs: list[float]) -> dict:
    total = sum(logprobs)
    return {"score": math.exp(total / len(logprobs)), "p_correct": math.exp(total),
            "correct": all(lp > math.log(0.5) for lp in logprobs), "prediction": None, "coverage": None,
            "detail": {"logprob": total, "logprob_per_token": total / len(logprobs), "tokens": len(logprobs)}}


def continuation_text(probe, item) -> str:
    # After an answer prefix like "The answer is", the answer is a new word: give it its space here
    # (a trailing space in the prompt would be tokenized on its own and skew the first token).
    prefix = probe.answer_prefix
    return (" " if prefix and not prefix[-1].isspace() else "") + str(item.answer)


class ContinuationScorer(Scorer):
    name = "continuation"

    def check_item(self, item):
        if isinstance(item.answer, (dict, list, bool)) or str(item.answer) == "":
            return f"the answer must be a non-empty string or number, got {item.answer!r}"
        return None

    def score_item(self, client, probe, item):
        logprobs = client.continuation_logprobs(build_prompt(client, probe, item), continuation_text(probe, item))
        return result(item, **continuation_outcome(list(logprobs)))
