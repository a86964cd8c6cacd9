"""`math` and `math-logprob`: hard arithmetic in the RYS style (large products, roots, powers).

Same items in both sets (same seed): `math` is answered by generation and scored with Ng's partial
credit, `math-logprob` scores the log-likelihood of the answer digits.
"""

from __future__ import annotations

import random

from rys.probes.generators.common import probe

INSTRUCTION = "Reply with only the number."


def _product(rng):
    a, b = rng.randint(1000, 9999), rng.randint(100, 9999)
    return f"What is {a} multiplied by {b}?", a * b


def _square_root(rng):
    root = rng.randint(101, 999)
    return f"What is the square root of {root * root}?", root


def _cube_root(rng):
    root = rng.randint(21, 99)
    return f"What is the cube root of {root ** 3}?", root


def _power(rng):
    base, exp = rng.randint(11, 39), rng.randint(3, 5)
    return f"What is {base} raised to the power of {exp}?", base ** exp


KINDS = {"product": _product, "square-root": _square_root, "cube-root": _cube_root, "power": _power}


def items(n: int, seed: int) -> list[dict]:
    rng = random.Random(f"math:{seed}")
    out = []
    for i in range(n):
        category = list(KINDS)[i % len(KINDS)]
        question, answer = KINDS[category](rng)
        out.append({"id": f"math-{i:03d}", "category": category, "prompt": f"{question} {INSTRUCTION}",
                    "answer": answer})
    return out


def generate_math(n: int, seed: int) -> dict:
    return probe("math", "Hard arithmetic (products, square and cube roots, powers) answered by greedy "
                 "generation; Ng's partial credit of the reply's answer (its first integer not echoed from the "
                 "question).", "number",
                 items(n, seed), max_tokens=24)


def generate_math_logprob(n: int, seed: int) -> dict:
    return probe("math-logprob", "The math items, scored by the log-likelihood of the answer digits "
                 "after 'The answer is' (no generation).", "continuation", items(n, seed),
                 answer_prefix="The answer is")
