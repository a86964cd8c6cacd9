"""Pure ranking math over result rows: deltas per probe, z-scored combined ranking (as in RYS), Pareto front."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rys.sweep.results import Row


@dataclass
class Ranked:
    path: str
    config: str
    i: int | None
    j: int | None
    combined: float  # sum over probes of the z-scored delta
    delta: dict[str, float]  # per probe
    z: dict[str, float]
    significant: dict[str, bool]


def significant(delta: dict | None) -> bool:
    """The paired test's verdict when the row has one (rys.probes.stats.Delta), else: the CI excludes 0."""
    if not delta:
        return False
    if "significant" in delta:
        return bool(delta["significant"])
    if delta.get("ci_low") is None or delta.get("ci_high") is None:
        return False
    return delta["ci_low"] > 0 or delta["ci_high"] < 0


def zscores(values: list[float]) -> list[float]:
    """(v - mean) / population std; all zeros when every value is the same."""
    if not values:
        return []
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [0.0 if std == 0 else (v - mean) / std for v in values]


def latest_by_probe(rows: list[Row]) -> dict[str, dict[str, Row]]:
    """probe -> path -> row; a later row for the same (probe, path) replaces an earlier one."""
    table: dict[str, dict[str, Row]] = {}
    for row in rows:
        table.setdefault(row.probe, {})[row.path] = row
    return table


def scored_configs(rows: list[Row]) -> dict[str, dict[str, Row]]:
    """probe -> path -> row, keeping only configs (not the baseline) with a delta on every probe."""
    table = latest_by_probe(rows)
    probes = sorted(table)
    paths = [p for p in table[probes[0]]] if probes else []
    keep = [p for p in paths if all(p in table[probe] and table[probe][p].delta for probe in probes)
            and not table[probes[0]][p].is_baseline]
    return {probe: {p: table[probe][p] for p in keep} for probe in probes}


def combined_ranking(rows: list[Row]) -> list[Ranked]:
    """Configs ranked by the sum over probes of z(delta), z taken across all configs of that probe."""
    table = scored_configs(rows)
    if not table:
        return []
    probes = sorted(table)
    paths = list(table[probes[0]])
    z_by_probe = {probe: dict(zip(paths, zscores([table[probe][p].delta["delta"] for p in paths])))
                  for probe in probes}
    ranked = []
    for p in paths:
        first = table[probes[0]][p]
        ranked.append(Ranked(
            path=p, config=first.config, i=first.i, j=first.j,
            combined=sum(z_by_probe[probe][p] for probe in probes),
            delta={probe: table[probe][p].delta["delta"] for probe in probes},
            z={probe: z_by_probe[probe][p] for probe in probes},
            significant={probe: significant(table[probe][p].delta) for probe in probes},
        ))
    return sorted(ranked, key=lambda r: (-r.combined, r.path))


def dominates(a: dict[str, float], b: dict[str, float]) -> bool:
    """a is at least as good as b on every probe and better on one (higher delta is better)."""
    return all(a[k] >= b[k] for k in a) and any(a[k] > b[k] for k in a)


def pareto_front(ranked: list[Ranked]) -> list[Ranked]:
    """Configs no other config beats on every probe at once, in ranking order."""
    return [r for r in ranked if not any(dominates(o.delta, r.delta) for o in ranked if o is not r)]


def top_for_probe(rows: list[Row], probe: str, k: int) -> list[Row]:
    """The k configs with the highest delta on one probe (baseline excluded)."""
    table = latest_by_probe(rows).get(probe, {})
    scored = [r for r in table.values() if r.delta and not r.is_baseline]
    return sorted(scored, key=lambda r: (-r.delta["delta"], r.path))[:k]
