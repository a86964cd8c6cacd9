"""Report files from hand-made results: map labels and JSON, charts on disk, compare-maps."""

from __future__ import annotations

import json

import pytest

from rys.neuro import NeuroError
from rys.neuro.ablate import SkipScores
from rys.neuro.lens import LensResult, PromptLens
from rys.neuro.lens_math import LayerStats
from rys.neuro.report import emergence_layer, map_data, write_compare_maps, write_map
from rys.probes.results import ItemResult, ProbeResult

N = 10


def _probe_result(scores: list[float]) -> ProbeResult:
    items = [ItemResult(id=f"i{k}", category="all", score=s, correct=s > 0.5) for k, s in enumerate(scores)]
    mean = sum(scores) / len(scores)
    return ProbeResult("toy", "sha", "choice", len(items), mean, mean, None, mean, mean, None, None, None, [], {},
                       items)


def _scores(items: int = 10, noisy: bool = False) -> SkipScores:
    """Skipping layer 4 costs 0.5 on every item, layer 7 costs 0.2, the others nothing. With 10 items the
    sign-flip p of a constant drop is 2/1024 (BH over 10 layers: 2/1024 * 10 / 2 < 0.05: significant);
    noisy: layer 4 and 7 drop on half the items and rise on the others (mean still > 0, never significant)."""
    drop = {4: 0.5, 7: 0.2}

    def skipped(layer):
        d = drop.get(layer, 0.0)
        per_item = [d * (1.5 if k % 2 else -0.5) for k in range(items)] if noisy else [d] * items
        return _probe_result([0.9 - x for x in per_item])

    results = {(layer,): skipped(layer) for layer in range(N)}
    return SkipScores("/models/toy.gguf", "toy", "sha", N, _probe_result([0.9] * items), results)


def _lens(first_rank10: list[int]) -> LensResult:
    prompts = []
    for k, first in enumerate(first_rank10):
        layers = [LayerStats(layer, 1.0, 0.0 if layer == N - 1 else 2.0, [(1, 0.5)], 0.1 * (layer >= first),
                             1 if layer >= first else 50) for layer in range(N)]
        prompts.append(PromptLens(f"p{k}", "text", "a", 1, "a", [0, 1], layers,
                                  {"first_rank_le_10": first}, [0.1] * N, [0.5] * N))
    return LensResult("/models/toy.gguf", N, 100, prompts, None, 0.0, 1.0, {1: " a"})


def test_emergence_is_the_median_and_needs_most_items():
    assert emergence_layer(_lens([5, 6, 8])) == 6
    lens = _lens([5, 6, 8])
    for p in lens.prompts[:2]:
        p.summary["first_rank_le_10"] = None
    assert emergence_layer(lens) is None  # only 1 of 3 items ever reaches rank 10


def test_map_labels_and_files(tmp_path):
    scores, lens = _scores(), _lens([6, 6, 6])
    data = map_data(scores, lens)
    labels = [r["label"] for r in data["layers"]]
    # depth 0.05 early; 4 significant before emergence 6 -> reasoning; 7 significant after it -> semantic
    assert labels == ["early", "middle", "middle", "middle", "reasoning", "middle", "middle", "semantic",
                      "middle", "output"]
    assert data["layers"][4]["importance"] == pytest.approx(0.5) and data["emergence_layer"] == 6
    assert data["layers"][4]["p"] == pytest.approx(2 / 1024) and data["layers"][4]["p_adjusted"] == pytest.approx(10 / 1024)  # BH: (2/1024) x 10 / 2
    assert data["significance"]["labelled_by_effect"] == [4, 7]
    files = write_map(scores, lens, tmp_path)
    assert {f.name for f in files} >= {"report.json", "report.html", "ablation.png", "lens_heatmap.png", "lens.csv",
                                    "map_labels.png", "map_lens.png", "map_hidden.png"}
    assert "reasoning" in (tmp_path / "report.html").read_text()
    assert "Earned by layers 4, 7" in (tmp_path / "report.html").read_text()
    out = write_compare_maps([tmp_path / "report.json", tmp_path / "report.json"], tmp_path / "cmp")
    summary = json.loads(out[0].read_text())
    assert summary["models"][0]["emergence_depth"] == pytest.approx(0.65)
    # a shallower model: its layers sit between the first map's on the shared depth axis
    small = json.loads((tmp_path / "report.json").read_text())
    small["layers"] = [dict(r, layer=k, relative_depth=(k + 0.5) / 4) for k, r in enumerate(small["layers"][:4])]
    small.update(n_layers=4, emergence_layer=2)
    (tmp_path / "small.json").write_text(json.dumps(small))
    files = write_compare_maps([tmp_path / "report.json", tmp_path / "small.json"], tmp_path / "cmp3")
    assert {f.name for f in files} == {"compare_maps.json", "compare_maps.html", "compare_maps_importance.png",
                                       "compare_maps_answer.png"}
    models = json.loads(files[0].read_text())["models"]
    assert models[1]["emergence_depth"] == pytest.approx(0.625) and models[0]["name"] != models[1]["name"]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(NeuroError, match="not a rys map"):
        write_compare_maps([tmp_path / "bad.json"], tmp_path / "cmp2")


