"""`eq` and `eq-choice`: emotional-intelligence scenarios written for this project.

Each situation has two endings that pull the same four emotions in opposite directions, so the
reference ratings spread over 0-10 and no constant rating scores well. Names and emotion order vary
with the seed; past 24 items the (situation, ending) pairs repeat with other names.
"""

from __future__ import annotations

import random

from rys.probes.generators.common import LETTERS, balanced_positions, lettered, probe

# (setup, emotions, [(ending, ratings in emotion order), ...]); {a} is the person rated, {b} another.
SITUATIONS = [
    (("{a} spent three months preparing a proposal for a promotion review. In the meeting, {b}, a colleague, "
     "presented {a}'s key idea as their own before {a} could speak."),
     ("Angry", "Betrayed", "Proud", "Relieved"),
     [("The manager interrupted and said she already knew the idea was {a}'s.", (5, 6, 6, 7)),
      ("Nobody noticed, and {b} was praised for the idea.", (9, 9, 1, 0))]),
    ("{a} has waited for weeks to hear about a scholarship that would pay for university.",
     ("Anxious", "Joyful", "Disappointed", "Grateful"),
     [(("Today the letter came: {a} got the full scholarship, and {b}, the teacher who wrote the "
       "recommendation, called to congratulate {a}."), (1, 9, 0, 8)),
      ("Today the letter came: the scholarship went to someone else.", (5, 0, 9, 1))]),
    (("A year ago {a} lent {b}, an old friend, a large sum for a medical bill. {b} promised to pay it back "
     "within a month."),
     ("Resentful", "Trusting", "Surprised", "Happy"),
     [("Today {b} arrived unannounced, repaid everything and added a handwritten thank-you note.", (1, 8, 8, 8)),
      ("Today {a} saw photos of {b} on an expensive holiday; {b} has still not mentioned the money.",
       (9, 1, 5, 0))]),
    ("{a}'s old dog ran off during a thunderstorm last night.",
     ("Worried", "Relieved", "Guilty", "Calm"),
     [("This morning a neighbour, {b}, knocked on the door holding the dog, wet but unhurt.", (2, 10, 3, 6)),
      ("{a} had left the gate open, and after searching all morning there is still no sign of the dog.",
       (10, 0, 9, 0))]),
    ("{a} practised for months for a piano recital in front of family and friends.",
     ("Embarrassed", "Proud", "Nervous", "Content"),
     [("{a} played without a single mistake and got a standing ovation.", (0, 9, 2, 9)),
      ("Halfway through, {a} forgot the piece completely and had to stop while the room went silent.",
       (9, 1, 8, 0))]),
    (("{a} and {b} have been best friends since childhood. {b} just told {a} about moving to another country "
     "next month."),
     ("Sad", "Happy", "Angry", "Lonely"),
     [("{b} explained it is a dream job, wanted for years, and asked {a} to visit often.", (6, 6, 0, 5)),
      ("{a} then learned that everyone else had known for months and only {a} had been kept in the dark.",
       (7, 0, 8, 7))]),
    ("{a} ordered a birthday cake for a daughter's party from {b}'s bakery.",
     ("Frustrated", "Grateful", "Amused", "Anxious"),
     [("The cake came an hour before the party with the wrong name on it, and {b} refused to fix it.",
       (9, 0, 1, 7)),
      (("The cake came early, and {b} had added a free decoration of the daughter's favourite cartoon "
       "character."), (0, 9, 4, 1))]),
    ("{a} has worked late every night to finish a project for the team lead, {b}.",
     ("Exhausted", "Appreciated", "Resentful", "Motivated"),
     [("At the team meeting, {b} thanked {a} by name and gave {a} two days off.", (6, 9, 0, 8)),
      ("{b} took the finished work without a word and handed {a} another urgent task for the weekend.",
       (9, 0, 8, 1))]),
    ("{a} is stuck in traffic on the way to the airport; the flight to {b}'s wedding leaves in fifty minutes.",
     ("Panicked", "Hopeful", "Relieved", "Bored"),
     [("The traffic suddenly clears and {a} reaches the gate just as boarding starts.", (2, 7, 10, 0)),
      ("The traffic has not moved for half an hour and the airline's app says the gate is closing.",
       (9, 1, 0, 3))]),
    (("At a dinner party, {a} knocked over a vase that the host, {b}, had called a gift from a late "
     "grandmother."),
     ("Ashamed", "Relieved", "Afraid", "Amused"),
     [("{b} laughed and said it was a cheap copy; the real vase is safe in a cabinet.", (3, 9, 1, 7)),
      ("{b} went quiet, picked up the pieces and asked {a} to leave.", (9, 0, 6, 0))]),
    ("{a} entered a photography contest for the first time, mostly for fun.",
     ("Surprised", "Proud", "Jealous", "Indifferent"),
     [("{a}'s photo won first prize, ahead of professionals.", (10, 9, 0, 0)),
      ("{a}'s photo was not shortlisted, and {b}, a friend who copied {a}'s idea, won first prize.",
       (4, 1, 8, 2))]),
    ("{a} found a wallet full of cash on the street and returned it to its owner, {b}.",
     ("Satisfied", "Annoyed", "Proud", "Disappointed"),
     [("{b} hugged {a}, explained the money was for rent, and insisted on buying {a} dinner.", (9, 0, 7, 0)),
      ("{b} counted the cash, accused {a} of taking some and walked off without a thank-you.", (2, 9, 3, 8))]),
]
NAMES = ["Maya", "Tomas", "Aiko", "Daniel", "Priya", "Lucas", "Amara", "Jonas", "Leila", "Marco", "Nadia",
         "Owen", "Sofia", "Ravi", "Elena", "Kwame", "Ines", "Felix", "Yara", "Hugo"]


