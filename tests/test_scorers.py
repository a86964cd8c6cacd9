"""Scorer math against hand-computed values, including the peers' known failure cases."""

import math

import pytest

from rys.probes.scorers.choice import (
    choice_chance,
    choice_constant,
    choice_gen_outcome,
    choice_outcome,
    extract_choice,
    variant_strings,
)
from rys.probes.scorers.continuation import continuation_outcome, continuation_text
from rys.probes.scorers.eq import EqScorer, eq_chance_item, eq_outcome, eq_score, parse_ratings
from rys.probes.scorers.json_answer import first_json_object, json_outcome, json_score
from rys.probes.scorers.number import NumberScorer, cross_chance, integers, ng_score, number_outcome
from rys.probes.scorers.rating import RatingScorer, rating_outcome
from rys.probes.sets import ProbeItem, ProbeSet

L = math.log


def item(answer, options=None, prompt="q", id="x"):
    return ProbeItem(id=id, prompt=prompt, answer=answer, options=tuple(options) if options else None)


# -- choice -------------------------------------------------------------------------------------------

def test_choice_merges_variants_and_renormalizes():
    # A = 0.3 (" A") + 0.1 ("A") = 0.4; B = 0.2; coverage 0.6; p(B) = 0.2 / 0.6
    out = choice_outcome({"A": [L(0.3), L(0.1)], "B": [L(0.2)]}, "B")
    assert out["coverage"] == pytest.approx(0.6)
    assert out["p_correct"] == pytest.approx(1 / 3)
    assert out["score"] == out["p_correct"]
    assert out["prediction"] == "A" and out["correct"] is False
    assert out["detail"]["log_odds"] == pytest.approx(L(0.2) - L(0.4))  # = -log 2


def test_choice_log_odds_is_against_best_wrong_option_not_all_wrong_mass():
    out = choice_outcome({"A": [L(0.5)], "B": [L(0.2)], "C": [L(0.1)]}, "A")
    assert out["p_correct"] == pytest.approx(0.625)
    assert out["detail"]["log_odds"] == pytest.approx(L(0.5 / 0.2))  # not log(0.5 / 0.3)
    assert out["correct"] is True


def test_choice_tie_is_not_correct_and_unreachable_tokens_are_handled():
    tie = choice_outcome({"A": [L(0.25)], "B": [L(0.25)]}, "B")
    assert tie["p_correct"] == pytest.approx(0.5) and tie["correct"] is False
    # a tie picks nothing: the prediction never equals the gold label while correct is False
    assert tie["prediction"] is None and tie["detail"]["tied"] == ["A", "B"]
    assert choice_outcome({"A": [L(0.3)], "B": [L(0.3)], "C": [L(0.4)]}, "C")["prediction"] == "C"
    none = choice_outcome({"A": [-math.inf], "B": [L(0.1)]}, "A")
    assert none["p_correct"] == 0.0 and none["detail"]["log_odds"] == -math.inf


def test_variant_strings():
    assert variant_strings("B") == [" (B", " B", "(B", "B"]
    yes = variant_strings("Yes")
    assert {"Yes", " yes", " YES", "(Yes"} <= set(yes) and len(yes) == 12


def test_choice_chance_and_constant():
    items = [item("A", "AB"), item("A", "AB"), item("B", "AB"), item("No", ["Yes", "No"])]
    assert choice_chance(items) == pytest.approx(0.5)
    assert choice_constant(items) == (pytest.approx(0.75), "A/No")


@pytest.mark.parametrize("text, expected", [
    ("Answer: B", "B"),
    ("**Final Answer: (B)**", "B"),
    ("The answer is (C).", "C"),
    ("A dog cannot fly, so the answer is D", "D"),  # the article "A" is not an answer
    ("I think it is (B)", "B"),  # nor is "I"
    ("A car is parked on the left.", None),
    ("B. The purple cup is second.", "B"),
    ("(C)", "C"),
    ("C", "C"),
    ("Options (A) and (B) both look right", None),
    ("Answer: B. Wait, no: the answer is C.", "C"),  # the last explicit statement wins
    ("The correct option is (A) The red cup", "A"),
])
def test_extract_choice_letters(text, expected):
    assert extract_choice(text, ("A", "B", "C", "D")) == expected


