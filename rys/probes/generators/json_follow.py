"""`json`: instruction following with a checkable answer: reply with a JSON object holding the
required keys and values (strings, integers, booleans, lists of strings)."""

from __future__ import annotations

import random

from rys.probes.generators.common import probe

SUBJECTS = {
    "book": {"title": ["The Silent Harbour", "Winter Maps", "A Field of Glass", "Copper Skies"],
             "author": ["Ana Ruiz", "Lee Chen", "Omar Haddad", "Greta Lind"]},
    "city": {"city": ["Lisbon", "Nairobi", "Osaka", "Quito", "Tallinn", "Perth"],
             "country": ["Portugal", "Kenya", "Japan", "Ecuador", "Estonia", "Australia"]},
    "product": {"product": ["desk lamp", "water bottle", "backpack", "kettle", "headphones"],
                "brand": ["Norda", "Kivo", "Altum", "Brisk", "Lumo"]},
    "pet": {"name": ["Biscuit", "Pepper", "Luna", "Milo", "Olive"],
            "species": ["cat", "dog", "rabbit", "parrot", "tortoise"]},
}
NUMBER_KEYS = ["year", "count", "price", "rating", "pages", "age", "stock", "population_rank"]
FLAG_KEYS = ["available", "verified", "featured", "indoor", "archived"]
LIST_KEYS = ["tags", "colors", "keywords"]
WORDS = ["red", "blue", "green", "quiet", "fast", "new", "classic", "small", "bright", "warm", "local"]


def _quote(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "a list of the strings " + " and ".join(f'"{v}"' for v in value)
    if isinstance(value, int):
        return f"the integer {value}"
    return f'the string "{value}"'


def item(rng: random.Random, kind: str) -> dict:
    subject = rng.choice(sorted(SUBJECTS))
    required = {key: rng.choice(values) for key, values in SUBJECTS[subject].items()}
    required[rng.choice(NUMBER_KEYS)] = rng.randint(2, 2000)
    if kind in ("typed", "list"):
        required[rng.choice(FLAG_KEYS)] = rng.random() < 0.5
    if kind == "list":
        required[rng.choice(LIST_KEYS)] = rng.sample(WORDS, 2)
    keys = list(required)
    rng.shuffle(keys)
    spec = "; ".join(f'"{k}" set to {_quote(required[k])}' for k in keys)
    prompt = (f"Write a JSON object describing a {subject} with exactly these keys: {spec}. "
              f"Reply with only the JSON object.")
    return {"prompt": prompt, "answer": {k: required[k] for k in keys}}


KINDS = ("flat", "typed", "list")


def generate(n: int, seed: int) -> dict:
    rng = random.Random(f"json:{seed}")
    items = [{"id": f"json-{i:03d}", "category": KINDS[i % len(KINDS)], **item(rng, KINDS[i % len(KINDS)])}
             for i in range(n)]
    return probe("json", "Instruction following: reply with a JSON object holding the required keys and "
                 "values; score = share of required keys with the exact value.", "json", items, max_tokens=96)
