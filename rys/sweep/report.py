"""Everything a sweep shows, rebuilt from its results file alone: heatmaps, rankings, Pareto front, summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rys.outputs import save_text
from rys.sweep import SweepError
from rys.sweep.heatmap import build_grid, write_html, write_png
from rys.sweep.rank import Ranked, combined_ranking, latest_by_probe, pareto_front, significant, top_for_probe
from rys.sweep.results import Row, current_rows, read_failures, read_rows


@dataclass
class Report:
    summary: str
    files: list[Path] = field(default_factory=list)


def _ci(d: dict) -> str:
    if d.get("ci_low") is None:
        return ""
    return f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"


def _ranked_line(rank: int, r: Ranked, probes: list[str]) -> str:
    parts = "  ".join(f"{p} {r.delta[p]:+.4f}{'*' if r.significant[p] else ' '} (z {r.z[p]:+.2f})" for p in probes)
    return f"{rank:>3}. {r.config:<14} z-sum {r.combined:+.2f}  {parts}  path {r.path}"


def summary_text(rows: list[Row], failures: int, top_k: int = 10) -> str:
    """The final text summary: baseline per probe, top configs per probe, combined ranking, Pareto front."""
    table = latest_by_probe(rows)
    probes = sorted(table)
    n_configs = len({r.path for r in rows if not r.is_baseline})
    base_note = " and the baseline" if any(r.is_baseline for r in rows) else ""
    lines = [f"{n_configs} configs{base_note} scored on {len(probes)} probe(s): {', '.join(probes)}"
             + (f"; {failures} failure record(s) (see the .failures.jsonl file)" if failures else "")]
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
            mark = "significant" if significant(r.delta) else "not significant"
            lines.append(f"{rank:>3}. {r.config:<14} score {r.score:.4f}  delta {r.delta['delta']:+.4f} "
                         f"{_ci(r.delta)}  {mark}  path {r.path}")
    ranked = combined_ranking(rows)
    if len(probes) > 1 and ranked:
        lines += ["", "Combined ranking (sum of z-scored deltas; * = significant vs baseline):"]
        lines += [_ranked_line(k, r, probes) for k, r in enumerate(ranked[:top_k], 1)]
        lines += ["", "Pareto front (no config beats these on every probe):"]
        lines += [_ranked_line(k, r, probes) for k, r in enumerate(pareto_front(ranked), 1)]
    return "\n".join(lines)


def ranking_text(rows: list[Row]) -> str:
    """Every config in combined-ranking order, one line each, tab-separated for spreadsheets and grep."""
    ranked = combined_ranking(rows)
    probes = sorted(latest_by_probe(rows))
    table = latest_by_probe(rows)
    head = ["rank", "config", "i", "j", "z_sum"]
    for p in probes:
        head += [f"{p}:score", f"{p}:delta", f"{p}:ci_low", f"{p}:ci_high", f"{p}:p", f"{p}:significant"]
    lines = ["\t".join(head + ["path"])]
    for k, r in enumerate(ranked, 1):
        cells = [str(k), r.config, "" if r.i is None else str(r.i), "" if r.j is None else str(r.j),
                 f"{r.combined:+.4f}"]
        for p in probes:
            row = table[p][r.path]
            d = row.delta
            cells += [f"{row.score:.4f}", f"{d['delta']:+.4f}", _num(d.get("ci_low")), _num(d.get("ci_high")),
                      _num(d.get("p")), "yes" if r.significant[p] else "no"]
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
    for (probe, times, interleaved), group in sorted(groups.items()):
        name = _group_name(probe, times, interleaved)
        grid = build_grid(group, f"{model}: {name} delta vs baseline", top_k)
        files.append(write_png(grid, out_dir / f"heatmap.{name}.png"))
        if html:
            files.append(write_html(grid, out_dir / f"heatmap.{name}.html"))
    files.append(save_text(ranking_text(rows) + "\n", out_dir / "ranking.tsv"))
    text = summary_text(rows, len(read_failures(results)), top_k=max(top_k, 10))
    files.append(save_text(text + "\n", out_dir / "summary.txt"))
    return Report(text, files)
