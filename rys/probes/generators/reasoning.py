"""`reasoning`: multiple-choice logic whose answers the generator guarantees by construction.

Five kinds, in turn: ordering deductions (clues with exactly one consistent arrangement, checked by
brute force), navigation (return to start?), date arithmetic, boolean expressions, and causal /
counterfactual questions about devices with AND/OR conditions. Gold positions are balanced.
"""

from __future__ import annotations

import datetime
import random
from itertools import permutations

from rys.probes.generators.common import LETTERS, balanced_positions, lettered, probe

ORDINALS = ["first", "second", "third", "fourth", "fifth"]
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black", "grey", "brown"]
THINGS = {"book": "books", "cup": "cups", "car": "cars", "box": "boxes", "lamp": "lamps"}
LETTER_NOTE = "Answer with the letter of the correct option."


def _consistent(order_count: int, clues: list[tuple]) -> list[tuple]:
    """All arrangements (tuples of object indices, left to right) satisfying every clue."""
    found = []
    for arrangement in permutations(range(order_count)):
        pos = {obj: p for p, obj in enumerate(arrangement)}
        if all((pos[c[1]] < pos[c[2]]) if c[0] == "left" else (pos[c[1]] == c[2]) for c in clues):
            found.append(arrangement)
    return found


def _indefinite(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _clue_text(clue, names, count) -> str:
    if clue[0] == "left":
        return f"The {names[clue[1]]} is to the left of the {names[clue[2]]}."
    where = {0: "leftmost", count - 1: "rightmost"}.get(clue[2], f"{ORDINALS[clue[2]]} from the left")
    return f"The {names[clue[1]]} is the {where}."


def ordering(rng: random.Random, gold: int) -> dict:
    count = rng.choice([4, 5])
    thing = rng.choice(sorted(THINGS))
    names = [f"{c} {thing}" for c in rng.sample(COLOURS, count)]
    arrangement = list(range(count))
    rng.shuffle(arrangement)  # arrangement[p] = object at position p
    asked = rng.randrange(count)
    pool = [("left", arrangement[p], arrangement[q]) for p in range(count) for q in range(p + 1, count)]
    pool += [("at", arrangement[p], p) for p in range(count) if p != asked]
    rng.shuffle(pool)
    clues = []
    for clue in pool:
        clues.append(clue)
        if len(_consistent(count, clues)) == 1:
            break
    # Drop clues the unique solution does not need, so the puzzle takes reasoning, not lookup.
    for clue in list(clues):
        rest = [c for c in clues if c != clue]
        if len(_consistent(count, rest)) == 1:
            clues = rest
    answer_obj = arrangement[asked]
    others = [i for i in range(count) if i != answer_obj]
    rng.shuffle(others)
    options = others[:3]
    position = gold % 4
    options.insert(position, answer_obj)
    where = {0: "leftmost", count - 1: "rightmost"}.get(asked, f"{ORDINALS[asked]} from the left")
    text = (f"There are {count} {THINGS[thing]} in a row, each a different colour: "
            + ", ".join(_indefinite(name) for name in sorted(names)) + ". "
            + " ".join(_clue_text(c, names, count) for c in clues)
            + f"\nWhich {thing} is the {where}?\n" + lettered([f"The {names[i]}" for i in options])
            + f"\n{LETTER_NOTE}")
    return {"prompt": text, "answer": LETTERS[position], "options": list(LETTERS[:4])}


DIRECTIONS = {"forward": (0, 1), "backward": (0, -1), "left": (-1, 0), "right": (1, 0)}


def navigation(rng: random.Random, gold: int) -> dict:
    returns = gold % 2 == 0
    moves = [(rng.choice(list(DIRECTIONS)), rng.randint(1, 9)) for _ in range(rng.randint(1, 3))]
    opposite = {"forward": "backward", "backward": "forward", "left": "right", "right": "left"}
    moves += [(opposite[d], s) for d, s in moves]
    if not returns:
        k = rng.randrange(len(moves))
        direction, steps = moves[k]
        moves[k] = (direction, steps + rng.randint(1, 3))
    rng.shuffle(moves)
    steps = " ".join(f"Take {s} step{'s' if s > 1 else ''} {d}." for d, s in moves)
    text = (f"If you follow these instructions, do you return to the starting point? Always face forward. "
            f"{steps}\nAnswer Yes or No.")
    return {"prompt": text, "answer": "Yes" if returns else "No", "options": ["Yes", "No"]}


MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def dates(rng: random.Random, gold: int) -> dict:
    today = datetime.date(2001, 1, 1) + datetime.timedelta(days=rng.randrange(365 * 40))
    days = rng.choice([1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90, 100])
    later = rng.random() < 0.5
    target = today + datetime.timedelta(days=days if later else -days)
    wrong = set()
    for shift in rng.sample([1, -1, 7, -7, 30, -30, 365, -365, 2, -2], 10):
        candidate = target + datetime.timedelta(days=shift)
        if candidate != target:
            wrong.add(candidate)
        if len(wrong) == 3:
            break
    options = sorted(wrong)  # sorted first: set order follows hash randomization
    rng.shuffle(options)
    options.insert(gold % 4, target)
    when = f"{days} day{'s' if days > 1 else ''} {'after' if later else 'before'} today"
    text = (f"Today is {MONTHS[today.month - 1]} {today.day}, {today.year}. What is the date {when} "
            f"in MM/DD/YYYY?\n" + lettered([d.strftime("%m/%d/%Y") for d in options]) + f"\n{LETTER_NOTE}")
    return {"prompt": text, "answer": LETTERS[gold % 4], "options": list(LETTERS[:4])}


def _expression(rng: random.Random, depth: int):
    """(text, value) of a random boolean expression."""
    if depth == 0 or rng.random() < 0.25:
        value = rng.random() < 0.5
        return str(value), value
    kind = rng.choice(["not", "and", "or"])
    if kind == "not":
        text, value = _expression(rng, depth - 1)
        return f"not {text}" if " " not in text else f"not ( {text} )", not value
    (lt, lv), (rt, rv) = _expression(rng, depth - 1), _expression(rng, depth - 1)
    wrap = (lambda t: f"( {t} )" if " " in t else t)
    return f"{wrap(lt)} {kind} {wrap(rt)}", (lv and rv) if kind == "and" else (lv or rv)


def boolean(rng: random.Random, gold: int) -> dict:
    want = gold % 2 == 0
    while True:
        text, value = _expression(rng, 3)
        if value == want and text.count(" ") >= 4:
            break
    prompt = f"Evaluate the boolean expression: {text}\nIs the result True or False?"
    return {"prompt": prompt, "answer": str(value), "options": ["True", "False"]}


DEVICES = ["lamp", "fan", "pump", "alarm", "heater", "printer"]
SWITCHES = ["red", "blue", "green", "silver", "main", "back"]


def causal(rng: random.Random, gold: int) -> dict:
    want = gold % 2 == 0
    device = rng.choice(DEVICES)
    a, b = rng.sample(SWITCHES, 2)
    while True:
        rule = rng.choice(["and", "or"])
        state = {a: rng.random() < 0.5, b: rng.random() < 0.5}
        counterfactual = rng.random() < 0.5
        flipped = rng.choice([a, b])
        world = dict(state)
        if counterfactual:
            world[flipped] = not world[flipped]
        works = (world[a] and world[b]) if rule == "and" else (world[a] or world[b])
        if works == want:
            break
    condition = (f"both the {a} switch and the {b} switch are on" if rule == "and"
                 else f"at least one of the {a} switch and the {b} switch is on")
    facts = f"the {a} switch is {'on' if state[a] else 'off'} and the {b} switch is {'on' if state[b] else 'off'}"
    if counterfactual:
        question = (f"If the {flipped} switch had been {'on' if world[flipped] else 'off'}, "
                    f"would the {device} be working?")
    else:
        question = f"Is the {device} working?"
    text = (f"The {device} works if and only if {condition}. Right now, {facts}. {question}"
            f"\nAnswer Yes or No.")
    return {"prompt": text, "answer": "Yes" if works else "No", "options": ["Yes", "No"]}


KINDS = {"ordering": ordering, "navigation": navigation, "dates": dates, "boolean": boolean, "causal": causal}


def generate(n: int, seed: int) -> dict:
    rng = random.Random(f"reasoning:{seed}")
    kinds = list(KINDS)
    per_kind = {k: balanced_positions(len(range(i, n, len(kinds))), 4, rng) for i, k in enumerate(kinds)}
    items = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        item = KINDS[kind](rng, per_kind[kind][i // len(kinds)])
        items.append({"id": f"reasoning-{i:03d}", "category": kind, **item})
    return probe("reasoning", "Multiple-choice logic with answers guaranteed by construction: ordering "
                 "deductions, navigation, date arithmetic, boolean expressions, causal and counterfactual "
                 "questions. Scored from the next-token distribution over the option labels.", "choice",
                 items, answer_prefix="Answer:")
