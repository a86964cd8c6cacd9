"""Separate a model's thinking text from its answer (pure).

Handles three shapes: a closed block `<think>...</think>answer`; a close tag only (the chat template
opened the block inside the prompt, as Qwen3 does); an open tag only (generation ran out while thinking,
so there is no answer). The first tag family found in the text wins.
"""

from __future__ import annotations

THINK_TAGS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),  # DeepSeek-R1, Qwen3, QwQ
    ("<thinking>", "</thinking>"),
    ("<reasoning>", "</reasoning>"),
    ("[THINK]", "[/THINK]"),  # Magistral
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
    ("<seed:think>", "</seed:think>"),  # Seed-OSS
)


def split_thinking(text: str) -> tuple[str, str]:
    """(thinking, answer), both stripped; thinking is "" when the text has no thinking tags."""
    for opener, closer in THINK_TAGS:
        first_open, first_close = text.find(opener), text.find(closer)
        if first_open == -1 and first_close == -1:
            continue
        thoughts: list[str] = []
        answer: list[str] = []
        rest = text
        if first_close != -1 and (first_open == -1 or first_close < first_open):
            thoughts.append(rest[:first_close])
            rest = rest[first_close + len(closer):]
        while True:
            i = rest.find(opener)
            if i == -1:
                answer.append(rest)
                break
            answer.append(rest[:i])
            rest = rest[i + len(opener):]
            j = rest.find(closer)
            if j == -1:  # ran out of tokens while thinking
                thoughts.append(rest)
                break
            thoughts.append(rest[:j])
            rest = rest[j + len(closer):]
        return "\n\n".join(t.strip() for t in thoughts if t.strip()), "".join(answer).strip()
    return "", text.strip()
