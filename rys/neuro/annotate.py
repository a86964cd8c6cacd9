"""Sweep heatmaps annotated with a layer map: label bands along both axes, and for each top config
the labelled layers it runs twice.

Config (i, j) duplicates layers i..j-1, so on the y axis (i = block start) the band of layer l sits at
i = l, and on the x axis (j = block end, exclusive) it sits at j = l + 1: a cell's row and column
colours are then the labels of the first and the last duplicated layer.

The sweep draws its own heatmaps (rys.sweep.heatmap); this module only adds to those figures, so an
annotated heatmap is the plain one plus the bands, never a second drawing of the data.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from rys.neuro import NeuroError
from rys.outputs import save_plotly_html, save_png

BAND = 0.03  # thickness of a label band, as a fraction of the plot


def load_map(report: Path) -> dict:
    try:
        data = json.loads(Path(report).read_text())
    except (OSError, ValueError) as err:
        raise NeuroError(f"cannot read the layer map {report}: {err}",
                         "pass the report.json written by `rys map`") from err
    if not isinstance(data, dict) or data.get("format") != "rys-map/1":
        raise NeuroError(f"{report} is not a rys map report", "pass the report.json written by `rys map`")
    return data


def label_bands(layers: list[dict]) -> list[tuple[int, int, str]]:
    """Runs of equal labels as (first layer, last layer, label)."""
    bands: list[tuple[int, int, str]] = []
    for row in layers:
        if bands and bands[-1][2] == row["label"] and bands[-1][1] == row["layer"] - 1:
            bands[-1] = (bands[-1][0], row["layer"], row["label"])
        else:
            bands.append((row["layer"], row["layer"], row["label"]))
    return bands


def duplicated_labels(i: int, j: int, labels: dict[int, str]) -> dict[str, list[int]]:
    """Labelled layers of the block i..j-1 that config (i, j) runs twice, by label."""
    out: dict[str, list[int]] = {}
    for layer in range(i, j):
        out.setdefault(labels.get(layer, "unlabelled"), []).append(layer)
    return out


def describe(dup: dict[str, list[int]]) -> str:
    return "; ".join(f"{label} {_span(layers)}" for label, layers in dup.items())


def _span(layers: list[int]) -> str:
    from rys.paths import format_path

    return format_path(layers)  # the shortest path form: [8, 10, 11] -> "8,10,11", [1, 2, 3] -> "1..3"




def _clipped(grid, bands):
    """Each band as its (first, last) column j and row i inside the plotted grid (empty: last < first)."""
    for first, last, label in bands:
        xs = (max(first + 1, grid.j_values[0]), min(last + 1, grid.j_values[-1]))
        ys = (max(first, grid.i_values[0]), min(last, grid.i_values[-1]))
        yield xs, ys, label


def _png(grid, bands, colors, out: Path) -> Path:

    from matplotlib.patches import Patch, Rectangle

    from rys.sweep.heatmap import png_figure

    fig = png_figure(grid)
    width, height = fig.get_size_inches()
    fig.set_size_inches(max(width, 6.5), height + 1.3)  # room for the bands and the label legend
    ax = fig.axes[0]
    for (x0, x1), (y0, y1), label in _clipped(grid, bands):
        color = colors.get(label, "#bdbdbd")
        if x1 >= x0:  # x band above the plot
            ax.add_patch(Rectangle((x0 - 0.5, 1.0), x1 - x0 + 1, BAND, transform=ax.get_xaxis_transform(),
                                   facecolor=color, edgecolor="none", clip_on=False))
        if y1 >= y0:  # y band right of the plot
            ax.add_patch(Rectangle((1.0, y0 - 0.5), BAND * 0.6, y1 - y0 + 1, transform=ax.get_yaxis_transform(),
                                   facecolor=color, edgecolor="none", clip_on=False))
    seen = list(dict.fromkeys(label for *_, label in bands))
    height_pt = ax.get_position().height * fig.get_size_inches()[1] * 72  # offsets in points, whatever the size
    ax.legend(handles=[Patch(color=colors.get(label, "#bdbdbd"), label=label) for label in seen],
              loc="upper center", bbox_to_anchor=(0.5, -36 / height_pt), ncol=min(6, len(seen)), fontsize=8,
              title="layer labels (band on top: last duplicated layer; on the right: first)", title_fontsize=8)
    ax.set_title(ax.get_title(), pad=6 + BAND * height_pt, fontsize=10)
    fig.tight_layout()
    return save_png(fig, out)


def _html(grid, bands, colors, notes: dict[tuple[int, int], str], out: Path) -> Path:

    import plotly.graph_objects as go

    from rys.sweep.heatmap import html_figure

    fig = html_figure(grid)
    heat = fig.data[0]
    heat.colorbar.x = 1.08  # room for the y band between the plot and the colour bar
    heat.text = [[text + (f"<br>duplicates: {notes[(i, j)]}" if (i, j) in notes else "") for j, text in
                  zip(grid.j_values, row)] for i, row in zip(grid.i_values, heat.text)]
    for (x0, x1), (y0, y1), label in _clipped(grid, bands):
        color = colors.get(label, "#bdbdbd")
        if x1 >= x0:
            fig.add_shape(type="rect", xref="x", yref="paper", x0=x0 - 0.5, x1=x1 + 0.5, y0=1.0, y1=1.0 + BAND,
                          fillcolor=color, line_width=0)
        if y1 >= y0:
            fig.add_shape(type="rect", xref="paper", yref="y", x0=1.0, x1=1.0 + BAND * 0.6, y0=y0 - 0.5,
                          y1=y1 + 0.5, fillcolor=color, line_width=0)
    fig.update_layout(margin={"t": 110}, title={"y": 0.97})  # the title above the x band, not on it
    for label in dict.fromkeys(label for *_, label in bands):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"label: {label}",
                                 marker={"symbol": "square", "size": 12, "color": colors.get(label, "#bdbdbd")}))
    return save_plotly_html(fig, out)


def write_annotated(results: Path, report: Path, out_dir: Path, top_k: int = 5, html: bool = True) -> tuple[str, list[Path]]:
    """Annotated heatmaps (heatmap.<probe>.annotated.png/.html) and annotations.json in out_dir, for the
    RYS (i, j) configs of a sweep results file; returns a text summary and the files written."""
    from rys.neuro.report import LABEL_COLORS, write_json
    from rys.sweep.heatmap import build_grid
    from rys.sweep.rank import latest_by_probe
    from rys.sweep.results import current_rows, read_rows

    layer_map = load_map(report)
    labels = {row["layer"]: row["label"] for row in layer_map["layers"]}
    rows = current_rows(read_rows(Path(results)))
    if rows and rows[0].provenance.get("model"):
        swept = Path(rows[0].provenance["model"]).name
        if swept != Path(layer_map["model"]).name:
            raise NeuroError(f"the sweep measured {swept} but the map is of {Path(layer_map['model']).name}",
                             "annotate with a `rys map` report of the same model")
    groups: dict[str, list] = {}
    for probe, by_path in latest_by_probe(rows).items():
        for r in by_path.values():
            if r.i is not None and r.times == 2 and not r.interleaved and r.delta:
                if r.j > layer_map["n_layers"]:
                    raise NeuroError(f"config ({r.i},{r.j}) reaches past the map's {layer_map['n_layers']} layers",
                                     "annotate with a `rys map` report of the same model")
                groups.setdefault(probe, []).append(r)
    if not groups:
        raise NeuroError(f"{results} holds no scored (i, j) duplication configs to annotate",
                         "run `rys sweep` first; only plain RYS (i, j) heatmaps are annotated")
    bands = label_bands(layer_map["layers"])
    model = Path(layer_map["model"]).name
    out_dir.mkdir(parents=True, exist_ok=True)
    files, lines, data = [], [], {"report": str(report), "results": str(results), "bands": bands, "probes": {}}
    for probe, group in sorted(groups.items()):
        grid = build_grid(group, f"{model}: {probe} delta vs baseline, with layer labels", top_k)
        cells = {(r.i, r.j): r for r in group}
        notes = {(i, j): describe(duplicated_labels(i, j, labels)) for (i, j) in cells}
        top = []
        lines.append(f"{probe}: top configs and the labelled layers they duplicate")
        for rank, (i, j) in enumerate(grid.top, 1):
            dup = duplicated_labels(i, j, labels)
            top.append({"rank": rank, "i": i, "j": j, "delta": cells[(i, j)].delta["delta"], "duplicates": dup,
                        "label_counts": dict(Counter(labels.get(layer, "unlabelled") for layer in range(i, j)))})
            lines.append(f"  {rank}. ({i},{j}) delta {cells[(i, j)].delta['delta']:+.4f}: {describe(dup)}")
        data["probes"][probe] = top
        files.append(_png(grid, bands, LABEL_COLORS, out_dir / f"heatmap.{probe}.annotated.png"))
        if html:
            files.append(_html(grid, bands, LABEL_COLORS, notes, out_dir / f"heatmap.{probe}.annotated.html"))
    files.append(write_json(out_dir / "annotations.json", data))
    return "\n".join(lines), files