def test_map_without_significant_effects_labels_no_layer_by_effect(tmp_path):
    """4 items: the smallest sign-flip p is 2/16, so nothing can be significant, whatever the deltas."""
    for scores in (_scores(items=4), _scores(items=10, noisy=True)):
        data = map_data(scores, _lens([6, 6, 6]))
        assert scores.importance()[4] > 0.1
        assert not any(r["by_effect"] for r in data["layers"]) and data["significance"]["labelled_by_effect"] == []
        assert {r["label"] for r in data["layers"]} == {"early", "middle", "output"}
    write_map(_scores(items=4), _lens([6, 6, 6]), tmp_path)
    assert "every layer is labelled by its position only" in (tmp_path / "report.html").read_text()


def test_annotate_sweep_heatmap_with_map_labels(tmp_path):
    """`rys report RESULTS --annotate report.json`: label bands, and which labels the top configs duplicate."""
    from click.testing import CliRunner

    from rys import paths as layer_paths
    from rys.cli import main
    from rys.neuro.annotate import describe, duplicated_labels, label_bands
    from rys.sweep.results import ResultStore, Row

    write_map(_scores(), _lens([6, 6, 6]), tmp_path / "map")
    layers = json.loads((tmp_path / "map" / "report.json").read_text())["layers"]
    assert label_bands(layers) == [(0, 0, "early"), (1, 3, "middle"), (4, 4, "reasoning"), (5, 6, "middle"),
                                   (7, 7, "semantic"), (8, 8, "middle"), (9, 9, "output")]
    labels = {r["layer"]: r["label"] for r in layers}
    assert duplicated_labels(3, 7, labels) == {"middle": [3, 5, 6], "reasoning": [4]}

    def row(i, j, delta, times=2):
        path = list(range(N)) if times == 1 else layer_paths.repeat(i, j, times, N)
        return Row(config=f"({i},{j})", path=layer_paths.format_path(path), i=i, j=j, times=times,
                   interleaved=False, n_layers=len(path), probe="toy", probe_sha256="p" * 64, score=0.5 + delta,
                   ci=[0.4, 0.6], coverage=None, n_items=4, timings={},
                   result={"items": [{"id": f"i{k}", "score": 0.5 + delta} for k in range(4)]},
                   delta={"delta": delta, "ci_low": delta - 0.1, "ci_high": delta + 0.1, "p": 0.01,
                          "significant": abs(delta) > 0.1},
                   provenance={"model": "/elsewhere/toy.gguf", "model_sha256": "m" * 64})

    results = tmp_path / "sweep.jsonl"
    store = ResultStore(results)
    for r in (row(0, 0, 0.0, times=1), row(4, 6, 0.3), row(6, 8, 0.1), row(1, 3, -0.2)):
        store.append(r)
    out = tmp_path / "report"
    done = CliRunner().invoke(main, ["report", str(results), "--out", str(out), "--top-k", "2", "--no-html",
                                     "--annotate", str(tmp_path / "map" / "report.json")])
    assert done.exit_code == 0, done.output
    assert "1. (4,6) delta +0.3000: reasoning 4; middle 5" in done.output
    assert describe({"reasoning": [8, 10, 11], "middle": [9]}) == "reasoning 8,10,11; middle 9"
    data = json.loads((out / "annotations.json").read_text())
    assert [(t["i"], t["j"]) for t in data["probes"]["toy"]] == [(4, 6), (6, 8)]
    assert data["probes"]["toy"][1]["duplicates"] == {"middle": [6], "semantic": [7]}
    assert (out / "heatmap.toy.annotated.png").stat().st_size > 0 and (out / "heatmap.toy.png").exists()
    done = CliRunner().invoke(main, ["report", str(results), "--out", str(out), "--annotate", str(results)])
    assert done.exit_code == 2 and "cannot read the layer map" in done.output and "summary" not in done.output


def test_map_and_compare_maps_commands_end_to_end(smollm2, llama_server_bin, tmp_path, monkeypatch):
    """`rys map` wiring (options, files, labels printed, path_method recorded) with the measurements
    replaced by hand-made ones; the real measurements are tested in test_lens.py and test_neuro_ablate.py."""
    from click.testing import CliRunner

    from rys.cli import main
    from rys.neuro import ablate, lens

    asked = {}

    def fake_skips(model, probe, config, skips, **kw):
        asked.update(skips=skips, journal=kw["journal"], workers=kw["workers"], args=config.extra_args)
        return _scores()

    def fake_lens(model, prompts, config, **kw):
        asked.update(prompts=len(prompts), hidden=kw["with_hidden"])
        return _lens([6, 6, 6])

    monkeypatch.setattr(ablate, "score_skips", fake_skips)
    monkeypatch.setattr(lens, "run_lens", fake_lens)
    out = tmp_path / "map"
    done = CliRunner().invoke(main, ["map", str(smollm2), "--probe", "reasoning", "--limit", "3", "--lens-limit", "2",
                                     "--workers", "2", "--server-args", "-ngl 0", "--llama-server", str(llama_server_bin),
                                     "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert asked["skips"] == [(layer,) for layer in range(30)] and asked["journal"] == out / "skips.jsonl"
    assert asked["prompts"] == 2 and asked["hidden"] and asked["workers"] == 2
    assert list(asked["args"][:2]) == ["-ngl", "0"] and "--threads" in asked["args"]  # a share of the cores
    assert "4:reasoning" in done.output
    report = json.loads((out / "report.json").read_text())
    assert report["path_method"] in ("rewrite", "runtime") and (out / "map_labels.png").exists()
    done = CliRunner().invoke(main, ["compare-maps", str(out / "report.json"), str(out / "report.json"),
                                     "--out", str(tmp_path / "cmp")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "cmp" / "compare_maps_importance.png").exists()
