"""Shared helpers of the generators."""

from __future__ import annotations

import random

LETTERS = "ABCDEFGH"


def balanced_positions(n: int, k: int, rng: random.Random) -> list[int]:
    """n gold positions out of k, each used equally often (up to one), in random order: a constant
    answer cannot beat chance."""
    positions = [i % k for i in range(n)]
    rng.shuffle(positions)
    return positions


def lettered(options: list[str]) -> str:
    return "\n".join(f"({LETTERS[i]}) {text}" for i, text in enumerate(options))


def probe(name: str, description: str, scorer: str, items: list[dict], chat: bool = True,
          answer_prefix: str = "", max_tokens: int = 64) -> dict:
    return {"format": "rys-probe/1", "name": name, "description": description, "scorer": scorer,
            "chat": chat, "answer_prefix": answer_prefix, "max_tokens": max_tokens, "items": items}
