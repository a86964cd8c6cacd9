"""Generators are deterministic, the committed probe files are exactly what they generate, and every
answer is re-derived here by an independent solver that reads only the prompt text."""

import json
import math
import re
from itertools import permutations
from pathlib import Path

import pytest

from rys.probes.generators import GENERATORS, generate, render
from rys.probes.generators.eq_scenarios import SITUATIONS
from rys.probes.sets import parse_probe

REPO_PROBES = Path(__file__).resolve().parent.parent / "probes"


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_deterministic_and_committed_file_is_regenerable(name):
    assert render(generate(name, 12, seed=3)) == render(generate(name, 12, seed=3))
    assert generate(name, 12, seed=3)["items"] != generate(name, 12, seed=4)["items"]
    committed = (REPO_PROBES / f"{name}.json").read_text(encoding="utf-8")
    assert committed == render(generate(name)), f"probes/{name}.json is stale: rys probes generate {name} --out ..."
    probe = parse_probe(json.loads(committed))
    assert len(probe.items) >= 40


def test_any_size():
    for name in GENERATORS:
        assert len(generate(name, 7, seed=1)["items"]) == 7
    assert len(parse_probe(generate("reasoning", 120, seed=9)).items) == 120


def _letter(prompt, wanted):
    options = dict(re.findall(r"^\(([A-H])\) (.+)$", prompt, re.MULTILINE))
    hits = [letter for letter, text in options.items() if text == wanted]
    assert len(hits) == 1, (wanted, options)
    return hits[0]


# -- math ---------------------------------------------------------------------------------------------

def solve_math(prompt):
    if m := re.search(r"What is (\d+) multiplied by (\d+)\?", prompt):
        return int(m[1]) * int(m[2])
    if m := re.search(r"square root of (\d+)\?", prompt):
        root = math.isqrt(int(m[1]))
        assert root * root == int(m[1])
        return root
    if m := re.search(r"cube root of (\d+)\?", prompt):
        root = round(int(m[1]) ** (1 / 3))
        assert root ** 3 == int(m[1])
        return root
    m = re.search(r"What is (\d+) raised to the power of (\d+)\?", prompt)
    return int(m[1]) ** int(m[2])


@pytest.mark.parametrize("name", ["math", "math-logprob"])
def test_math_answers(name):
    for item in generate(name, 60, seed=2)["items"]:
        assert item["answer"] == solve_math(item["prompt"])


# -- reasoning ----------------------------------------------------------------------------------------

ORD = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4}


def solve_ordering(prompt):
    count = int(re.match(r"There are (\d+) ", prompt)[1])
    objects = re.findall(r"an? (\w+ \w+)(?:,|\.)", prompt.split(":", 1)[1].split(".")[0] + ".")
    assert len(objects) == count
    constraints = []
    for a, b in re.findall(r"The (\w+ \w+) is to the left of the (\w+ \w+)\.", prompt):
        constraints.append(lambda pos, a=a, b=b: pos[a] < pos[b])
    for a, where in re.findall(r"The (\w+ \w+) is the (leftmost|rightmost|\w+ from the left)\.", prompt):
        at = 0 if where == "leftmost" else count - 1 if where == "rightmost" else ORD[where.split()[0]]
        constraints.append(lambda pos, a=a, at=at: pos[a] == at)
    solutions = [order for order in permutations(objects)
                 if all(c({o: i for i, o in enumerate(order)}) for c in constraints)]
    assert len(solutions) == 1
    where = re.search(r"Which \w+ is the (leftmost|rightmost|\w+ from the left)\?", prompt)[1]
    asked = 0 if where == "leftmost" else count - 1 if where == "rightmost" else ORD[where.split()[0]]
    return _letter(prompt, f"The {solutions[0][asked]}")


def solve_navigation(prompt):
    x = y = 0
    for steps, direction in re.findall(r"Take (\d+) steps? (forward|backward|left|right)\.", prompt):
        dx, dy = {"forward": (0, 1), "backward": (0, -1), "left": (-1, 0), "right": (1, 0)}[direction]
        x, y = x + dx * int(steps), y + dy * int(steps)
    return "Yes" if (x, y) == (0, 0) else "No"


MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def _month_days(year, month):
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]