def _scenarios(n: int, seed: int, rng: random.Random):
    """n (text, person, emotions, ratings) tuples: every (situation, ending) once per round."""
    pairs = [(s, e) for s in range(len(SITUATIONS)) for e in range(2)]
    order = []
    while len(order) < n:
        round_ = pairs[:]
        rng.shuffle(round_)
        order += round_
    for s, e in order[:n]:
        setup, emotions, endings = SITUATIONS[s]
        ending, ratings = endings[e]
        a, b = rng.sample(NAMES, 2)
        perm = list(range(4))
        rng.shuffle(perm)
        yield (f"{setup} {ending}".format(a=a, b=b), a, [emotions[k] for k in perm],
               [ratings[k] for k in perm], f"s{s:02d}e{e}")


def generate_eq(n: int, seed: int) -> dict:
    rng = random.Random(f"eq:{seed}")
    items = []
    for i, (text, person, emotions, ratings, key) in enumerate(_scenarios(n, seed, rng)):
        form = "\n".join(f"{e}: <rating>" for e in emotions)
        prompt = (f"Read the scenario, then rate how strongly {person} feels each emotion at the end of it, "
                  f"from 0 (not at all) to 10 (extremely).\n\nScenario: {text}\n\n"
                  f"Reply in exactly this format:\n{form}")
        items.append({"id": f"eq-{i:03d}", "category": "ratings", "prompt": prompt,
                      "answer": dict(zip(emotions, ratings)), "meta": {"scenario": key}})
    return probe("eq", "Emotional-intelligence scenarios: rate four emotions 0-10; EQ-bench first-pass "
                 "score against reference ratings.", "eq", items, max_tokens=48)


def generate_eq_choice(n: int, seed: int) -> dict:
    rng = random.Random(f"eq-choice:{seed}")
    positions = balanced_positions(n, 4, rng)
    items = []
    scenarios = (s for s in _scenarios(10 * n, seed, rng) if s[3].count(max(s[3])) == 1)
    for i, (text, person, emotions, ratings, key) in zip(range(n), scenarios):
        strongest = emotions[ratings.index(max(ratings))]
        options = [e for e in emotions if e != strongest]
        options.insert(positions[i], strongest)
        prompt = (f"Scenario: {text}\n\nWhich emotion does {person} feel most strongly at the end?\n"
                  f"{lettered(options)}\nAnswer with the letter of the correct option.")
        items.append({"id": f"eq-choice-{i:03d}", "category": "strongest-emotion", "prompt": prompt,
                      "answer": LETTERS[positions[i]], "options": list(LETTERS[:4]), "meta": {"scenario": key}})
    return probe("eq-choice", "The eq scenarios as multiple choice: which emotion is strongest at the end "
                 "(only situations with one clear strongest emotion).", "choice", items, answer_prefix="Answer:")