@pytest.mark.parametrize("text, expected", [
    ("yes, you return to the start", "Yes"),
    ("Answer: No.", "No"),
    ("**Answer: YES**", "Yes"),
    ("Nobody knows", None),  # "No" inside a word is not an answer
])
def test_extract_choice_words(text, expected):
    assert extract_choice(text, ("Yes", "No")) == expected


def test_choice_gen_outcome():
    out = choice_gen_outcome("**Final Answer: (B)**", ("A", "B"), "B")
    assert out["score"] == 1.0 and out["correct"] and out["coverage"] == 1.0
    miss = choice_gen_outcome("I am not sure.", ("A", "B"), "B")
    assert miss["score"] == 0.0 and miss["prediction"] is None and miss["coverage"] == 0.0


# -- rating -------------------------------------------------------------------------------------------

def test_rating_expectation_error_and_coverage():
    # p(7)=0.5, p(8)=0.3, p(3)=0.2 over the digits, at half the full-vocabulary mass
    lps = {str(d): [-math.inf] for d in range(10)}
    lps["7"], lps["8"], lps["3"] = [L(0.25)], [L(0.15)], [L(0.1)]
    out = rating_outcome(lps, 7)
    assert out["detail"]["expectation"] == pytest.approx(6.5)  # 3.5 + 2.4 + 0.6
    assert out["detail"]["variance"] == pytest.approx(3.25)  # .5*.25 + .3*2.25 + .2*12.25
    assert out["detail"]["error"] == pytest.approx(-0.5)
    assert out["score"] == pytest.approx(1 - 0.5 / 9)
    assert out["coverage"] == pytest.approx(0.5)
    assert out["p_correct"] == pytest.approx(0.5) and out["correct"] and out["prediction"] == "7"


def test_rating_baselines():
    items = [item(0), item(9), item(9)]
    scorer = RatingScorer()
    assert scorer.chance(items) == pytest.approx(0.5)  # |4.5 - e| / 9 = 0.5 for 0 and 9
    assert scorer.constant(items) == (pytest.approx(2 / 3), "9")


# -- continuation -------------------------------------------------------------------------------------

def test_continuation_length_normalized():
    out = continuation_outcome([L(0.5), L(0.8)])
    assert out["score"] == pytest.approx(math.sqrt(0.4))
    assert out["p_correct"] == pytest.approx(0.4)
    assert out["correct"] is False  # p = 0.5 is not a sure greedy pick
    assert continuation_outcome([L(0.9), L(0.6)])["correct"] is True


def test_continuation_text_spacing():
    probe = ProbeSet("p", "", "continuation", True, (), "0", answer_prefix="The answer is")
    assert continuation_text(probe, item(56088)) == " 56088"
    bare = ProbeSet("p", "", "continuation", True, (), "0")
    assert continuation_text(bare, item(56088)) == "56088"


# -- number (Ng) --------------------------------------------------------------------------------------

def test_ng_score_hand_values():
    assert ng_score(12345, 12345) == 1.0
    # 123 -> 12300 (pad 2 of 5): (1 - 45/12345) * (1 - 2/5)
    assert ng_score(123, 12345) == pytest.approx((1 - 45 / 12345) * 0.6)
    assert ng_score(56000, 56088) == pytest.approx(1 - 88 / 56088)
    assert ng_score(20, 10) == pytest.approx(0.5)
    assert ng_score(-5, 5) == 0.0
    assert ng_score(0, 0) == 1.0


def test_integers():
    assert integers("1,234,567 and 3, 4 then -8 and 12.5") == [1234567, 3, 4, -8, 12, 5]


def test_number_scores_the_answer_given_not_the_best_guess():
    question = "What is 123 multiplied by 456?"
    out = number_outcome("I get 5600 or maybe 56088.", question, 56088)
    # the first number is the answer given: Ng's credit of 5600 vs 56088 (pad 1 of 5: 56000 vs 56088)
    assert out["prediction"] == "5600" and out["correct"] is False
    assert out["score"] == pytest.approx((1 - 88 / 56088) * 0.8)
    guesses = number_outcome("0 1 2 3 4 5 56088", question, 56088)
    assert guesses["score"] == 0.0 and guesses["detail"]["integers"] == 7  # ng_score(0, 56088) = 0
    # Ng's rule, only when asked for: the best over every integer
    assert number_outcome("0 1 2 3 4 5 56088", question, 56088, best_of_all=True)["score"] == 1.0
    assert number_outcome("I get 5600 or maybe 56088.", question, 56088, best_of_all=True)["score"] == 1.0


