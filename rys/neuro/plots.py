"""Charts of the neuro reports: one Chart description, drawn as interactive plotly HTML and as a PNG.

HTML pages embed plotly.js once so they open offline. Files are written to a temp name, then renamed.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rys.outputs import save_png, save_text


@dataclass
class Chart:
    kind: str  # "bar" | "heatmap" | "lines"
    title: str
    x: list
    xlabel: str
    ylabel: str
    y: list | None = None  # bar heights; heatmap row labels
    z: list[list[float | None]] | None = None  # heatmap cells [len(y)][len(x)]
    series: dict[str, list[float | None]] = field(default_factory=dict)  # lines: name -> values over x
    err_low: list[float] | None = None  # bar error bars (absolute values, not offsets)
    err_high: list[float] | None = None
    colors: list[str] | None = None  # per bar
    diverging: bool = False  # heatmap colours centred at 0
    zlabel: str = ""
    legend: dict[str, str] | None = None  # bar colours explained: name -> colour


def _limit(z) -> float:
    values = np.array([[np.nan if v is None else v for v in row] for row in z], dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def plotly_figure(chart: Chart):
    import plotly.graph_objects as go

    fig = go.Figure()
    if chart.kind == "bar":
        error = None
        if chart.err_low is not None:
            error = {"type": "data", "symmetric": False,
                     "array": [h - v for h, v in zip(chart.err_high, chart.y)],
                     "arrayminus": [v - lo for lo, v in zip(chart.err_low, chart.y)]}
        fig.add_trace(go.Bar(x=chart.x, y=chart.y, error_y=error, marker_color=chart.colors, showlegend=False))
        for name, color in (chart.legend or {}).items():  # empty traces: only their legend entries show
            fig.add_trace(go.Bar(x=[None], y=[None], marker_color=color, name=name))
    elif chart.kind == "heatmap":
        scale = {"colorscale": "RdBu", "zmid": 0, "zmin": -_limit(chart.z), "zmax": _limit(chart.z)} \
            if chart.diverging else {"colorscale": "Viridis"}
        fig.add_trace(go.Heatmap(x=chart.x, y=chart.y, z=chart.z, colorbar={"title": chart.zlabel}, **scale))
    else:
        for name, values in chart.series.items():
            # connectgaps: series on a shared axis (maps of models with different depths) have holes
            fig.add_trace(go.Scatter(x=chart.x, y=values, mode="lines+markers", name=name, connectgaps=True))
    fig.update_layout(title=chart.title, xaxis_title=chart.xlabel, yaxis_title=chart.ylabel,
                      template="plotly_white", height=420)
    return fig




def write_png(chart: Chart, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, min(16.0, 2 + 0.3 * len(chart.x))), 4.5), dpi=100)
    if chart.kind == "bar":
        yerr = None
        if chart.err_low is not None:
            yerr = [[v - lo for lo, v in zip(chart.err_low, chart.y)], [h - v for h, v in zip(chart.err_high, chart.y)]]
        ax.bar([str(x) for x in chart.x], chart.y, yerr=yerr, color=chart.colors, capsize=2)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.tick_params(axis="x", labelsize=7, rotation=90 if len(chart.x) > 40 else 0)
        if chart.legend:
            from matplotlib.patches import Patch

            ax.legend(handles=[Patch(color=c, label=n) for n, c in chart.legend.items()], fontsize=8,
                      ncol=min(6, len(chart.legend)), loc="upper center", bbox_to_anchor=(0.5, -0.14),
                      frameon=False)
    elif chart.kind == "heatmap":
        z = np.array([[np.nan if v is None else v for v in row] for row in chart.z], dtype=float)
        limit = _limit(chart.z)
        image = ax.imshow(np.ma.masked_invalid(z), aspect="auto", origin="lower", interpolation="nearest",
                          cmap="RdBu" if chart.diverging else "viridis",
                          vmin=-limit if chart.diverging else None, vmax=limit if chart.diverging else None)
        ax.set_xticks(range(len(chart.x)), [str(x) for x in chart.x], fontsize=7)
        ax.set_yticks(range(len(chart.y)), [str(y) for y in chart.y], fontsize=7)
        fig.colorbar(image, ax=ax, label=chart.zlabel)
    else:
        for name, values in chart.series.items():
            points = [(x, v) for x, v in zip(chart.x, values) if v is not None]  # one line across holes
            ax.plot([x for x, _ in points], [v for _, v in points], marker=".", label=name)
        ax.legend(fontsize=8)
    ax.set_xlabel(chart.xlabel)
    ax.set_ylabel(chart.ylabel)
    ax.set_title(chart.title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, out)


def write_html(title: str, sections: list[tuple[str, Chart | None, str]], out: Path) -> Path:
    """One offline page: per section a heading, a chart (or none) and an HTML fragment under it."""
    head = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}"
            "</style></head><body>")
    parts = [head, f"<h1>{html.escape(title)}</h1>"]
    first = True
    for heading, chart, fragment in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if chart is not None:
            parts.append(plotly_figure(chart).to_html(full_html=False, include_plotlyjs=first))
            first = False
        parts.append(fragment)
    parts.append("</body></html>")
    return save_text("\n".join(parts), out)
