"""Pure ranking math over result rows: deltas per probe, z-scored combined ranking (as in RYS), Pareto
front, and the corrected verdicts that every "significant" mark of a sweep reads (family_verdicts)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rys.probes.stats import N_PERM, SignFlip, adjust_pvalues, paired_diffs
from rys.sweep.results import Row

ALPHA = 0.05
# Benjamini-Hochberg: a sweep screens hundreds of configs for the few worth confirming, so the error
# rate to bound is the share of false ones among those marked (FDR), not the chance of any one
# (Holm's FWER, which would leave a real gain unmarked far more often); the held-out confirmation then
# re-tests the top configs on fresh items. Under the global null BH also bounds P(any mark) by alpha.
METHOD = "bh"
MAX_PERM = 100_000


@dataclass(frozen=True)
class Verdict:
    """One config on one probe, judged within the family of every (config, probe) test of the sweep.

    p is the row's own sign-flip permutation p, p_adj its Benjamini-Hochberg adjustment over the family,
    and [ci_low, ci_high] the false-coverage-rate adjusted interval (Benjamini & Yekutieli 2005): the
    same test inverted at level max(R, 1) * alpha / m, R the configs marked, m the family size. A config
    is significant exactly when p_adj < alpha, and exactly then that interval excludes 0.
    """

    delta: float
    ci_low: float | None  # None: an end the items cannot bound at this level
    ci_high: float | None
    p: float
    p_adj: float
    significant: bool
    n_items: int
    level: float  # the alpha the interval was inverted at


def _base_items(base: Row, ids: set[str]) -> list[dict]:
    return [item for item in base.result["items"] if str(item["id"]) in ids]


def family_verdicts(pairs: dict, alpha: float = ALPHA, method: str = METHOD) -> dict:
    """key -> Verdict for a family of (baseline row, config row) pairs, the baseline restricted to the
    items the config row scored (halving scores some configs on the first items only)."""
    if not pairs:
        return {}
    m = len(pairs)
    # enough sign patterns to resolve the smallest level the family can ask for (alpha / m)
    n_perm = min(MAX_PERM, max(N_PERM, math.ceil(10 * m / alpha)))
    tests = {}
    for key, (base, row) in pairs.items():
        items = row.result["items"]
        diffs = paired_diffs(_base_items(base, {str(i["id"]) for i in items}), items)
        tests[key] = SignFlip.of(diffs, n_perm=n_perm)
    keys = list(tests)
    raw = [tests[k].p(0.0) for k in keys]
    adjusted = dict(zip(keys, adjust_pvalues(raw, method)))
    marked = sum(adjusted[k] < alpha for k in keys)
    # the level whose intervals exclude 0 for exactly the BH-marked configs; Holm has no such level,
    # so its intervals are Bonferroni's (alpha / m), which may be wider than its decisions
    level = max(marked, 1) * alpha / m if method == "bh" else alpha / m
    out = {}
    for k, p in zip(keys, raw):
        low, high = tests[k].interval(level)
        out[k] = Verdict(delta=tests[k].mean, ci_low=low, ci_high=high, p=p, p_adj=adjusted[k],
                         significant=adjusted[k] < alpha, n_items=tests[k].n, level=level)
    return out


def verdicts(rows: list[Row], alpha: float = ALPHA, method: str = METHOD) -> dict[str, dict[str, Verdict]]:
    """probe -> path -> Verdict over every scored (config, probe) of the search, one family."""
    table = latest_by_probe(rows)
    pairs = {}
    for probe, by_path in table.items():
        base = next((r for r in by_path.values() if r.is_baseline), None)
        if base is None:
            continue
        for path, row in by_path.items():
            if not row.is_baseline and row.delta:
                pairs[(probe, path)] = (base, row)
    out: dict[str, dict[str, Verdict]] = {}
    for (probe, path), v in family_verdicts(pairs, alpha, method).items():
        out.setdefault(probe, {})[path] = v
    return out


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
    n_items: int = 0  # the fewest items it was scored on over the probes (halving stops configs early)


def zscores(values: list[float]) -> list[float]:
    """(v - mean) / population std; all zeros when every value is the same."""
    if not values:
        return []
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [0.0 if std == 0 else (v - mean) / std for v in values]


def latest_by_probe(rows: list[Row]) -> dict[str, dict[str, Row]]:
    """probe -> path -> the search row scored on the most items (halving stops most configs early); of
    rows with as many items, the later one. Held-out confirmation rows are not search rows."""
    table: dict[str, dict[str, Row]] = {}
    for row in rows:
        if row.stage != "search":
            continue
        by_path = table.setdefault(row.probe, {})
        old = by_path.get(row.path)
        if old is None or row.n_items >= old.n_items:
            by_path[row.path] = row
    return table


def scored_configs(rows: list[Row]) -> dict[str, dict[str, Row]]:
    """probe -> path -> row, keeping only configs (not the baseline) with a delta on every probe."""
    table = latest_by_probe(rows)
    probes = sorted(table)
    paths = [p for p in table[probes[0]]] if probes else []
    keep = [p for p in paths if all(p in table[probe] and table[probe][p].delta for probe in probes)
            and not table[probes[0]][p].is_baseline]
    return {probe: {p: table[probe][p] for p in keep} for probe in probes}


def combined_ranking(rows: list[Row], judged: dict | None = None) -> list[Ranked]:
    """Configs ranked by the sum over probes of z(delta), z taken across all configs of that probe.
    `significant` comes from `judged` (verdicts(rows)); without it every config reads not significant,
    which is what the live table during a sweep needs (it shows no marks)."""
    table = scored_configs(rows)
    if not table:
        return []
    judged = judged or {}
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
            significant={probe: bool(judged.get(probe, {}).get(p) and judged[probe][p].significant)
                         for probe in probes},
            n_items=min(table[probe][p].n_items for probe in probes),
        ))
    # configs scored on more items first: a config halving dropped after a few lucky items never
    # outranks one that held up on all of them
    return sorted(ranked, key=lambda r: (-r.n_items, -r.combined, r.path))


def dominates(a: dict[str, float], b: dict[str, float]) -> bool:
    """a is at least as good as b on every probe and better on one (higher delta is better)."""
    return all(a[k] >= b[k] for k in a) and any(a[k] > b[k] for k in a)


def pareto_front(ranked: list[Ranked]) -> list[Ranked]:
    """Configs no other config beats on every probe at once, in ranking order."""
    return [r for r in ranked if not any(dominates(o.delta, r.delta) for o in ranked if o is not r)]


def top_for_probe(rows: list[Row], probe: str, k: int) -> list[Row]:
    """The k configs with the highest delta on one probe (baseline excluded), most items first."""
    table = latest_by_probe(rows).get(probe, {})
    scored = [r for r in table.values() if r.delta and not r.is_baseline]
    return sorted(scored, key=lambda r: (-r.n_items, -r.delta["delta"], r.path))[:k]