def test_number_best_is_an_explicit_scorer():
    from rys.probes.scorers import get_scorer

    assert get_scorer("number-best").best_of_all and not get_scorer("number").best_of_all


def test_number_echoed_question_numbers_earn_nothing():
    question = "What is the square root of 1522756? Reply with only the number."
    # The peers' scorer gives the echo (1 - 288756/1522756) * 4/7 = 0.46 for repeating the question.
    assert ng_score(1522756, 1234) == pytest.approx((1 - 288756 / 1522756) * 4 / 7)
    echo = number_outcome("The square root of 1522756 is", question, 1234)
    assert echo["score"] == 0.0 and echo["coverage"] == 0.0 and echo["prediction"] is None
    assert number_outcome("1522756 = 1234 * 1234", question, 1234)["score"] == 1.0


def test_number_baselines_and_item_check():
    items = [item(10, id="a"), item(20, id="b")]
    scorer = NumberScorer()
    assert scorer.chance(items) == pytest.approx(0.5)
    assert scorer.constant(items) == (pytest.approx(0.75), "10")
    assert "appears in the question" in scorer.check_item(item(7, prompt="What is 7 times 1?"))
    assert cross_chance([[1.0]]) is None


# -- eq -----------------------------------------------------------------------------------------------

REF = {"Angry": 9, "Sad": 2, "Happy": 0, "Calm": 5}


def test_parse_ratings():
    text = "Angry: 8\nSad - 2\nhappy=1/10\nCalm: eleven"
    assert parse_ratings(text, REF) == {"Angry": 8, "Sad": 2, "Happy": 1}
    assert parse_ratings("Angry: 12", REF) == {}  # out of range is not a rating
    # a negative rating is -3, not 3: outside 0-10, so not a rating
    assert parse_ratings("Angry: -3\nSad -2\nCalm:-1", REF) == {}
    assert parse_ratings("Angry: -3, Sad: 4", REF) == {"Sad": 4}


def test_eq_score_hand_values():
    assert eq_score({"Angry": 8, "Sad": 2, "Happy": 1, "Calm": 5}, REF) == pytest.approx(1 - 2 / 40)
    # three parsed: conf .75, error 2/30 -> .75 * (1 - 2/30) + .25 * .5
    assert eq_score({"Angry": 8, "Sad": 2, "Happy": 1}, REF) == pytest.approx(0.825)
    assert eq_score({}, REF) == 0.5
    # the peers' constant "7, 7, 7, 7": |2| + |5| + |7| + |2| = 16 -> 0.6
    assert eq_score(dict.fromkeys(REF, 7), REF) == pytest.approx(0.6)


def test_eq_outcome_and_baselines():
    out = eq_outcome("Angry: 9\nSad: 2\nHappy: 0\nCalm: 5", REF)
    assert out["score"] == 1.0 and out["correct"] and out["coverage"] == 1.0
    # uniform ratings: E|U - 0| = 55/11 = 5, E|U - 5| = 30/11
    assert eq_chance_item({"x": 0, "y": 5}) == pytest.approx(1 - (5 + 30 / 11) / 20)
    assert EqScorer().constant([item({"x": 0, "y": 0})]) == (1.0, "0 for every emotion")
    # no rating beats not answering at all, which the formula scores 0.5
    assert EqScorer().constant([item({"x": 0, "y": 10})])[0] == pytest.approx(0.5)
    assert EqScorer().constant([item({"x": 0, "y": 10}), item({"x": 10, "y": 10})]) == (0.75, "10 for every emotion")


# -- json ---------------------------------------------------------------------------------------------

def test_json_object_extraction_and_score():
    required = {"a": 1, "b": "x", "c": True}
    assert first_json_object('Sure! {bad} then ```json\n{"a": 1}\n```') == {"a": 1}
    assert first_json_object("no object here [1, 2]") is None
    assert json_score({"a": 1, "b": "y", "c": 1}, required) == pytest.approx(1 / 3)  # 1 is not true
    assert json_score({"a": 1.0, "b": "x", "c": True}, required) == pytest.approx(2 / 3)  # 1.0 is not 1
    out = json_outcome('{"c": true, "b": "x", "a": 1, "extra": 0}', required)
    assert out["score"] == 1.0 and out["correct"] and out["coverage"] == 1.0
    assert json_outcome("I cannot do that", required)["coverage"] == 0.0
