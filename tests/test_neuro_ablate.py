"""Ablation and circuits on the real llama-server with SmolLM2, and their commands end to end."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rys import paths as layer_paths
from rys.neuro import NeuroError
from rys.neuro.ablate import blocks, score_skips

CAPITALS = {"name": "capitals", "description": "three capitals (test)", "scorer": "continuation", "chat": False,
            "items": [{"id": "fr", "prompt": "The capital of France is", "answer": " Paris"},
                      {"id": "it", "prompt": "The capital of Italy is", "answer": " Rome"},
                      {"id": "jp", "prompt": "The capital of Japan is", "answer": " Tokyo"}]}


@pytest.fixture
def probe_file(tmp_path):
    path = tmp_path / "capitals.json"
    path.write_text(json.dumps(CAPITALS))
    return path


@pytest.fixture
def config(llama_server_bin, tmp_path):
    from rys.server import ServerConfig

    return ServerConfig(binary=llama_server_bin, ctx_size=128, log_dir=tmp_path / "logs")


def test_blocks():
    assert blocks(5, 2) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert blocks(5, 2, [3, 4]) == [(3, 4)]  # a block running past the end is left out
    with pytest.raises(NeuroError, match="block size"):
        blocks(5, 5)


def test_ablation_equals_probe_score_of_explicit_skip_path(smollm2, probe_file, config, serve, tmp_path):
    from rys.gguf import LayerStore, build_single
    from rys.probes import load_probe, run_probe

    probe = load_probe(probe_file)
    journal = tmp_path / "skips.jsonl"
    scores = score_skips(smollm2, probe, config, [(3,)], journal=journal, store=LayerStore(tmp_path / "store"))
    row = scores.row((3,))
    # the same path built as one self-contained file by the other rewriter, served on its own
    single = build_single(smollm2, tmp_path / "skip3.gguf", layer_paths.skip([3], 30))
    explicit = run_probe(serve(single).client, probe)
    baseline = run_probe(serve(smollm2).client, probe)
    assert row.score == pytest.approx(explicit.score, abs=1e-9)
    assert scores.baseline.score == pytest.approx(baseline.score, abs=1e-9)
    assert row.importance == pytest.approx(baseline.score - explicit.score, abs=1e-9)
    assert row.importance != 0.0  # skipping a layer of a 30-layer model changes the answer probabilities
    assert row.path == "0..2,4..29"
    # resume: a second run finds both configs in the journal and starts no server
    again = score_skips(smollm2, probe, config.__class__(binary="/nonexistent/llama-server"), [(3,)],
                        journal=journal)
    assert again.row((3,)).score == row.score and len(journal.read_text().splitlines()) == 2


def test_journal_of_another_probe_is_refused(smollm2, probe_file, config, tmp_path):
    from rys.probes import load_probe

    journal = tmp_path / "skips.jsonl"
    journal.write_text(json.dumps({"model": str(smollm2.resolve()), "probe_sha256": "other", "skipped": [],
                                   "result": {}}) + "\n")
    with pytest.raises(NeuroError, match="another model or probe"):
        score_skips(smollm2, load_probe(probe_file), config, [(3,)], journal=journal)


def test_ablate_and_circuit_commands(smollm2, llama_server_bin, probe_file, tmp_path, monkeypatch):
    monkeypatch.setenv("RYS_STORE_DIR", str(tmp_path / "store"))  # never the shared default store
    from rys.cli import main

    out = tmp_path / "run"
    common = ["--llama-server", str(llama_server_bin), "--ctx-size", "128", "--out", str(out)]
    done = CliRunner().invoke(main, ["ablate", str(smollm2), "--probe", str(probe_file), "--layers", "2,3",
                                     *common])
    assert done.exit_code == 0, done.output
    report = json.loads((out / "ablation.json").read_text())
    assert [r["skipped"] for r in report["rows"]] == [[2], [3]]
    assert {f.name for f in out.iterdir()} >= {"ablation.json", "ablation.csv", "ablation.html", "ablation.png"}
    # circuit reuses the journal: only the pair (2, 3) is new
    done = CliRunner().invoke(main, ["circuit", str(smollm2), "--probe", str(probe_file), "--layers", "2,3",
                                     "--strategy", "exhaustive", *common])
    assert done.exit_code == 0, done.output
    assert "skip 2:" not in done.output and "skip 2,3:" in done.output
    circuit = json.loads((out / "circuit.json").read_text())
    (pair,) = circuit["pairs"]
    single = {r["skipped"][0]: r["importance"] for r in report["rows"]}
    assert pair["interaction"] == pytest.approx(pair["delta_ab"] - single[2] - single[3])
    assert (out / "circuit_heatmap.png").stat().st_size > 0


def test_ablate_bad_block_size_is_a_clear_error(smollm2, llama_server_bin, probe_file, tmp_path):
    from rys.cli import main

    done = CliRunner().invoke(main, ["ablate", str(smollm2), "--probe", str(probe_file), "--block", "30",
                                     "--llama-server", str(llama_server_bin), "--out", str(tmp_path / "o")])
    assert done.exit_code == 2 and "block size 30" in done.output


def test_prompt_repeat_scores_counts_and_a_duplication_path(smollm2, probe_file, config, tmp_path):
    from rys.gguf import LayerStore
    from rys.neuro.prompt_repeat import repeated, run_prompt_repeat
    from rys.probes import load_probe

    probe = load_probe(probe_file)
    assert repeated(probe, 2).items[0].prompt == "The capital of France is\n\nThe capital of France is"
    with pytest.raises(NeuroError, match="less than 1"):
        repeated(probe, 0)
    data = run_prompt_repeat(smollm2, probe, config, [2], best_path=layer_paths.duplicate(10, 12, 30),
                             store=LayerStore(tmp_path / "store"))
    one, two = data["repeats"]
    assert (one["count"], one["delta"], one["score"]) == (1, 0.0, data["baseline"])
    assert two["count"] == 2 and two["score"] != one["score"]
    assert two["delta"] == pytest.approx(two["score"] - one["score"])
    assert data["path"]["path"] == "0..11,10..29" and data["path"]["delta"] != 0.0
