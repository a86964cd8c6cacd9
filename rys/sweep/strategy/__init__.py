"""Search strategies: which configs of a space get scored, on how many items, in which order.

One narrow interface: a strategy is a function `run(search: Search, options: dict) -> None`,
registered by name in STRATEGIES. It asks `search.score(configs, n_items)` for rows and reads them back
with `search.rows()` / `search.ranking()`. Every scored row lands in the sweep's one results file
with the same resume rules (rys.sweep.runner), so a strategy rerun with the same arguments replays its
decisions from the rows already there instead of scoring them again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from rys import prefix
from rys.sweep import SweepError
from rys.sweep.rank import Ranked, combined_ranking
from rys.sweep.results import Row
from rys.sweep.runner import RunStats, SweepJob, limit_items, reusing_prefix, run_configs, version_rows
from rys.sweep.space import Config


@dataclass
class Search:
    """What a strategy works with: the job (probes = the whole search items), the candidate configs.

    Where the job holds a pool (job.pool), its servers stay up between score() calls: a config of a
    later batch switches the server the baseline's rows are kept on (kept for every candidate's
    prefix), instead of a new server re-scoring the baseline with capture. The pool's owner closes it."""

    job: SweepJob
    candidates: list[Config]
    skip_baseline: bool = False
    stats: RunStats = field(default_factory=RunStats)
    spent: list[tuple[Config, int]] = field(default_factory=list)  # (config, items) asked for, in order

    @property
    def n_items(self) -> int:
        """Items of the smallest probe: what "all items" means for the strategy."""
        return min(len(p.items) for p in self.job.probes)

    def score(self, configs: list[Config], n_items: int | None = None) -> None:
        """Score configs on the first n_items of every probe (all items when None); the baseline is
        scored on all items first, once."""
        if not configs:
            return
        if n_items is None or n_items >= self.n_items:
            job = dataclasses.replace(self.job, extend=self.earlier(configs, self.n_items))
            self.stats.add(run_configs(job, configs, skip_baseline=self.skip_baseline, keep_servers=True,
                                       capture_for=self.candidates))
            self.spent += [(c, self.n_items) for c in configs]
            return
        if not self.skip_baseline:
            # on all items: every rung reads it
            self.stats.add(run_configs(self.job, [], skip_baseline=False, keep_servers=True))
        job = self.job.with_probes([limit_items(p, n_items) for p in self.job.probes])
        job.extend = self.earlier(configs, n_items)
        self.stats.add(run_configs(job, configs, skip_baseline=True, keep_servers=True))
        self.spent += [(c, n_items) for c in configs]

    def earlier(self, configs: list[Config], n_items: int) -> dict:
        """Per config and probe, the items of its largest row on fewer of the first items (an earlier
        rung): scoring on n_items keeps those and scores only the rest."""
        want = {c.key for c in configs}
        firsts = {p.name: {item.id for item in p.items[:n_items]} for p in self.job.probes}
        best: dict = {}
        for r in self.rows():
            if r.path not in want or r.probe not in firsts or r.n_items >= min(n_items, len(firsts[r.probe])):
                continue
            if {str(item["id"]) for item in r.result["items"]} <= firsts[r.probe]:
                held = best.setdefault(r.path, {})
                if r.n_items > len(held.get(r.probe, ())):
                    held[r.probe] = r.result["items"]
        return best

    def cost(self, config: Config) -> int:
        """Layers the config runs per scored token: its path, less the baseline's layers it starts from
        where prefix reuse is on (what the strategy benchmark counts as compute)."""
        layer = prefix.reuse_layer(config.path, self.job.n_layers) if reusing_prefix(self.job) else None
        return len(config.path) - (0 if layer is None else layer + 1)

    def rows(self) -> list[Row]:
        """Every search row of this model and these probe versions, on any number of items."""
        return version_rows(self.job)

    def ranking(self, n_items: int | None = None, among: list[Config] | None = None) -> list[Ranked]:
        """The combined ranking of candidates (or `among`) from their rows on exactly n_items (all items
        when None), so a rerun decides on the same rows as the first run did. No significance marks: a
        strategy decides on deltas, the report judges them."""
        want = {c.key for c in (self.candidates if among is None else among)}
        n = self.n_items if n_items is None else min(n_items, self.n_items)
        rows = [r for r in self.rows() if r.is_baseline or (r.path in want and r.n_items == n)]
        return combined_ranking(rows)


Strategy = Callable[[Search, dict], None]


def _grid(search: Search, options: dict) -> None:
    """Every candidate on every item."""
    search.score(search.candidates)


def _halving(search: Search, options: dict) -> None:
    from rys.sweep.strategy.halving import run

    run(search, options)


def _guided(search: Search, options: dict) -> None:
    from rys.sweep.strategy.guided import run

    run(search, options)


STRATEGIES: dict[str, Strategy] = {"grid": _grid, "halving": _halving, "guided": _guided}


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise SweepError(f"unknown search strategy {name!r}", f"use one of: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]
