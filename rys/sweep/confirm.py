"""Held-out confirmation: the search's top configs and the baseline re-scored on items it never saw.

A sweep picks its winners on the items it ranks them by, so their deltas there are biased upwards (the
winner's curse). The held-out items are fixed before the search starts:

- a probe made by a rys generator (the built-in sets, `rys probes generate` files) gets fresh items from
  the same generator under another seed, with every prompt the search set holds left out;
- any other probe file is split once, by a hash of each item id: a share of its items is set aside and
  the search runs on the rest.

The confirmation rows go into the same results file (stage "confirm"), so they resume like every other
row. A config is confirmed on a probe when its held-out delta is positive and significant within the
family of every held-out test (Benjamini-Hochberg, as the search, rys.sweep.rank).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from rys.probes.sets import ProbeSet, parse_probe
from rys.sweep import SweepError
from rys.sweep.rank import ALPHA, Verdict, family_verdicts
from rys.sweep.results import Row

HOLDOUT_SEED_OFFSET = 1_000_003  # fresh items: the generator's seed plus this (never a built-in seed)
MIN_HOLDOUT = 8  # fewer held-out items cannot reject anything useful: confirmation is then skipped


@dataclass(frozen=True)
class Plan:
    """The search probes and, per probe, its held-out items (None: that probe cannot be confirmed)."""

    search: list[ProbeSet]
    held_out: dict[str, ProbeSet | None]
    notes: list[str]


def _generator_of(probe: ProbeSet) -> dict | None:
    if not probe.source or not Path(probe.source).is_file():
        return None
    try:
        data = json.loads(Path(probe.source).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    gen = data.get("generator") if isinstance(data, dict) else None
    return gen if isinstance(gen, dict) and "name" in gen else None


def fresh_items(probe: ProbeSet, n: int, generator: dict, seed: int | None = None) -> ProbeSet:
    """n new items from the probe's generator under another seed; prompts the probe holds are left out."""
    from rys.probes.generators import generate

    seen = {item.prompt for item in probe.items}
    seed = int(generator.get("seed", 0)) + HOLDOUT_SEED_OFFSET if seed is None else seed
    data = generate(generator["name"], max(2 * n, n + 16), seed=seed)
    kept, prompts = [], set()
    for item in data["items"]:
        if item["prompt"] in seen or item["prompt"] in prompts:
            continue  # an item the search saw, or a repeat within the new ones
        prompts.add(item["prompt"])
        kept.append(dict(item, id=f"heldout-{item['id']}"))
    data = dict(data, name=probe.name, items=kept[:n])
    data["generator"] = dict(data["generator"], held_out_of=probe.sha256)
    return dataclasses.replace(parse_probe(data, source=f"{probe.source} (held-out, seed {seed})"),
                               name=probe.name)


