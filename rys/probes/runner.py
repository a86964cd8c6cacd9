"""Run a probe set on a served model; serve a model or a layer path and hand back its server."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rys.probes.honesty import honesty_flags
from rys.probes.results import ItemResult, ProbeResult
from rys.probes.scorers import get_scorer
from rys.probes.sets import ProbeSet
from rys.probes.stats import bootstrap_ci


def run_probe(client, probe: ProbeSet, done: Sequence[ItemResult] = ()) -> ProbeResult:
    """Score every item (in parallel over the server's slots) and summarize with honesty checks.

    `done`: results of some of these items already scored on the same target (a halving rung extends
    the one before it); they are kept instead of scored again, which gives the same result because an
    item's score does not depend on which other items a server scored. A failed request raises
    (ServerError): a broken config never becomes a score.
    """
    scorer = get_scorer(probe.scorer)
    start = time.monotonic()
    have = {item.id: item for item in done}
    rest = [item for item in probe.items if item.id not in have]
    scored = client.map(lambda item: scorer.score_item(client, probe, item), rest) if rest else []
    by_id = {**have, **{item.id: result for item, result in zip(rest, scored)}}
    return summarize(probe, [by_id[item.id] for item in probe.items], seconds=time.monotonic() - start)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summarize(probe: ProbeSet, items: Sequence[ItemResult], seconds: float = 0.0) -> ProbeResult:
    scorer = get_scorer(probe.scorer)
    score = _mean(i.score for i in items)
    accuracy = _mean(float(i.correct) for i in items)
    coverage = _mean(i.coverage for i in items)
    ci_low, ci_high = bootstrap_ci([i.score for i in items])
    chance = scorer.chance(probe.items)
    constant = scorer.constant(probe.items)
    constant_score, constant_answer = constant if constant is not None else (None, None)
    by_category = defaultdict(list)
    for item in items:
        by_category[item.category].append(item)
    categories = {name: {"n": len(group), "score": _mean(i.score for i in group),
                         "accuracy": _mean(float(i.correct) for i in group)}
                  for name, group in sorted(by_category.items())}
    return ProbeResult(
        probe=probe.name, probe_sha256=probe.sha256, scorer=probe.scorer, n=len(items), score=score,
        accuracy=accuracy, coverage=coverage, ci_low=ci_low, ci_high=ci_high, chance=chance,
        constant=constant_score, constant_answer=constant_answer,
        flags=honesty_flags(score, ci_low, chance, constant_score, coverage), categories=categories,
        items=list(items), seconds=seconds)


@contextmanager
def open_target(model: str | Path, config, path: Sequence[int] | None = None, store=None,
                name: str = "probe") -> Iterator:
    """A started LlamaServer for `model`, or for the model run along a layer path (at run time on a patched
    server, else materialized in the shared layer store; rys.serve_path); use `.client`. The server is
    stopped and any store lease released on exit."""
    from rys.server import LlamaServer

    if path is None:
        with LlamaServer(Path(model), config, name=name) as server:
            yield server
        return
    try:
        from rys.serve_path import serve_path
    except ImportError as err:
        from rys.probes.sets import ProbeError

        raise ProbeError("layer paths need rys.gguf and rys.serve_path, which are not available in this build",
                         "run without --path, or update rys") from err
    # runtime path on a patched server, else a GGUF materialized in the layer store
    with serve_path(Path(model), list(path), config, store=store, name=name, start=True) as served:
        yield served.server
