"""What every scorer is: one request pattern against the server plus pure math on the answer."""

from __future__ import annotations

from rys.probes.results import ItemResult
from rys.probes.sets import ProbeItem, ProbeSet


class Scorer:
    """score_item asks the server (through a LlamaClient) and hands the answer to pure functions.

    chance() and constant() are the honesty baselines over a probe's items: the mean score of a random
    answer in the expected format, and the best mean score one fixed answer reaches (with that answer).
    None where the notion does not apply.
    """

    name = ""
    generates = False  # True when score_item generates text (not only scores the prompt)

    def check_item(self, item: ProbeItem) -> str | None:
        """What is wrong with this item for this scorer, or None."""
        raise NotImplementedError

    def score_item(self, client, probe: ProbeSet, item: ProbeItem) -> ItemResult:
        raise NotImplementedError

    def chance(self, items) -> float | None:
        return None

    def constant(self, items) -> tuple[float, str] | None:
        return None


def build_prompt(client, probe: ProbeSet, item: ProbeItem) -> str:
    """The exact text the model continues: the (chat-templated) prompt, then the answer prefix."""
    return client.format_prompt(item.prompt, chat=probe.chat) + probe.answer_prefix


def result(item: ProbeItem, **values) -> ItemResult:
    return ItemResult(id=item.id, category=item.category, **values)