def _bucket(item_id: str, seed: int) -> float:
    digest = hashlib.sha256(f"rys-holdout:{seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def split(probe: ProbeSet, fraction: float, seed: int = 0) -> tuple[ProbeSet, ProbeSet]:
    """(search, held-out) parts of a probe file: an item is held out when a hash of its id falls below
    `fraction`, so the split never depends on item order and stays the same between runs."""
    held = tuple(item for item in probe.items if _bucket(item.id, seed) < fraction)
    rest = tuple(item for item in probe.items if _bucket(item.id, seed) >= fraction)
    tag = f"{probe.sha256}:split:{fraction}:{seed}"
    search = dataclasses.replace(probe, items=rest, sha256=hashlib.sha256(f"{tag}:search".encode()).hexdigest())
    heldout = dataclasses.replace(probe, items=held, sha256=hashlib.sha256(f"{tag}:held-out".encode()).hexdigest())
    return search, heldout


def plan(probes: list[ProbeSet], limit: int | None, confirm_items: int | None, fraction: float,
         seed: int = 0, enabled: bool = True) -> Plan:
    """Decide the held-out items of every probe before the search starts. `probes` are the whole sets
    (before --limit); the search gets the first `limit` items of what is not held out."""
    from rys.sweep.runner import limit_items

    if not 0 < fraction < 1:
        raise SweepError(f"--holdout must be a fraction between 0 and 1, got {fraction}", "use e.g. --holdout 0.25")
    search, held, notes = [], {}, []
    for probe in probes:
        if not enabled:
            search.append(limit_items(probe, limit))
            held[probe.name] = None
            continue
        generator = _generator_of(probe)
        if generator is not None:
            part = limit_items(probe, limit)
            n = confirm_items or len(part.items)
            held[probe.name] = fresh_items(probe, n, generator)
            search.append(part)
            continue
        rest, out = split(probe, fraction, seed)
        if confirm_items:
            out = dataclasses.replace(out, items=out.items[:confirm_items])
        if len(out.items) < MIN_HOLDOUT or not rest.items:
            notes.append(f"{probe.name}: {len(probe.items)} items leave {len(out.items)} to hold out "
                         f"(at least {MIN_HOLDOUT} needed); its winners stay unconfirmed")
            search.append(limit_items(probe, limit))
            held[probe.name] = None
            continue
        search.append(limit_items(rest, limit))
        held[probe.name] = out
    return Plan(search, held, notes)


# -- reading the confirmation back ---------------------------------------------------------------------

def confirm_rows(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.stage == "confirm"]


@dataclass(frozen=True)
class Confirmation:
    """One config on one probe: its search delta and what the held-out items say."""

    path: str
    config: str
    probe: str
    search_delta: float | None
    held_out: Verdict

    @property
    def confirmed(self) -> bool:
        return self.held_out.significant and self.held_out.delta > 0


def confirmations(rows: list[Row], alpha: float = ALPHA) -> list[Confirmation]:
    """Every held-out (config, probe) result, judged as one family; search order kept by the caller."""
    from rys.sweep.rank import latest_by_probe

    held = confirm_rows(rows)
    search = latest_by_probe(rows)
    pairs = {}
    for probe in sorted({r.probe for r in held}):
        mine = [r for r in held if r.probe == probe]
        base = next((r for r in reversed(mine) if r.is_baseline), None)
        if base is None:
            continue
        latest: dict[str, Row] = {}
        for r in mine:
            if not r.is_baseline and r.probe_sha256 == base.probe_sha256:
                latest[r.path] = r
        for path, r in latest.items():
            pairs[(probe, path)] = (base, r)
    judged = family_verdicts(pairs, alpha)
    out = []
    for (probe, path), verdict in judged.items():
        row = pairs[(probe, path)][1]
        s = search.get(probe, {}).get(path)
        out.append(Confirmation(path, row.config, probe, s.delta["delta"] if s and s.delta else None, verdict))
    return out


def by_config(confs: list[Confirmation]) -> dict[str, dict[str, Confirmation]]:
    table: dict[str, dict[str, Confirmation]] = {}
    for c in confs:
        table.setdefault(c.path, {})[c.probe] = c
    return table


def confirmed_best(rows: list[Row], alpha: float = ALPHA) -> str | None:
    """The path of the best confirmed config: confirmed on the most probes, with no probe where it is
    significantly worse on held-out items, then the largest sum of held-out deltas. None if none."""
    table = by_config(confirmations(rows, alpha))
    scored = []
    for path, per_probe in table.items():
        wins = sum(c.confirmed for c in per_probe.values())
        harm = any(c.held_out.significant and c.held_out.delta < 0 for c in per_probe.values())
        if wins and not harm:
            scored.append((-wins, -sum(c.held_out.delta for c in per_probe.values()), path))
    return min(scored)[2] if scored else None


# -- running it ----------------------------------------------------------------------------------------

def top_configs(rows: list[Row], k: int) -> list:
    """The top k configs of the search's combined ranking, as configs to score again."""
    from rys import paths as layer_paths
    from rys.sweep.rank import combined_ranking, latest_by_probe
    from rys.sweep.space import Config

    table = latest_by_probe(rows)
    out = []
    for ranked in combined_ranking(rows)[:k]:
        row = next(by_path[ranked.path] for by_path in table.values() if ranked.path in by_path)
        out.append(Config(tuple(layer_paths.parse_path(row.path)), i=row.i, j=row.j, times=row.times,
                          interleaved=row.interleaved))
    return out


def run_confirmation(job, held_out: dict[str, ProbeSet | None], k: int):
    """Score the baseline and the search's top k configs on the held-out items (resumable: rows already
    in the results file are skipped). Returns the run's RunStats, or None when nothing can be confirmed."""
    from rys.sweep.rank import latest_by_probe
    from rys.sweep.runner import run_configs, version_rows

    probes = [p for p in job.probes if held_out.get(p.name) is not None]
    if k < 1 or not probes:
        return None
    rows = version_rows(job)
    configs = top_configs(rows, k)
    if not configs:
        return None
    confirm_job = job.with_probes([held_out[p.name] for p in probes], stage="confirm")
    table = latest_by_probe(rows)
    confirm_job.search_deltas = {c.key: {probe: by_path[c.key].delta["delta"] for probe, by_path in table.items()
                                         if c.key in by_path and by_path[c.key].delta}
                                 for c in configs}
    job.log(f"held-out confirmation: baseline and top {len(configs)} on "
            + ", ".join(f"{held_out[p.name].name} ({len(held_out[p.name].items)} new items)" for p in probes))
    return run_configs(confirm_job, configs)