def solve_dates(prompt):
    m = re.search(r"Today is (\w+) (\d+), (\d+)\. What is the date (\d+) days? (after|before) today", prompt)
    year, month, day = int(m[3]), MONTHS.index(m[1]) + 1, int(m[2])
    for _ in range(int(m[4])):  # walk the calendar one day at a time
        if m[5] == "after":
            day += 1
            if day > _month_days(year, month):
                day, month = 1, month + 1
                if month == 13:
                    month, year = 1, year + 1
        else:
            day -= 1
            if day == 0:
                month -= 1
                if month == 0:
                    month, year = 12, year - 1
                day = _month_days(year, month)
    return _letter(prompt, f"{month:02d}/{day:02d}/{year:04d}")


def solve_boolean(prompt):
    expr = re.search(r"expression: (.+)\n", prompt)[1]
    assert re.fullmatch(r"(True|False|and|or|not|\(|\)| )+", expr)
    return str(eval(expr))


def solve_causal(prompt):
    m = re.search(r"works if and only if (both the (\w+) switch and the (\w+) switch are on|"
                  r"at least one of the (\w+) switch and the (\w+) switch is on)\.", prompt)
    rule = "and" if m[2] else "or"
    state = {name: value == "on" for name, value in re.findall(r"the (\w+) switch is (on|off)", prompt.split("Right now,")[1])}
    if cf := re.search(r"If the (\w+) switch had been (on|off)", prompt):
        state[cf[1]] = cf[2] == "on"
    values = list(state.values())
    assert len(values) == 2
    works = all(values) if rule == "and" else any(values)
    return "Yes" if works else "No"


SOLVERS = {"ordering": solve_ordering, "navigation": solve_navigation, "dates": solve_dates,
           "boolean": solve_boolean, "causal": solve_causal}


@pytest.mark.parametrize("seed", [0, 1])
def test_reasoning_answers(seed):
    data = generate("reasoning", 100 if seed else None, seed=seed)
    for item in data["items"]:
        assert SOLVERS[item["category"]](item["prompt"]) == item["answer"], item["prompt"]


def test_reasoning_answers_are_balanced():
    items = generate("reasoning")["items"]
    for category in SOLVERS:
        answers = [i["answer"] for i in items if i["category"] == category]
        counts = {a: answers.count(a) for a in set(answers)}
        assert max(counts.values()) - min(counts.values()) <= 1, (category, counts)


# -- eq -----------------------------------------------------------------------------------------------

def test_eq_answers_match_prompt_format_and_reference_table():
    table = {(s, e): dict(zip(emotions, endings[e][1]))
             for s, (_, emotions, endings) in enumerate(SITUATIONS) for e in range(2)}
    for item in generate("eq", 60, seed=5)["items"]:
        asked = re.findall(r"^(\w+): <rating>$", item["prompt"], re.MULTILINE)
        assert asked == list(item["answer"])
        s, e = int(item["meta"]["scenario"][1:3]), int(item["meta"]["scenario"][-1])
        assert item["answer"] == table[(s, e)]
    for item in generate("eq-choice", 40, seed=5)["items"]:
        s, e = int(item["meta"]["scenario"][1:3]), int(item["meta"]["scenario"][-1])
        ratings = table[(s, e)]
        strongest = max(ratings, key=ratings.get)
        assert list(ratings.values()).count(ratings[strongest]) == 1
        assert _letter(item["prompt"], strongest) == item["answer"]


# -- json ---------------------------------------------------------------------------------------------

def solve_json(prompt):
    spec = re.search(r"exactly these keys: (.+)\. Reply with only", prompt)[1]
    out = {}
    for part in spec.split("; "):
        key, value = re.fullmatch(r'"(\w+)" set to (.+)', part).groups()
        if value in ("true", "false"):
            out[key] = value == "true"
        elif m := re.fullmatch(r"the integer (\d+)", value):
            out[key] = int(m[1])
        elif m := re.fullmatch(r'the string "([^"]*)"', value):
            out[key] = m[1]
        else:
            out[key] = re.findall(r'"([^"]*)"', re.fullmatch(r"a list of the strings (.+)", value)[1])
    return out


def test_json_answers():
    for item in generate("json", 60, seed=7)["items"]:
        assert solve_json(item["prompt"]) == item["answer"]
