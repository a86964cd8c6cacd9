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
Every choice is a function of the rows already scored and a fixed seed, so a rerun replays the same
choices and skips the rows it finds in the results file.
"""

from __future__ import annotations

import math

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


def run(search, options: dict) -> None:
    budget_share = float(options.get("budget", DEFAULTS["budget"]))
    if not 0 < budget_share <= 1:
        raise SweepError(f"--budget must be a share of the space in (0, 1], got {budget_share}", "use e.g. --budget 0.2")
    seed = int(options.get("seed", DEFAULTS["seed"]))
    batch = max(1, int(options.get("batch", DEFAULTS["batch"])))
    candidates = list(search.candidates)
    n_layers = search.job.n_layers
    budget = min(len(candidates), max(4, math.ceil(budget_share * len(candidates))))
    # at least 3 measured configs before the first fit: fewer cannot show a trend
    start = min(budget, max(3, math.ceil(float(options.get("start", DEFAULTS["start"])) * budget)))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(candidates))
    chosen = [candidates[k] for k in order[:start]]
    search.job.log(f"guided: {start} random configs, then batches of {batch} by a gradient-boosted "
                   f"surrogate up to {budget} of {len(candidates)}")
    search.score(chosen)
    while len(chosen) < budget:
        # only what this search chose so far: a rerun then refits on the same rows and chooses the same
        measured = {r.path: r.combined for r in search.ranking(among=chosen)}
        left = [c for c in candidates if c.key not in {x.key for x in chosen}]
        if not left or len(measured) < 3:
            break
        guess = predict(measured, left, n_layers, seed)
        size = min(batch, budget - len(chosen))
        explore = bool(options.get("explore", DEFAULTS["explore"])) and size > 1
        take = sorted(left, key=lambda c: (-guess[c.key], c.key))[: size - 1 if explore else size]
        if explore:
            take.append(farthest([c for c in left if c not in take], [*chosen, *take], candidates, n_layers))
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
