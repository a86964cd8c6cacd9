"""Successive halving on the paired deltas: every config on a few items, then more items only for the
configs still in contention, down to the top ones on all items.

Rung sizes grow by `eta` up to all items (e.g. 60 items, eta 4, at least 4 items: 4, 15, 60); after each
rung the best 1/eta of the configs by combined ranking (the RYS z-sum of deltas, on that rung's items)
go on, never fewer than `keep`. Rung items are the first items of each probe, so every rung extends the
one before it: a config keeps the items it has from the rung before and scores only the new ones
(Search.score), and a rerun reads the same rows and makes the same cuts.
"""

from __future__ import annotations

import math

from rys.sweep import SweepError

DEFAULTS = {"eta": 4, "min_items": 4, "keep": 3}  # eta 4 from 4 items: 19% of the grid (bench_strategy)


def rungs(n_items: int, eta: float, min_items: int) -> list[int]:
    """Items per rung, smallest first, ending with all items."""
    if eta <= 1:
        raise SweepError(f"--halving-eta must be above 1, got {eta}", "use e.g. --halving-eta 3")
    if min_items < 1:
        raise SweepError(f"--halving-min-items must be at least 1, got {min_items}", "use e.g. --halving-min-items 6")
    sizes = [n_items]
    while round(sizes[-1] / eta) >= min_items and round(sizes[-1] / eta) < sizes[-1]:
        sizes.append(round(sizes[-1] / eta))
    return sizes[::-1]


def survivors(count: int, eta: float, keep: int) -> int:
    return min(count, max(keep, math.ceil(count / eta)))


def run(search, options: dict) -> None:
    eta = float(options.get("eta", DEFAULTS["eta"]))
    keep = int(options.get("keep", DEFAULTS["keep"]))
    sizes = rungs(search.n_items, eta, int(options.get("min_items", DEFAULTS["min_items"])))
    alive = list(search.candidates)
    log = search.job.log
    for number, n in enumerate(sizes):
        log(f"halving rung {number + 1}/{len(sizes)}: {len(alive)} configs on {n} items")
        search.score(alive, n)
        if number == len(sizes) - 1:
            return
        ranked = search.ranking(n, among=alive)
        by_key = {c.key: c for c in alive}
        alive = [by_key[r.path] for r in ranked[: survivors(len(ranked), eta, keep)]]
