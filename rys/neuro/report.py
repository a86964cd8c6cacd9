"""Files of the neuro commands: JSON, CSV, charts (HTML + PNG) and the one-page layer map.

Every file is written to a temp name and renamed, so a crash never leaves half a report.
"""

from __future__ import annotations

import csv
import html
import io
import json
import statistics
from pathlib import Path

from rys.neuro import NeuroError
from rys.neuro import labels as layer_labels
from rys.neuro.ablate import SkipScores
from rys.neuro.circuit import Pair
from rys.neuro.lens import LensResult
from rys.neuro.plots import Chart, write_html, write_png
from rys.outputs import save_text

LABEL_COLORS = {"early": "#9e9e9e", "middle": "#cfd8dc", "reasoning": "#e53935", "semantic": "#fb8c00",
                "output": "#43a047"}


def write_json(out: Path, data, meta: dict | None = None) -> Path:
    """`meta` (e.g. how the layer paths ran) is added to the top level of a JSON object."""
    if meta and isinstance(data, dict):
        data = {**data, **meta}
    return save_text(json.dumps(data, indent=2, default=float) + "\n", out)


def write_csv(out: Path, rows: list[dict]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return save_text(buf.getvalue(), out)


def chart_files(chart: Chart, out_dir: Path, stem: str) -> list[Path]:
    return [write_html(chart.title, [(chart.title, chart, "")], out_dir / f"{stem}.html"),
            write_png(chart, out_dir / f"{stem}.png")]


# -- lens ---------------------------------------------------------------------------------------------

def lens_rows(result: LensResult) -> list[dict]:
    rows = []
    for lens in result.prompts + ([result.control] if result.control else []):
        for i, s in enumerate(lens.layers):
            top1, p1 = s.top[0]
            rows.append({"prompt": lens.id, "layer": s.layer, "entropy_bits": round(s.entropy_bits, 6),
                         "kl_bits": round(s.kl_bits, 6), "answer_prob": s.answer_prob, "answer_rank": s.answer_rank,
                         "top1": result.pieces.get(top1, ""), "top1_prob": round(p1, 6),
                         "top_k_mass": round(s.top_mass, 6), "copy_collapse": s.copy_collapse,
                         "semantic_collapse": s.semantic_collapse,
                         "control_margin": None if lens.control_margin is None else lens.control_margin[i]})
            if lens.tuned is not None:
                t = lens.tuned[i]
                rows[-1].update({"tuned_entropy_bits": round(t.entropy_bits, 6), "tuned_kl_bits": round(t.kl_bits, 6),
                                 "tuned_answer_prob": t.answer_prob, "tuned_answer_rank": t.answer_rank})
    return rows


def lens_heatmap(result: LensResult) -> Chart | None:
    items = [p for p in result.prompts if p.answer_token is not None]
    if not items:
        return None
    layers = [s.layer for s in items[0].layers]
    return Chart("heatmap", "Answer probability by layer (logit lens)", x=layers, y=[p.id for p in items],
                 z=[[s.answer_prob for s in p.layers] for p in items], xlabel="layer", ylabel="item",
                 zlabel="p(answer)")


def lens_curves(result: LensResult) -> Chart:
    layers = [s.layer for s in result.prompts[0].layers]
    series = {"entropy (bits)": [statistics.fmean(p.layers[i].entropy_bits for p in result.prompts)
                                 for i in range(len(layers))],
              "KL to final (bits)": [statistics.fmean(p.layers[i].kl_bits for p in result.prompts)
                                     for i in range(len(layers))]}
    if result.prompts[0].tuned is not None:
        series["tuned lens KL to final (bits)"] = [statistics.fmean(p.tuned[i].kl_bits for p in result.prompts)
                                                   for i in range(len(layers))]
    return Chart("lines", "Entropy and KL to the final distribution (mean over prompts)", x=layers,
                 series=series, xlabel="layer", ylabel="bits")


def lens_tuned_chart(result: LensResult) -> Chart | None:
    """Logit vs tuned lens KL to the final distribution, mean over the lensed prompts (last token)."""
    if result.prompts[0].tuned is None:
        return None
    n = len(result.prompts[0].layers)
    return tuned_chart([s.layer for s in result.prompts[0].layers],
                       [statistics.fmean(p.layers[i].kl_bits for p in result.prompts) for i in range(n)],
                       [statistics.fmean(p.tuned[i].kl_bits for p in result.prompts) for i in range(n)],
                       f"Logit vs tuned lens: {Path(result.model).name} ({len(result.prompts)} prompts, last token)")


def write_lens(result: LensResult, out_dir: Path, meta: dict | None = None) -> list[Path]:
    files = [write_json(out_dir / "lens.json", result.to_dict(), meta), write_csv(out_dir / "lens.csv", lens_rows(result))]
    heat = lens_heatmap(result)
    if heat is not None:
        files += chart_files(heat, out_dir, "lens_heatmap")
    tuned = lens_tuned_chart(result)
    if tuned is not None:
        files += chart_files(tuned, out_dir, "lens_tuned")
    return files



def tuned_chart(layers, logit_kl, tuned_kl, title: str) -> Chart:
    return Chart("lines", title, x=list(layers), series={"logit lens": list(logit_kl), "tuned lens": list(tuned_kl)},
                 xlabel="layer", ylabel="KL(P_final || P_lens), bits")


def write_calibration(info: dict, lens, out_dir: Path, meta: dict | None = None) -> list[Path]:
    """calibration.json (split, timings, per-layer fit and held-out figures) and the tuned-vs-logit chart."""
    held = info["held_out"]
    data = {"format": "rys-calibration/1", "model": lens.model_name, "model_sha256": lens.model_sha256, **info}
    chart = tuned_chart(held["layers"], held["logit_kl_bits"], held["tuned_kl_bits"],
                        f"Held-out KL to the final distribution: {lens.model_name} ({held['tokens']} tokens)")
    return [write_json(out_dir / "calibration.json", data, meta), *chart_files(chart, out_dir, "tuned_vs_logit")]


# -- attention ----------------------------------------------------------------------------------------

def attention_charts(result) -> tuple[Chart, Chart]:
    means = result.head_means()
    names = result.labels()
    heat = Chart("heatmap", f"Attention entropy per head (bits, mean over {len(result.prompts)} prompts)",
                 x=list(range(means.shape[1])), y=names, z=means.tolist(), xlabel="head", ylabel="layer",
                 zlabel="entropy (bits)")
    profile = Chart("lines", "Attention entropy per layer (mean over heads, prompts and positions)",
                    x=list(range(len(names))), series={"mean head entropy (bits)": result.layer_profile()},
                    xlabel="executed layer", ylabel="bits")
    return heat, profile


def write_attention(result, out_dir: Path, meta: dict | None = None) -> list[Path]:
    heat, profile = attention_charts(result)
    rows = [{"layer": name, "head": h, "mean_entropy_bits": round(float(v), 6)}
            for name, row in zip(result.labels(), result.head_means()) for h, v in enumerate(row)]
    return [write_json(out_dir / "attention.json", result.to_dict(), meta), write_csv(out_dir / "attention.csv", rows),
            *chart_files(heat, out_dir, "attention_heatmap"), *chart_files(profile, out_dir, "attention_profile")]

# -- ablation and circuits ----------------------------------------------------------------------------

def ablation_chart(scores: SkipScores, size: int = 1) -> Chart:
    rows = scores.rows(size)
    return Chart("bar", f"Score drop when a {'layer' if size == 1 else f'{size}-layer block'} is skipped "
                        f"({scores.probe}, baseline {scores.baseline.score:.3f})",
                 x=[r.skipped[0] for r in rows], y=[r.importance for r in rows],
                 err_low=[r.ci_low for r in rows], err_high=[r.ci_high for r in rows],
                 colors=["#e53935" if r.significant and r.importance > 0 else "#90a4ae" for r in rows],
                 xlabel="skipped layer" if size == 1 else "first skipped layer",
                 ylabel="importance = baseline - ablated")


def write_ablation(scores: SkipScores, out_dir: Path, meta: dict | None = None) -> list[Path]:
    files = [write_json(out_dir / "ablation.json", scores.to_dict(), meta),
             write_csv(out_dir / "ablation.csv", [dict(r.__dict__, skipped=" ".join(map(str, r.skipped)))
                                                  for r in scores.rows()])]
    for size in sorted({len(s) for s in scores.results}):
        files += chart_files(ablation_chart(scores, size), out_dir, "ablation" if size == 1 else f"ablation_b{size}")
    return files


def circuit_chart(pairs: list[Pair]) -> Chart:
    layers = sorted({p.a for p in pairs} | {p.b for p in pairs})
    cell = {(p.a, p.b): p.interaction for p in pairs}
    z = [[cell.get((min(a, b), max(a, b))) for b in layers] for a in layers]
    return Chart("heatmap", "Pair interaction: delta(a,b) - (delta(a) + delta(b));  > +0.05 synergistic, "
                            "< -0.05 redundant", x=layers, y=layers, z=z, xlabel="layer b", ylabel="layer a",
                 zlabel="interaction", diverging=True)


def circuit_dict(scores: SkipScores, pairs: list[Pair], strategy: str) -> dict:
    return {"model": scores.model, "probe": scores.probe, "strategy": strategy,
            "baseline": scores.baseline.score, "single": scores.importance(),
            "pairs": [{"a": p.a, "b": p.b, "delta_a": p.delta_a, "delta_b": p.delta_b, "delta_ab": p.delta_ab,
                       "interaction": p.interaction, "p": p.p, "p_adjusted": p.p_adjusted,
                       "significant": p.significant, "kind": p.kind} for p in pairs],
            "failed": [{"skipped": list(s), "error": e} for s, e in sorted(scores.failed.items())]}


def write_circuit(scores: SkipScores, pairs: list[Pair], strategy: str, out_dir: Path,
                  meta: dict | None = None) -> list[Path]:
    data = circuit_dict(scores, pairs, strategy)
    files = [write_json(out_dir / "circuit.json", data, meta), write_csv(out_dir / "circuit.csv", data["pairs"])]
    if pairs:
        files += chart_files(circuit_chart(pairs), out_dir, "circuit_heatmap")
    return files


def write_prompt_repeat_chart(data: dict, out_dir: Path) -> list[Path]:
    """Score delta vs the plain prompt per repeat count, and the duplication path's delta next to them."""
    rows = [(f"prompt x{r['count']}", r) for r in data["repeats"]]
    if data.get("path"):
        rows.append((f"path {data['path']['path']}", data["path"]))
    chart = Chart("bar", f"Repeating the prompt vs repeating layers ({data['probe']}, baseline "
                         f"{data['baseline']:.3f})", x=[name for name, _ in rows], y=[r["delta"] for _, r in rows],
                  err_low=[r["ci_low"] for _, r in rows], err_high=[r["ci_high"] for _, r in rows],
                  colors=["#1e88e5" if name.startswith("prompt") else "#fb8c00" for name, _ in rows],
                  xlabel="", ylabel="score delta vs the plain prompt")
    return chart_files(chart, out_dir, "prompt_repeat")


# -- the layer map ------------------------------------------------------------------------------------

def emergence_layer(result: LensResult) -> int | None:
    """Median over items of the first layer where the answer reaches rank <= 10 (None: most never do)."""
    firsts = [p.summary.get("first_rank_le_10") for p in result.prompts if p.answer_token is not None]
    reached = [f for f in firsts if f is not None]
    if not reached or len(reached) * 2 < len(firsts):
        return None
    return int(statistics.median(reached))


def map_data(scores: SkipScores, lens: LensResult, attention=None) -> dict:
    n = scores.n_layers
    importance = scores.importance()
    values = [importance.get(layer, 0.0) for layer in range(n)]
    significant = scores.significant()
    rows = {r.skipped[0]: r for r in scores.rows(1)}
    emergence = emergence_layer(lens)
    influence = [p.block_influence for p in lens.prompts if p.block_influence]
    cosine = [p.cosine_to_final for p in lens.prompts if p.cosine_to_final]
    per_layer = []
    labels = layer_labels.label_layers(values, [significant.get(layer, False) for layer in range(n)], emergence)
    for lab in labels:
        layer = lab.layer
        row = rows.get(layer)
        per_layer.append({
            "layer": layer, "label": lab.label, "relative_depth": round(lab.relative_depth, 4),
            "importance": importance.get(layer), "important": lab.important, "by_effect": lab.by_effect,
            "p": None if row is None else row.p, "p_adjusted": None if row is None else row.p_adjusted,
            "mean_answer_prob": statistics.fmean(p.layers[layer].answer_prob or 0.0 for p in lens.prompts),
            "mean_kl_bits": statistics.fmean(p.layers[layer].kl_bits for p in lens.prompts),
            "mean_entropy_bits": statistics.fmean(p.layers[layer].entropy_bits for p in lens.prompts),
            "block_influence": statistics.fmean(b[layer] for b in influence) if influence else None,
            "cosine_to_final": statistics.fmean(c[layer] for c in cosine) if cosine else None,
            "reason": lab.reason})
        if attention is not None and len(attention.path) == n:
            per_layer[-1]["attention_entropy_bits"] = attention.layer_profile()[layer]
        if tuned := [p.tuned for p in lens.prompts if p.tuned]:
            per_layer[-1]["mean_tuned_kl_bits"] = statistics.fmean(t[layer].kl_bits for t in tuned)
            per_layer[-1]["mean_tuned_answer_prob"] = statistics.fmean(t[layer].answer_prob or 0.0 for t in tuned)
    from rys.neuro.ablate import ADJUST, ALPHA

    earned = [lab.layer for lab in labels if lab.by_effect]
    return {"format": "rys-map/1", "model": scores.model, "probe": scores.probe, "n_layers": n,
            "baseline": scores.baseline.score, "emergence_layer": emergence,
            "lens_self_test_kl_bits": lens.self_test_kl_bits, "lens_self_test_passed": lens.self_test_passed,
            "label_rules": layer_labels.RULES, "layers": per_layer,
            "significance": {"alpha": ALPHA, "adjustment": ADJUST, "layers_tested": len(rows),
                             "labelled_by_effect": earned,
                             "labelled_by_position": [lab.layer for lab in labels if not lab.by_effect]},
            "tuned_lens": lens.tuned_lens, "attention": None if attention is None else {
                "prompts": len(attention.prompts), "head_means_bits": attention.head_means().tolist()},
            "failed": [{"skipped": list(s), "error": e} for s, e in sorted(scores.failed.items())]}


def _table(rows: list[dict], keys: list[str]) -> str:
    def fmt(v):
        return "" if v is None else f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(k))}</td>" for k in keys) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_map(scores: SkipScores, lens: LensResult, out_dir: Path, meta: dict | None = None,
              attention=None) -> list[Path]:
    data = map_data(scores, lens, attention)
    layers = [r["layer"] for r in data["layers"]]
    labelled = Chart("bar", "Ablation importance, coloured by layer label", x=layers,
                     y=[r["importance"] or 0.0 for r in data["layers"]],
                     colors=[LABEL_COLORS[r["label"]] for r in data["layers"]],
                     xlabel="layer", ylabel="baseline - ablated",
                     legend={label: LABEL_COLORS[label] for label in layer_labels.LABELS
                             if any(r["label"] == label for r in data["layers"])})
    hidden_chart = None
    if data["layers"][0]["block_influence"] is not None:
        hidden_chart = Chart("lines", "Block influence (1 - cos(h_in, h_out)) and cosine to the final layer",
                             x=layers, series={"block influence": [r["block_influence"] for r in data["layers"]],
                                               "cosine to final": [r["cosine_to_final"] for r in data["layers"]]},
                             xlabel="layer", ylabel="")
    rules = _table([{"label": k, "colour": LABEL_COLORS[k], "rule": v} for k, v in layer_labels.RULES.items()],
                   ["label", "colour", "rule"])
    self_test = (f"<p>Lens self-test: KL(last layer || original model) = {lens.self_test_kl_bits:.2e} bits "
                 f"({'passed' if lens.self_test_passed else 'FAILED'}). Answer emergence (median first layer "
                 f"with answer rank &le; 10): {data['emergence_layer']}. Baseline score "
                 f"{data['baseline']:.4f}.</p>")
    sig = data["significance"]
    earned = sig["labelled_by_effect"]
    self_test += (f"<p>Labels by effect need a significant score drop when the layer is skipped: "
                  f"{sig['adjustment'].upper()}-adjusted p &lt; {sig['alpha']} over the {sig['layers_tested']} layers "
                  f"tested. " + (f"Earned by layers {', '.join(map(str, earned))}; every other layer is labelled by "
                                 "its position only." if earned else
                                 "No layer's effect is significant: <b>every layer is labelled by its position "
                                 "only</b> (more items, or a probe the model does better than chance, may earn "
                                 "labels).") + "</p>")
    sections = [("Layer labels", labelled, self_test + rules),
                ("Ablation", ablation_chart(scores), ""),
                ("Logit lens", lens_heatmap(lens), ""),
                ("Entropy and KL", lens_curves(lens), ""),
                *([("Logit vs tuned lens", lens_tuned_chart(lens), "")] if lens_tuned_chart(lens) else []),
                ("Hidden states", hidden_chart, "" if hidden_chart else "<p>not measured</p>"),
                *([("Attention entropy", attention_charts(attention)[0], ""),
                   ("Attention entropy by layer", attention_charts(attention)[1], "")] if attention is not None else
                  [("Attention entropy", None, ("<p>not measured (needs the patched llama-server: rys setup "
                                                 "llama-server --patched)</p>"))]),
                ("Per layer", None, _table(data["layers"], ["layer", "label", "by_effect", "importance", "p_adjusted",
                                                             "mean_answer_prob",
                                                             "mean_kl_bits", "block_influence", "cosine_to_final"]))]
    title = f"Layer map: {Path(scores.model).name} on {scores.probe}"
    out_dir.mkdir(parents=True, exist_ok=True)
    # PNGs of the map's own charts too, for pages that cannot embed the interactive report
    pngs = [write_png(labelled, out_dir / "map_labels.png"), write_png(lens_curves(lens), out_dir / "map_lens.png")]
    if hidden_chart is not None:
        pngs.append(write_png(hidden_chart, out_dir / "map_hidden.png"))
    if attention is not None:
        pngs.append(write_png(attention_charts(attention)[0], out_dir / "map_attention.png"))
    return [write_json(out_dir / "report.json", data, meta), write_html(title, sections, out_dir / "report.html"),
            *pngs, *write_ablation(scores, out_dir, meta), *write_lens(lens, out_dir, meta),
            *(write_attention(attention, out_dir, meta) if attention is not None else [])]


