"""`choice`: the answer is one of a few labels (letters, Yes/No, digits), read from the next-token
distribution. `choice-gen`: the same items answered by greedy generation and an answer extractor.

Requests: client.token_logprobs for the option tokens: one top-k next-token call, plus a forced
one-token evaluation for each option token outside the top k (so coverage is the true
full-vocabulary mass on the options, without asking for 262k logprobs).
"""

from __future__ import annotations

import math
import re
import threading
import weakref
from collections import Counter, defaultdict

from rys.probes.scorers.base import Scorer, build_prompt, result
from rys.probes.sets import ProbeError

# Ways a label shows up as the first answer token: "A", " A", "(A", " (A".
VARIANT_FORMS = ("{}", " {}", "({}", " ({}")


def variant_strings(label: str) -> list[str]:
    """Surface forms merged into one option. Words also merge case (Yes/yes/YES); single letters do
    not, because a lower-case "a" is usually the article, not the option."""
    spellings = {label} if len(label) == 1 else {label, label.lower(), label.capitalize(), label.upper()}
    return sorted({form.format(s) for s in spellings for form in VARIANT_FORMS})


def logsumexp(values) -> float:
    values = [v for v in values if v != -math.inf]
    if not values:
        return -math.inf
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def choice_outcome(label_logprobs: dict[str, list[float]], gold: str) -> dict:
    """Pure math on the log-probabilities of every variant token of every option.

    p_correct: the gold option's mass renormalized over the options; log_odds: log mass(gold) minus
    log mass(best wrong option), so > 0 exactly when the gold option wins; coverage: full-vocabulary
    mass on all option tokens.
    """
    mass = {label: logsumexp(lps) for label, lps in label_logprobs.items()}
    total = logsumexp(mass.values())
    best_wrong = max(v for label, v in mass.items() if label != gold)
    top = max(mass.values())
    leaders = [label for label, v in mass.items() if v == top]
    # a tie picks no option: prediction None, so "prediction == gold" and "correct" always agree
    prediction = leaders[0] if len(leaders) == 1 and top != -math.inf else None
    p_correct = math.exp(mass[gold] - total) if total != -math.inf else 0.0
    log_odds = mass[gold] - best_wrong if mass[gold] != -math.inf else -math.inf
    detail = {"log_odds": log_odds}
    if len(leaders) > 1:
        detail["tied"] = leaders
    return {"score": p_correct, "p_correct": p_correct, "correct": log_odds > 0,
            "prediction": prediction, "coverage": math.exp(total) if total != -math.inf else 0.0,
            "detail": detail}


def choice_chance(items) -> float:
    return sum(1 / len(item.options) for item in items) / len(items)


def choice_constant(items) -> tuple[float, str]:
    """The best constant policy: for each option set, always the label that is most often gold."""
    by_options: dict[tuple, Counter] = defaultdict(Counter)
    for item in items:
        by_options[item.options][item.answer] += 1
    picks = [counts.most_common(1)[0] for counts in by_options.values()]
    return sum(n for _, n in picks) / len(items), "/".join(label for label, _ in picks)


_token_tables: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_token_tables_lock = threading.Lock()  # client.map scores items from several threads


def option_token_ids(client, labels: tuple[str, ...]) -> dict[str, list[int]]:
    """label -> the single-token ids of its variants, for this client's tokenizer (cached per client).

    A variant that tokenizes to several tokens is left out (its first token, e.g. "(", is shared by
    every option); a token claimed by two labels is dropped as ambiguous.
    """
    with _token_tables_lock:
        cache = _token_tables.setdefault(client, {})
        if labels not in cache:
            cache[labels] = _build_token_table(client, labels)
        return cache[labels]


