"""Everything a sweep shows, rebuilt from its results file alone: heatmaps, rankings, Pareto front, summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rys.outputs import save_text
from rys.sweep import SweepError
from rys.sweep.confirm import by_config, confirmations, confirmed_best
from rys.sweep.heatmap import build_grid, write_html, write_png
from rys.sweep.rank import (
    ALPHA,
    Ranked,
    Verdict,
    combined_ranking,
    latest_by_probe,
    pareto_front,
    top_for_probe,
    verdicts,
)
from rys.sweep.results import Row, current_rows, read_failures, read_rows


@dataclass
class Report:
    summary: str
    files: list[Path] = field(default_factory=list)


def _end(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:+.3f}"


def _ci(v: Verdict) -> str:
    return f"[{_end(v.ci_low)}, {_end(v.ci_high)}]"


def _items_line(rows: list[Row]) -> str | None:
    """How many configs were scored on how many items (halving stops most of them early)."""
    counts: dict[int, int] = {}
    for by_path in latest_by_probe(rows).values():
        for r in by_path.values():
            if not r.is_baseline:
                counts[r.n_items] = counts.get(r.n_items, 0) + 1
    if len(counts) < 2:
        return None
    return "items scored per (config, probe): " + ", ".join(f"{n} items: {c}" for n, c in sorted(counts.items(), reverse=True))


def _ranked_line(rank: int, r: Ranked, probes: list[str]) -> str:
    parts = "  ".join(f"{p} {r.delta[p]:+.4f}{'*' if r.significant[p] else ' '} (z {r.z[p]:+.2f})" for p in probes)
    return f"{rank:>3}. {r.config:<14} z-sum {r.combined:+.2f}  {parts}  path {r.path}"


def summary_text(rows: list[Row], failures: int, top_k: int = 10) -> str:
    """The final text summary: baseline per probe, top configs per probe, combined ranking, Pareto front,
    held-out confirmation."""
    table = latest_by_probe(rows)
    judged = verdicts(rows)
    probes = sorted(table)
    n_configs = len({r.path for by_path in table.values() for r in by_path.values() if not r.is_baseline})
    base_note = " and the baseline" if any(r.is_baseline for by_path in table.values() for r in by_path.values()) else ""
    family = sum(len(v) for v in judged.values())
    marked = sum(v.significant for per in judged.values() for v in per.values())
    lines = [f"{n_configs} configs{base_note} scored on {len(probes)} probe(s): {', '.join(probes)}"
             + (f"; {failures} failure record(s) (see the .failures.jsonl file)" if failures else "")]
    if family:
        level = next(iter(next(iter(judged.values())).values())).level
        lines.append(f"significant = Benjamini-Hochberg FDR {ALPHA:g} over all {family} (config, probe) tests: "
                     f"{marked} marked; intervals are {100 * (1 - level):.4g}% (false-coverage adjusted)")
    more = _items_line(rows)
    if more:
        lines.append(more)
    for probe in probes:
        base = [r for r in table[probe].values() if r.is_baseline]
        lines.append("")
        if base:
            b = base[0]
            lines.append(f"[{probe}] baseline score {b.score:.4f} over {b.n_items} items"
                         + (f", coverage {b.coverage:.3f}" if b.coverage is not None else ""))
        else:
            lines.append(f"[{probe}] no baseline row: deltas are unavailable (run without --skip-baseline)")
        for rank, r in enumerate(top_for_probe(rows, probe, top_k), 1):
            v = judged.get(probe, {}).get(r.path)
            if v is None:
                continue
            mark = "significant" if v.significant else "not significant"
            lines.append(f"{rank:>3}. {r.config:<14} score {r.score:.4f}  delta {v.delta:+.4f} "
                         f"{_ci(v)}  {mark} (p {v.p:.2g}, adjusted {v.p_adj:.2g}, {v.n_items} items)  path {r.path}")
    ranked = combined_ranking(rows, judged)
    if len(probes) > 1 and ranked:
        lines += ["", "Combined ranking (sum of z-scored deltas; * = significant vs baseline):"]
        lines += [_ranked_line(k, r, probes) for k, r in enumerate(ranked[:top_k], 1)]
        lines += ["", "Pareto front (no config beats these on every probe):"]
        lines += [_ranked_line(k, r, probes) for k, r in enumerate(pareto_front(ranked), 1)]
    lines += confirmation_lines(rows)
    return "\n".join(lines)


def confirmation_lines(rows: list[Row]) -> list[str]:
    """Search delta and held-out delta side by side for the configs the confirmation re-scored."""
    confs = confirmations(rows)
    if not confs:
        return ["", "Held-out confirmation: none in these results (the search's best is unconfirmed)"]
    n_items = {c.probe: c.held_out.n_items for c in confs}
    lines = ["", "Held-out confirmation (items the search never saw: "
             + ", ".join(f"{p} {n}" for p, n in sorted(n_items.items()))
             + f"; significant = BH FDR {ALPHA:g} over these {len(confs)} tests):"]
    order = {r.path: k for k, r in enumerate(combined_ranking(rows))}
    for path, per_probe in sorted(by_config(confs).items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])):
        parts = []
        for probe, c in sorted(per_probe.items()):
            search = "n/a" if c.search_delta is None else f"{c.search_delta:+.4f}"
            h = c.held_out
            verdict = "confirmed" if c.confirmed else "worse" if h.significant else "not confirmed"
            parts.append(f"{probe} search {search} -> held-out {h.delta:+.4f} {_ci(h)} {verdict} "
                         f"(adjusted p {h.p_adj:.2g})")
        config = next(iter(per_probe.values())).config
        lines.append(f"  {config:<14} " + "; ".join(parts) + f"  path {path}")
    best = confirmed_best(rows)
    label = next((c.config for c in confs if c.path == best), None)
    lines.append(f"confirmed best: {label} (path {best})" if best else
                 "confirmed best: none; no config held up on the held-out items (rys export --config best refuses)")
    return lines


def ranking_text(rows: list[Row]) -> str:
    """Every config in combined-ranking order, one line each, tab-separated for spreadsheets and grep."""
    judged = verdicts(rows)
    ranked = combined_ranking(rows, judged)
    probes = sorted(latest_by_probe(rows))
    table = latest_by_probe(rows)
    held = by_config(confirmations(rows))
    head = ["rank", "config", "i", "j", "z_sum"]
    for p in probes:
        head += [f"{p}:score", f"{p}:items", f"{p}:delta", f"{p}:ci_low", f"{p}:ci_high", f"{p}:p",
                 f"{p}:p_adjusted", f"{p}:significant", f"{p}:heldout_delta", f"{p}:heldout_p_adjusted",
                 f"{p}:confirmed"]
    lines = ["\t".join(head + ["path"])]
    for k, r in enumerate(ranked, 1):
        cells = [str(k), r.config, "" if r.i is None else str(r.i), "" if r.j is None else str(r.j),
                 f"{r.combined:+.4f}"]
        for p in probes:
            row = table[p][r.path]
            v = judged.get(p, {}).get(r.path)
            c = held.get(r.path, {}).get(p)
            cells += [f"{row.score:.4f}", str(row.n_items), f"{r.delta[p]:+.4f}",
                      _num(v and v.ci_low), _num(v and v.ci_high), _num(v and v.p), _num(v and v.p_adj),
                      "yes" if r.significant[p] else "no",
                      _num(c and c.held_out.delta), _num(c and c.held_out.p_adj),
                      "" if c is None else "yes" if c.confirmed else "no"]
        lines.append("\t".join(cells + [r.path]))
    return "\n".join(lines)


def _num(value) -> str:
    return "" if value is None else f"{value:.4f}"


def _group_name(probe: str, times: int, interleaved: bool) -> str:
    return probe + ("" if times == 2 else f".x{times}") + (".interleaved" if interleaved else "")


def write_report(results: Path, out_dir: Path | None = None, top_k: int = 5, html: bool = True) -> Report:
    """Heatmaps per probe (and per repeat count), ranking.tsv, summary.txt; nothing is rerun."""
    results = Path(results)
    rows = current_rows(read_rows(results))
    if not rows:
        raise SweepError(f"{results} holds no scored rows yet", "let `rys sweep` score at least one config")
    out_dir = Path(out_dir) if out_dir else results.with_name(results.stem + "-report")
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    model = Path(rows[0].provenance.get("model", "model")).name
    groups: dict[tuple, list[Row]] = {}
    for probe, by_path in latest_by_probe(rows).items():
        for r in by_path.values():
            if r.i is not None and r.times > 1 and r.delta:
                groups.setdefault((probe, r.times, r.interleaved), []).append(r)
    judged = verdicts(rows)
    held = by_config(confirmations(rows))
    for (probe, times, interleaved), group in sorted(groups.items()):
        name = _group_name(probe, times, interleaved)
        grid = build_grid(group, f"{model}: {name} delta vs baseline", top_k, judged.get(probe, {}),
                          {path: per[probe] for path, per in held.items() if probe in per})
        files.append(write_png(grid, out_dir / f"heatmap.{name}.png"))
        if html:
            files.append(write_html(grid, out_dir / f"heatmap.{name}.html"))
    files.append(save_text(ranking_text(rows) + "\n", out_dir / "ranking.tsv"))
    text = summary_text(rows, len(read_failures(results)), top_k=max(top_k, 10))
    files.append(save_text(text + "\n", out_dir / "summary.txt"))
    return Report(text, files)
