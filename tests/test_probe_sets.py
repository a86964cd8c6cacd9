"""Loading, validation and hashing of probe sets; the result records; the honesty flags."""

import importlib
import json
import sys
from pathlib import Path

import pytest

import rys
from rys.probes import ItemResult, ProbeError, ProbeResult, list_probes, load_probe, parse_probe, summarize
from rys.probes.honesty import honesty_flags
from rys.probes.sets import builtin_root

BUILTIN = ["eq", "eq-choice", "json", "math", "math-logprob", "reasoning"]


def test_builtin_sets_from_repo_fallback():
    # An editable install cannot import rys.probe_data; the data is found next to the package.
    assert builtin_root() == Path(rys.__file__).resolve().parent.parent / "probes"
    assert list_probes() == BUILTIN
    for name in BUILTIN:
        probe = load_probe(name)
        assert probe.name == name and len(probe.items) >= 40 and len(probe.sha256) == 64


def test_builtin_sets_from_package_data(tmp_path, monkeypatch):
    # As installed from a wheel: rys/probe_data/*.json inside the package.
    data_dir = tmp_path / "rys" / "probe_data"
    data_dir.mkdir(parents=True)
    (data_dir / "tiny.json").write_text(json.dumps(
        {"name": "tiny", "scorer": "number", "items": [{"id": "a", "prompt": "2+2?", "answer": 4}]}))
    monkeypatch.setattr(rys, "__path__", [*rys.__path__, str(tmp_path / "rys")])
    monkeypatch.delitem(sys.modules, "rys.probe_data", raising=False)
    importlib.invalidate_caches()
    try:
        assert Path(str(builtin_root().joinpath("tiny.json"))) == data_dir / "tiny.json"
        assert list_probes() == ["tiny"]
        assert load_probe("tiny").items[0].answer == 4
    finally:
        sys.modules.pop("rys.probe_data", None)


def test_hash_is_of_canonical_content(tmp_path):
    data = {"name": "t", "scorer": "choice", "items": [{"id": "1", "prompt": "p", "answer": "A",
                                                        "options": ["A", "B"]}]}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(data))
    b.write_text(json.dumps(data, indent=4, sort_keys=True))  # same content, other bytes
    assert load_probe(a).sha256 == load_probe(b).sha256
    data["items"][0]["answer"] = "B"
    a.write_text(json.dumps(data))
    assert load_probe(a).sha256 != load_probe(b).sha256


def test_layer_scan_format_is_accepted_as_is(tmp_path):
    path = tmp_path / "my_scan.json"
    path.write_text(json.dumps([{"prompt": "Rate 0-9: how hot is the sun? Answer:", "expected_score": 9},
                                {"prompt": "Rate 0-9: how cold is fire? Answer:", "expected_score": 0}]))
    probe = load_probe(path)
    assert (probe.name, probe.scorer, probe.chat) == ("my_scan", "rating", False)
    assert [i.answer for i in probe.items] == [9, 0]
    wrapped = tmp_path / "w.json"
    wrapped.write_text(json.dumps({"name": "scan", "questions": [{"prompt": "x", "expected_score": 4}]}))
    assert load_probe(wrapped).name == "scan"


@pytest.mark.parametrize("data, message", [
    ({"items": []}, "unknown scorer"),
    ({"scorer": "choice", "items": []}, "non-empty"),
    ({"scorer": "choice", "items": [{"prompt": "p", "answer": "C", "options": ["A", "B"]}]}, "not one of the options"),
    ({"scorer": "choice", "items": [{"prompt": "p", "answer": "A"}]}, "needs 'options'"),
    ({"scorer": "number", "items": [{"prompt": "p", "answer": "12"}]}, "must be an integer"),
    ({"scorer": "number", "items": [{"id": 1, "prompt": "p", "answer": 1}, {"id": 1, "prompt": "q", "answer": 2}]},
     "duplicate item id"),
    ({"scorer": "rating", "items": [{"prompt": "p", "answer": 11}]}, "rating from 0 to 9"),
    ({"scorer": "eq", "items": [{"prompt": "p", "answer": {"Sad": 12}}]}, "0-10"),
    ({"scorer": "json", "items": [{"prompt": "p"}]}, "needs a string 'prompt' and an 'answer'"),
    ([1, 2], "not a probe set"),
])
def test_bad_probe_files_get_clear_errors(data, message):
    with pytest.raises(ProbeError, match=message) as err:
        parse_probe(data)
    assert err.value.hint


def test_unknown_name_and_bad_json(tmp_path):
    with pytest.raises(ProbeError, match="unknown probe") as err:
        load_probe("no-such-probe")
    assert "reasoning" in err.value.hint
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ProbeError, match="not valid JSON"):
        load_probe(bad)


def _items(scores, correct):
    return [ItemResult(id=str(i), category="c" if i % 2 else "d", score=s, correct=c, coverage=0.8)
            for i, (s, c) in enumerate(zip(scores, correct))]


def test_summarize_and_round_trip():
    probe = parse_probe({"name": "t", "scorer": "choice", "items": [
        {"id": str(i), "prompt": "p", "answer": "AB"[i % 2], "options": ["A", "B"], "category": "cd"[i % 2]}
        for i in range(4)]})
    result = summarize(probe, _items([1.0, 0.5, 0.0, 0.5], [False, True, False, True]))
    assert (result.score, result.accuracy, result.coverage) == (0.5, 0.5, pytest.approx(0.8))
    assert (result.chance, result.constant, result.constant_answer) == (0.5, 0.5, "A")
    assert result.categories == {"c": {"n": 2, "score": 0.5, "accuracy": 1.0},
                                 "d": {"n": 2, "score": 0.5, "accuracy": 0.0}}
    assert "degenerate" in result.flags and "at-chance" in result.flags
    again = ProbeResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result


def test_honesty_flags():
    assert honesty_flags(0.9, 0.8, chance=0.25, constant=0.3, coverage=0.9) == []
    assert honesty_flags(0.3, 0.2, chance=0.25, constant=0.3, coverage=0.4) == [
        "degenerate", "at-chance", "low-coverage"]
    # against a baseline: the constant reaches the baseline's score, so the probe is degenerate there
    assert honesty_flags(0.9, 0.8, chance=None, constant=0.6, coverage=None, baseline=0.55) == ["degenerate"]
