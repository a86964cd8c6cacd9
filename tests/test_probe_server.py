"""Probes on the REAL llama-server with the real SmolLM2-135M (no mocks): every built-in probe gives
plausible numbers, coverage is measured, and per-item records survive JSON."""

import dataclasses
import json
import math

import pytest
from click.testing import CliRunner

from rys.probes import ProbeResult, list_probes, load_probe, parse_probe, run_probe
from rys.probes.scorers.choice import option_token_ids

pytestmark = [pytest.mark.server, pytest.mark.slow]

# Items per probe: the generators cycle through categories, so the first items cover all of them.
# Kept small because the test machine is 2 shared CPU cores.
ITEMS = {"reasoning": 5, "eq-choice": 4, "math-logprob": 4, "math": 8, "eq": 2, "json": 2}


@pytest.fixture(scope="module")
def client(llama_server_bin, smollm2, tmp_path_factory):
    """One real server for the module's tests (starting one per test would dominate their time)."""
    from rys.server import LlamaServer, ServerConfig

    config = ServerConfig(binary=llama_server_bin, ctx_size=1024, slots=2,
                          log_dir=tmp_path_factory.mktemp("server-logs"))
    with LlamaServer(smollm2, config, name="probe-tests") as server:
        yield server.client


def _head(probe, n):
    return dataclasses.replace(probe, items=probe.items[:n])


def test_builtin_probe_list():
    assert sorted(ITEMS) == list_probes()


@pytest.mark.parametrize("name", sorted(ITEMS))
def test_builtin_probe_on_smollm2(client, name):
    probe = _head(load_probe(name), ITEMS[name])
    result = run_probe(client, probe)
    assert result.n == ITEMS[name] == len(result.items)
    assert [i.id for i in result.items] == [i.id for i in probe.items]
    assert all(0.0 <= i.score <= 1.0 for i in result.items)
    if probe.scorer == "continuation":
        assert result.coverage is None and result.chance is None
    else:
        assert result.coverage is not None and 0.0 <= result.coverage <= 1.0 and result.chance is not None
    assert ProbeResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    # plausible: a weak model is neither always wrong nor always right (JSON may honestly be all-or-nothing)
    if name != "json":
        assert 0.0 < result.score < 1.0, (name, result.score, [i.prediction for i in result.items])


def test_choice_reads_real_distribution(client):
    probe = _head(load_probe("reasoning"), 5)
    table = option_token_ids(client, ("A", "B", "C", "D"))
    # " A" and "A" are different tokens of one option; no token belongs to two options
    assert all(len(ids) >= 2 for ids in table.values())
    assert len({t for ids in table.values() for t in ids}) == sum(len(ids) for ids in table.values())
    result = run_probe(client, probe)
    for item in result.items:
        assert 0.0 < item.coverage <= 1.0 and 0.0 < item.p_correct < 1.0
        assert math.isfinite(item.detail["log_odds"])
        assert item.correct == (item.detail["log_odds"] > 0) == (item.prediction == probe.items[
            [i.id for i in probe.items].index(item.id)].answer)
    # the same probe on the same server gives the same numbers (up to batching noise with 2 slots)
    again = run_probe(client, probe)
    assert [i.score for i in again.items] == pytest.approx([i.score for i in result.items], abs=1e-3)


def test_layer_scan_rating_probe(client, tmp_path):
    path = tmp_path / "scan.json"
    path.write_text(json.dumps([
        {"prompt": "On a scale from 0 to 9, how hot is the surface of the sun? Answer with one digit.\n"
                   "Rating:", "expected_score": 9},
        {"prompt": "On a scale from 0 to 9, how heavy is a feather? Answer with one digit.\nRating:",
         "expected_score": 0},
    ]))
    probe = load_probe(path)
    result = run_probe(client, probe)
    for item in result.items:
        e = item.detail["expectation"]
        assert 0.0 <= e <= 9.0 and 0.0 < item.coverage <= 1.0
        assert item.score == pytest.approx(1 - abs(e - probe.items[int(item.id)].answer) / 9)
    assert result.chance == pytest.approx(0.5)


def test_choice_gen_scorer_generates_and_extracts(client):
    data = json.loads(json.dumps({"name": "gen", "scorer": "choice-gen", "chat": True, "max_tokens": 8,
                                  "items": [i.to_dict() for i in load_probe("reasoning").items[:3]]}))
    result = run_probe(client, parse_probe(data))
    assert all(i.detail["text"] is not None for i in result.items)
    assert all(i.coverage in (0.0, 1.0) and i.score == float(i.correct) for i in result.items)


def test_cli_probe_json(llama_server_bin, smollm2):
    from rys.cli import main

    out = CliRunner().invoke(main, ["probe", str(smollm2), "--probe", "eq-choice", "--limit", "4", "--json",
                                    "--llama-server", str(llama_server_bin), "--ctx-size", "1024"])
    assert out.exit_code == 0, out.output
    result = ProbeResult.from_dict(json.loads(out.stdout))
    assert result.probe == "eq-choice" and result.n == 4 and 0.0 < result.score < 1.0


def test_cli_bad_probe_is_a_clear_error(llama_server_bin):
    from rys.cli import main

    out = CliRunner().invoke(main, ["probe", "smollm2", "--probe", "nope", "--llama-server", str(llama_server_bin)])
    assert out.exit_code == 2 and "unknown probe 'nope'" in out.output


def test_cli_probe_on_a_layer_path(llama_server_bin, smollm2, tmp_path, monkeypatch):
    from rys.cli import main

    monkeypatch.setenv("RYS_STORE_DIR", str(tmp_path / "store"))
    out = CliRunner().invoke(main, ["probe", "smollm2", "--probe", "reasoning", "--limit", "3", "--path",
                                    "0..20,15..29", "--llama-server", str(llama_server_bin)])
    assert out.exit_code == 0, out.output
    assert "path 0..20,15..29" in out.stdout and "score" in out.stdout and "flags" in out.stdout
    assert list((tmp_path / "store").rglob("*.gguf"))  # served from the layer store