def _build_token_table(client, labels: tuple[str, ...]) -> dict[str, list[int]]:
    ids: dict[str, set[int]] = {}
    for label in labels:
        ids[label] = set()
        for text in variant_strings(label):
            tokens = client.tokenize(text, add_special=False)
            if len(tokens) == 1:
                ids[label].add(tokens[0])
    claimed = Counter(t for toks in ids.values() for t in toks)
    table = {label: sorted(t for t in toks if claimed[t] == 1) for label, toks in ids.items()}
    for label, toks in table.items():
        if not toks:
            raise ProbeError(f"option {label!r} is not a single token in this model's vocabulary",
                             "use short option labels (letters, digits, Yes/No) for logprob scoring, "
                             "or the choice-gen scorer")
    return table


def option_logprobs(client, prompt: str, labels: tuple[str, ...]) -> dict[str, list[float]]:
    """Exact log-probabilities of every option variant token as the next token after `prompt`: one
    top-k request, plus one forced one-token evaluation per variant outside the top k."""
    table = option_token_ids(client, labels)
    exact = client.token_logprobs(prompt, [t for toks in table.values() for t in toks])
    return {label: [exact[t] for t in toks] for label, toks in table.items()}


class ChoiceScorer(Scorer):
    name = "choice"

    def check_item(self, item):
        if not item.options:
            return "a choice item needs 'options' (the answer labels)"
        if len(set(item.options)) != len(item.options):
            return f"options repeat a label: {list(item.options)}"
        if item.answer not in item.options:
            return f"answer {item.answer!r} is not one of the options {list(item.options)}"
        return None

    def score_item(self, client, probe, item):
        logprobs = option_logprobs(client, build_prompt(client, probe, item), item.options)
        return result(item, **choice_outcome(logprobs, item.answer))

    def chance(self, items):
        return choice_chance(items)

    def constant(self, items):
        return choice_constant(items)


# Explicit answer statements, in the forms models use: "Answer: B", "the answer is (B)",
# "**Final Answer: (B)**", "Answer - B.". Markdown emphasis is removed first.
_ANSWER_MARKER = r"answer\s*(?:is|:|-|=)?\s*:?\s*"


def extract_choice(text: str, labels) -> str | None:
    """The option a generated answer picks, or None when it does not clearly pick one.

    In order: the last explicit "answer ... X"; a reply that starts with the label ("B", "(B)",
    "B. ..."); a single distinct label in parentheses anywhere. Letters match case-sensitively and
    as whole tokens, so the article "A" in "A dog" or the "I" in "I think" is never read as an option.
    """
    clean = re.sub(r"[*_`]+", "", text).strip()
    alternatives = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
    flags = 0 if all(len(label) == 1 for label in labels) else re.IGNORECASE

    def canonical(found: str) -> str:
        return next(label for label in labels if label.lower() == found.lower())

    pattern = re.compile(rf"(?i:{_ANSWER_MARKER})\(?\s*({alternatives})\s*\)?(?![\w])", flags)
    hits = pattern.findall(clean)
    if hits:
        return canonical(hits[-1])
    lead = re.match(rf"\(?\s*({alternatives})\s*(?:\)|[.:,!]|$|\s)", clean, flags)
    # "A" and "I" are also English words: "A dog..." starts a sentence, not an answer.
    if lead and not (lead.group(1) in ("A", "I") and re.match(r"[AI]\s+[a-z]", clean)):
        return canonical(lead.group(1))
    paren = {canonical(m) for m in re.findall(rf"\(\s*({alternatives})\s*\)", clean, flags)}
    return paren.pop() if len(paren) == 1 else None


def choice_gen_outcome(answer: str, labels, gold: str) -> dict:
    prediction = extract_choice(answer, labels)
    correct = prediction == gold
    return {"score": float(correct), "p_correct": None, "correct": correct, "prediction": prediction,
            "coverage": 0.0 if prediction is None else 1.0, "detail": {"text": answer}}


class ChoiceGenScorer(ChoiceScorer):
    name = "choice-gen"
    generates = True

    def score_item(self, client, probe, item):
        generation = client.generate(build_prompt(client, probe, item), max_tokens=probe.max_tokens)
        return result(item, **choice_gen_outcome(generation.answer, item.options, item.answer))