def write_compare_maps(reports: list[Path], out_dir: Path) -> list[Path]:
    """Importance and answer probability of several maps against relative depth (0 = first, 1 = last)."""
    maps = []
    for report in reports:
        try:
            data = json.loads(report.read_text())
        except (OSError, ValueError) as err:
            raise NeuroError(f"cannot read {report} as a rys map report: {err}",
                             "pass report.json files written by rys map") from err
        if not isinstance(data, dict) or data.get("format") != "rys-map/1":
            raise NeuroError(f"{report} is not a rys map report", "pass report.json files written by rys map")
        maps.append(data)
    names = [f"{Path(m['model']).stem} ({m['probe']})" for m in maps]
    # two maps of the same model and probe (say, before and after a change) must not share a series
    names = [f"{n} [{r}]" if names.count(n) > 1 else n for n, r in zip(names, reports)]
    depth = [[r["relative_depth"] for r in m["layers"]] for m in maps]
    grid = sorted({d for ds in depth for d in ds})

    def on_grid(m, key):  # each model's values placed on the shared depth axis (None between its layers)
        values = {r["relative_depth"]: r[key] for r in m["layers"]}
        return [values.get(d) for d in grid]

    importance = Chart("lines", "Ablation importance by relative depth", x=grid,
                       series={n: on_grid(m, "importance") for n, m in zip(names, maps)},
                       xlabel="relative depth", ylabel="baseline - ablated")
    answer = Chart("lines", "Mean answer probability (logit lens) by relative depth", x=grid,
                   series={n: on_grid(m, "mean_answer_prob") for n, m in zip(names, maps)},
                   xlabel="relative depth", ylabel="p(answer)")
    labels = "".join(f"<h3>{html.escape(n)}</h3>" + _table(m["layers"], ["layer", "relative_depth", "label"])
                     for n, m in zip(names, maps))
    summary = {"models": [{"name": n, "n_layers": m["n_layers"], "emergence_layer": m["emergence_layer"],
                           "emergence_depth": None if m["emergence_layer"] is None
                           else (m["emergence_layer"] + 0.5) / m["n_layers"],
                           "labels": [r["label"] for r in m["layers"]]} for n, m in zip(names, maps)]}
    out_dir.mkdir(parents=True, exist_ok=True)
    return [write_json(out_dir / "compare_maps.json", summary),
            write_png(importance, out_dir / "compare_maps_importance.png"),
            write_png(answer, out_dir / "compare_maps_answer.png"),
            write_html("Layer maps compared", [("Importance", importance, ""), ("Answer emergence", answer, ""),
                                               ("Labels", None, labels)], out_dir / "compare_maps.html")]
