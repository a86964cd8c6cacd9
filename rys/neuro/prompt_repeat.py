"""Does repeating the prompt act like repeating layers? The probe with every prompt written `count`
times (blank line between copies), scored on the original model, next to a duplication path's delta."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from rys import paths as layer_paths
from rys.neuro import NeuroError
from rys.probes import open_target, run_probe
from rys.probes.stats import paired_delta

SEPARATOR = "\n\n"


def repeated(probe, count: int):
    """The probe with each item's prompt repeated `count` times (same ids, so runs pair up)."""
    if count < 1:
        raise NeuroError(f"repeat count {count} is less than 1", "use counts like 1,2,3 (1 = the plain prompt)")
    items = tuple(dataclasses.replace(item, prompt=SEPARATOR.join([item.prompt] * count)) for item in probe.items)
    return dataclasses.replace(probe, items=items)


def run_prompt_repeat(model: Path, probe, config, counts: Sequence[int], best_path: Sequence[int] | None = None,
                      store=None) -> dict:
    counts = sorted(set(counts) | {1})
    results = {}
    with open_target(model, config, name="prompt-repeat") as server:
        for count in counts:
            results[count] = run_probe(server.client, repeated(probe, count))
    base = results[1]
    rows = []
    for count in counts:
        d = paired_delta(base.items, results[count].items)
        rows.append({"count": count, "score": results[count].score, "delta": d.delta, "ci_low": d.ci_low,
                     "ci_high": d.ci_high, "p": d.p})
    out = {"model": str(model), "probe": probe.name, "baseline": base.score, "repeats": rows, "path": None}
    if best_path is not None:
        with open_target(model, config, path=list(best_path), store=store, name="prompt-repeat-path") as server:
            dup = run_probe(server.client, probe)
        d = paired_delta(base.items, dup.items)
        out["path"] = {"path": layer_paths.format_path(best_path), "score": dup.score, "delta": d.delta,
                       "ci_low": d.ci_low, "ci_high": d.ci_high, "p": d.p}
    return out
