"""Surrogate-guided search (RYS-II style): score a seeded random start, fit a gradient-boosted model of
the combined score on what has been measured, score the configs it predicts best, refit, repeat until
the budget is spent; then, optionally, a beam step over two-block paths made of the best blocks.

A tree model cannot extrapolate: a config unlike anything measured is predicted like its nearest
measured neighbours. So each batch of two or more also takes the candidate farthest (in standardized
features) from everything measured, as SMAC interleaves random configurations, and a region the start
missed still gets looked at.

The model is scikit-learn's GradientBoostingRegressor on features any layer path has (how often each
source layer runs, how many layers are added, where the repeated part starts and ends, how many
repeated segments), so block start, block length, repeat count and multi-block paths share one model.

The budget is a share of the exhaustive grid's compute (scored tokens x layers run, the baseline
included, as benchmarks/bench_strategy.py measures it), not of its configs: under prefix reuse a block
that starts early runs more layers than one that starts late, so a count of configs overspends exactly
where the search finds early blocks promising.

Every choice is a function of the rows already scored and a fixed seed, so a rerun replays the same
choices and skips the rows it finds in the results file.
"""

from __future__ import annotations

import numpy as np

from rys import paths as layer_paths
from rys.sweep import SweepError
from rys.sweep.space import Config

DEFAULTS = {"budget": 0.2, "start": 0.5, "batch": 4, "seed": 0, "beam": 0, "explore": True}


def features(path: tuple[int, ...] | list[int], n_layers: int) -> list[float]:
    """Per source layer its run count, then: layers added, first and last layer run more than once,
    number of repeated segments (runs of consecutive repeated layers)."""
    counts = np.bincount(np.asarray(path, dtype=int), minlength=n_layers)[:n_layers].astype(float)
    repeated = np.flatnonzero(counts > 1)
    first = float(repeated[0]) if repeated.size else -1.0
    last = float(repeated[-1]) if repeated.size else -1.0
    segments = float(np.sum(np.diff(repeated) > 1) + 1) if repeated.size else 0.0
    return list(counts) + [float(len(path) - n_layers), first, last, segments]


def _surrogate(seed: int):
    from sklearn.ensemble import GradientBoostingRegressor  # scikit-learn: import only when guiding

    return GradientBoostingRegressor(n_estimators=150, max_depth=3, learning_rate=0.05, subsample=0.8,
                                     random_state=seed)


def predict(scored: dict[str, float], candidates: list[Config], n_layers: int, seed: int) -> dict[str, float]:
    """Fit on {path: measured target} and predict every candidate's target."""
    paths = list(scored)
    x = np.array([features(layer_paths.parse_path(p), n_layers) for p in paths])
    model = _surrogate(seed).fit(x, np.array([scored[p] for p in paths]))
    grid = np.array([features(c.path, n_layers) for c in candidates])
    return dict(zip((c.key for c in candidates), model.predict(grid).tolist()))


def farthest(pool: list[Config], measured: list[Config], space: list[Config], n_layers: int) -> Config:
    """The config of `pool` whose nearest measured config is farthest away, features scaled by their
    spread over the whole space (ties: the first in pool order)."""
    table = np.array([features(c.path, n_layers) for c in space])
    spread = table.std(axis=0)
    spread[spread == 0] = 1.0

    def scaled(c: Config) -> np.ndarray:
        return np.asarray(features(c.path, n_layers)) / spread

    seen = np.array([scaled(c) for c in measured])
    gaps = [float(np.min(np.linalg.norm(seen - scaled(c), axis=1))) for c in pool]
    return pool[int(np.argmax(gaps))]


