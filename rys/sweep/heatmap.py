"""RYS heatmaps: x = j, y = i, colour = delta vs baseline on a diverging scale centred at 0.

Top-k cells carry a star and their rank; cells not significantly different from the baseline after the
sweep's multiple-comparison correction (rys.sweep.rank.verdicts) are hatched (PNG) or crossed (HTML);
configs re-scored on held-out items get a ring: green when confirmed there, grey when not. The HTML
embeds plotly.js so it opens offline. Both are written to a temp name, then renamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rys.outputs import save_plotly_html, save_png
from rys.sweep.results import Row


@dataclass
class Grid:
    title: str
    i_values: list[int]  # y axis
    j_values: list[int]  # x axis
    delta: np.ndarray  # [len(i_values), len(j_values)], NaN where no config
    significant: np.ndarray  # bool, same shape
    hover: list[list[str]]
    top: list[tuple[int, int]]  # (i, j) of the top-k, best first
    confirmed: dict = None  # (i, j) -> True/False for the configs re-scored on held-out items


def build_grid(rows: list[Row], title: str, top_k: int = 5, judged: dict | None = None,
               held: dict | None = None) -> Grid:
    """Rows of one probe and one repeat count that have (i, j) and a delta; the baseline is left out.
    judged: path -> rys.sweep.rank.Verdict (the corrected marks); held: path -> Confirmation."""
    judged, held = judged or {}, held or {}
    cells = {(r.i, r.j): r for r in rows if r.i is not None and r.times > 1 and r.delta}
    if not cells:
        raise ValueError("no (i, j) rows with a delta to plot")
    i_values = list(range(min(i for i, _ in cells), max(i for i, _ in cells) + 1))
    j_values = list(range(min(j for _, j in cells), max(j for _, j in cells) + 1))
    delta = np.full((len(i_values), len(j_values)), np.nan)
    sig = np.zeros_like(delta, dtype=bool)
    hover = [["" for _ in j_values] for _ in i_values]
    confirmed = {}
    for (i, j), row in cells.items():
        y, x = i - i_values[0], j - j_values[0]
        v = judged.get(row.path)
        delta[y, x] = row.delta["delta"]
        sig[y, x] = bool(v and v.significant)
        coverage = "n/a" if row.coverage is None else f"{row.coverage:.3f}"
        text = (f"{row.config}  path {row.path}<br>score {row.score:.4f}  delta {row.delta['delta']:+.4f}"
                + (f" [{_fmt(v.ci_low)}, {_fmt(v.ci_high)}]<br>p {_fmt(v.p)}  adjusted {_fmt(v.p_adj)}" if v else "")
                + f"  coverage {coverage}  items {row.n_items}")
        c = held.get(row.path)
        if c is not None:
            confirmed[(i, j)] = c.confirmed
            text += (f"<br>held-out delta {c.held_out.delta:+.4f} [{_fmt(c.held_out.ci_low)}, "
                     f"{_fmt(c.held_out.ci_high)}] {'confirmed' if c.confirmed else 'not confirmed'}")
        hover[y][x] = text
    top = sorted(cells, key=lambda ij: (-cells[ij].n_items, -cells[ij].delta["delta"], ij))[:top_k]
    return Grid(title, i_values, j_values, delta, sig, hover, top, confirmed)


def _fmt(value) -> str:
    return "unbounded" if value is None else f"{value:+.4f}" if abs(value) < 10 else f"{value:.3g}"


def _limit(grid: Grid) -> float:
    finite = np.abs(grid.delta[np.isfinite(grid.delta)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def png_figure(grid: Grid):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Rectangle

    limit = _limit(grid)
    width = min(16, 3 + 0.35 * len(grid.j_values))
    height = min(14, 2.5 + 0.3 * len(grid.i_values))
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    x0, y0 = grid.j_values[0], grid.i_values[0]
    extent = (x0 - 0.5, grid.j_values[-1] + 0.5, y0 - 0.5, grid.i_values[-1] + 0.5)
    image = ax.imshow(np.ma.masked_invalid(grid.delta), cmap="RdBu", vmin=-limit, vmax=limit,
                      origin="lower", extent=extent, aspect="auto", interpolation="nearest")
    for y, i in enumerate(grid.i_values):
        for x, j in enumerate(grid.j_values):
            if np.isfinite(grid.delta[y, x]) and not grid.significant[y, x]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                       edgecolor="0.55", linewidth=0))
    for rank, (i, j) in enumerate(grid.top, 1):
        ax.plot(j, i, marker="*", markersize=13, color="gold", markeredgecolor="black")
        ax.annotate(str(rank), (j, i), xytext=(6, 5), textcoords="offset points", fontsize=8, weight="bold")
    for (i, j), ok in (grid.confirmed or {}).items():
        ax.plot(j, i, marker="o", markersize=19, markerfacecolor="none", markeredgewidth=2,
                markeredgecolor="#2e7d32" if ok else "0.4")
    ax.set_xlabel("j (block end, exclusive)")
    ax.set_ylabel("i (block start)")
    note = "hatched: not significant (BH-corrected);  stars: top configs"
    if grid.confirmed:
        note += ";  rings: held-out check (green = confirmed)"
    ax.set_title(grid.title + "\n" + note, fontsize=10)
    fig.colorbar(image, ax=ax, label="delta vs baseline")
    fig.tight_layout()
    return fig


def write_png(grid: Grid, out: Path) -> Path:

    fig = png_figure(grid)
    return save_png(fig, out)


def html_figure(grid: Grid):
    import plotly.graph_objects as go

    limit = _limit(grid)
    z = [[None if not np.isfinite(v) else float(v) for v in row] for row in grid.delta]
    fig = go.Figure(go.Heatmap(
        x=grid.j_values, y=grid.i_values, z=z, text=grid.hover, hoverinfo="text",
        colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit, colorbar={"title": "delta"}))
    weak = [(j, i) for y, i in enumerate(grid.i_values) for x, j in enumerate(grid.j_values)
            if np.isfinite(grid.delta[y, x]) and not grid.significant[y, x]]
    if weak:
        fig.add_trace(go.Scatter(x=[p[0] for p in weak], y=[p[1] for p in weak], mode="markers",
                                 marker={"symbol": "x-thin", "size": 9, "line": {"width": 1, "color": "grey"}},
                                 name="not significant (BH-corrected)", hoverinfo="skip"))
    for ok in (True, False):
        ring = [ij for ij, c in (grid.confirmed or {}).items() if c == ok]
        if ring:
            fig.add_trace(go.Scatter(x=[j for _, j in ring], y=[i for i, _ in ring], mode="markers",
                                     marker={"symbol": "circle-open", "size": 22, "line": {"width": 2},
                                             "color": "#2e7d32" if ok else "grey"},
                                     name="confirmed on held-out items" if ok else "not confirmed on held-out items",
                                     hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[j for _, j in grid.top], y=[i for i, _ in grid.top], mode="markers+text",
                             text=[str(k) for k in range(1, len(grid.top) + 1)], textposition="top right",
                             marker={"symbol": "star", "size": 14, "color": "gold", "line": {"width": 1}},
                             name="top configs", hoverinfo="skip"))
    fig.update_layout(title=grid.title, xaxis_title="j (block end, exclusive)", yaxis_title="i (block start)",
                      legend={"orientation": "h", "y": -0.15}, template="plotly_white")
    return fig


def write_html(grid: Grid, out: Path) -> Path:
    return save_plotly_html(html_figure(grid), out)


