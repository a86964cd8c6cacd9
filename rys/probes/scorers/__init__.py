"""The scorer registry: a probe set names its scorer; get_scorer(name) returns it."""

from __future__ import annotations

from rys.probes.scorers.base import Scorer
from rys.probes.scorers.choice import ChoiceGenScorer, ChoiceScorer
from rys.probes.scorers.continuation import ContinuationScorer
from rys.probes.scorers.eq import EqScorer
from rys.probes.scorers.json_answer import JsonScorer
from rys.probes.scorers.number import NumberBestScorer, NumberScorer
from rys.probes.scorers.rating import RatingScorer
from rys.probes.sets import ProbeError

SCORERS: dict[str, Scorer] = {s.name: s for s in (ChoiceScorer(), ChoiceGenScorer(), RatingScorer(),
                                                  ContinuationScorer(), NumberScorer(), NumberBestScorer(), EqScorer(),
                                                  JsonScorer())}


def get_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise ProbeError(f"unknown scorer {name!r}", f"use one of: {', '.join(SCORERS)}")
    return SCORERS[name]


__all__ = ["SCORERS", "Scorer", "get_scorer"]