def two_block(a: Config, b: Config, n_layers: int) -> Config | None:
    """Both duplications of two RYS configs in one path (blocks must not overlap): layers
    0..j1-1, i1..j2-1, i2..N-1 for i1 < j1 <= i2 < j2 -- each block runs twice."""
    if a.i is None or b.i is None or a.times != 2 or b.times != 2 or a.interleaved or b.interleaved:
        return None
    (i1, j1), (i2, j2) = sorted([(a.i, a.j), (b.i, b.j)])
    if j1 > i2:
        return None
    path = list(range(j1)) + list(range(i1, j2)) + list(range(i2, n_layers))
    return Config(tuple(path))


def spendable(share: float, costs: list[int], n_layers: int) -> float:
    """Layers per item the configs may run for the search to cost `share` of the grid, both counting
    the baseline (n_layers per item) as every search runs it: share x (configs + baseline) - baseline."""
    return share * (sum(costs) + n_layers) - n_layers


def fitting(pool: list[Config], cost: dict, room: float, most: int) -> list[Config]:
    """Up to `most` configs of `pool`, in its order, whose costs together stay within `room`."""
    take: list[Config] = []
    for c in pool:
        if len(take) < most and cost[c.key] <= room:
            take.append(c)
            room -= cost[c.key]
    return take


def run(search, options: dict) -> None:
    share = float(options.get("budget", DEFAULTS["budget"]))
    if not 0 < share <= 1:
        raise SweepError(f"--budget must be a share of the grid's compute in (0, 1], got {share}",
                         "use e.g. --budget 0.2")
    seed = int(options.get("seed", DEFAULTS["seed"]))
    batch = max(1, int(options.get("batch", DEFAULTS["batch"])))
    candidates = list(search.candidates)
    n_layers = search.job.n_layers
    cost = {c.key: search.cost(c) for c in candidates}
    allowed = spendable(share, list(cost.values()), n_layers)
    rng = np.random.default_rng(seed)
    order = [candidates[k] for k in rng.permutation(len(candidates))]
    # a random sample of the space for the start (the first configs of the seeded order, never the cheap
    # ones by choice), at least 3: fewer cannot show a trend
    chosen: list[Config] = []
    opening = float(options.get("start", DEFAULTS["start"])) * allowed
    for c in order:
        if len(chosen) >= 3 and sum(cost[x.key] for x in chosen) + cost[c.key] > opening:
            break
        chosen.append(c)
    search.job.log(f"guided: {len(chosen)} random configs, then batches of {batch} by a gradient-boosted "
                   f"surrogate, up to {share:g} of the grid's compute ({len(candidates)} configs)")
    search.score(chosen)
    explore = bool(options.get("explore", DEFAULTS["explore"])) and batch > 1
    while True:
        # only what this search chose so far: a rerun then refits on the same rows and chooses the same
        measured = {r.path: r.combined for r in search.ranking(among=chosen)}
        room = allowed - sum(cost[c.key] for c in chosen)
        taken = {c.key for c in chosen}
        left = [c for c in candidates if c.key not in taken and cost[c.key] <= room]
        if not left or len(measured) < 3:
            break
        guess = predict(measured, left, n_layers, seed)
        ranked = sorted(left, key=lambda c: (-guess[c.key], c.key))
        take = fitting(ranked, cost, room, batch - 1 if explore else batch)
        if explore:
            room -= sum(cost[c.key] for c in take)
            pool = [c for c in left if c not in take and cost[c.key] <= room]
            if pool:
                take.append(farthest(pool, [*chosen, *take], candidates, n_layers))
        chosen += take
        search.score(take)
    beam = int(options.get("beam", DEFAULTS["beam"]))
    if beam > 1:
        top = search.ranking(among=chosen)[:beam]
        by_key = {c.key: c for c in candidates}
        pairs = [two_block(by_key[a.path], by_key[b.path], n_layers)
                 for k, a in enumerate(top) for b in top[k + 1:]]
        extra = [p for p in pairs if p is not None]
        if extra:
            search.job.log(f"guided beam: {len(extra)} two-block paths from the top {beam} blocks")
            search.candidates = candidates + extra
            search.score(extra)
