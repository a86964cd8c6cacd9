"""Probes: probe sets as data, scorers that measure correctness, honest statistics."""

from rys.probes.results import ItemResult, ProbeResult
from rys.probes.runner import open_target, run_probe, summarize
from rys.probes.scorers import SCORERS, Scorer, get_scorer
from rys.probes.sets import ProbeError, ProbeItem, ProbeSet, list_probes, load_probe, parse_probe

__all__ = [
           "SCORERS",
           "ItemResult",
           "ProbeError",
           "ProbeItem",
           "ProbeResult",
           "ProbeSet",
           "Scorer",
           "get_scorer",
           "list_probes",
           "load_probe",
           "open_target",
           "parse_probe",
           "run_probe",
           "summarize",
]
