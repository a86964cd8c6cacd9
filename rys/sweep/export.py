"""Exports of one chosen config: the layer path string, a mergekit passthrough YAML, a standalone GGUF."""

from __future__ import annotations

from pathlib import Path

import yaml

from rys import paths as layer_paths
from rys.sweep import SweepError
from rys.sweep.rank import combined_ranking
from rys.sweep.results import Row


def slices(path: list[int]) -> list[tuple[int, int]]:
    """The fewest mergekit layer ranges [start, end) whose concatenation is the path.

    A slice can only hold ascending consecutive layers, so every break in the path starts a new one:
    cutting at exactly the breaks gives the minimum.
    """
    ranges: list[tuple[int, int]] = []
    for layer in path:
        if ranges and ranges[-1][1] == layer:
            ranges[-1] = (ranges[-1][0], layer + 1)
        else:
            ranges.append((layer, layer + 1))
    return ranges


def mergekit_yaml(path: list[int], model: str, dtype: str = "bfloat16") -> str:
    """A mergekit passthrough config that rebuilds the layer path from the original HF model."""
    layer_paths.validate(path)
    doc = {
        "slices": [{"sources": [{"model": model, "layer_range": [a, b]}]} for a, b in slices(path)],
        "merge_method": "passthrough",
        "dtype": dtype,
    }
    header = f"# rys layer path: {layer_paths.format_path(path)}\n"
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)


def parse_mergekit_yaml(text: str) -> list[int]:
    """The layer path a mergekit passthrough config builds (one source per slice, as passthrough needs)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SweepError(f"not valid YAML: {err}", "pass a mergekit config file") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("slices"), list):
        raise SweepError("the YAML has no `slices:` list", "pass a mergekit passthrough config")
    path: list[int] = []
    for number, piece in enumerate(doc["slices"]):
        sources = piece.get("sources") if isinstance(piece, dict) else None
        if not isinstance(sources, list) or len(sources) != 1 or "layer_range" not in sources[0]:
            raise SweepError(f"slice {number} does not have exactly one source with a layer_range",
                             "passthrough slices take one source each: sources: [{model: M, layer_range: [a, b]}]")
        start, end = sources[0]["layer_range"]
        if not 0 <= start < end:
            raise SweepError(f"slice {number} has an empty or negative layer_range [{start}, {end}]",
                             "layer_range is [first, last + 1] with first < last + 1")
        path.extend(range(start, end))
    return layer_paths.validate(path)


def choose(rows: list[Row], which: str, n_layers: int | None = None) -> list[int]:
    """'best' (the best config confirmed on held-out items, rys.sweep.confirm), 'search-best' (top of
    the search's combined ranking, confirmed or not), 'i,j' (a RYS config), or a layer path string."""
    from rys.sweep.confirm import confirm_rows, confirmed_best

    text = which.strip()
    if text in ("best", "search-best"):
        ranked = combined_ranking(rows)
        if not ranked:
            raise SweepError("no config with a delta vs baseline in these results",
                             "run the sweep with its baseline (drop --skip-baseline) first")
        if text == "search-best":
            return layer_paths.parse_path(ranked[0].path)
        best = confirmed_best(rows)
        if best is None:
            why = ("no config held up on the held-out items" if confirm_rows(rows)
                   else "these results hold no held-out confirmation")
            raise SweepError(f"{why}, so there is no confirmed best config",
                             "rerun the sweep with --confirm-top 3 (the default), or export the unconfirmed "
                             "search winner with --config search-best")
        return layer_paths.parse_path(best)
    parts = text.split(",")
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        i, j = (int(p) for p in parts)
        n = n_layers if n_layers is not None else _n_layers(rows)
        return layer_paths.duplicate(i, j, n)
    return layer_paths.parse_path(text, n_layers)


def _n_layers(rows: list[Row]) -> int:
    base = [r for r in rows if r.is_baseline]
    if base:
        return base[0].n_layers
    raise SweepError("cannot tell the model's layer count from these results (no baseline row)",
                     "pass the config as a full layer path instead of i,j")


def export_gguf(source: Path, path: list[int], out: Path, force: bool = False) -> Path:
    from rys.gguf import build_single  # the rewriter is only needed for this one export

    return build_single(source, out, path, force=force)
