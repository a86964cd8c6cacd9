"""Probe sets as data: load a built-in set by name or a user's file by path, validate it, hash it.

A probe set file is JSON: {name, description, scorer, chat, answer_prefix, max_tokens, items: [{id,
category, prompt, answer, options, meta}]}. The layer-scan custom format (a list of {prompt,
expected_score} digit-rating questions) is accepted as is and read as a `rating` probe.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import rys
from rys.errors import RysError

FORMAT = "rys-probe/1"


class ProbeError(RysError):
    """A probe set that cannot be found or does not have the shape its scorer needs."""


@dataclass(frozen=True)
class ProbeItem:
    id: str
    prompt: str
    answer: Any  # the gold answer; its type is the scorer's business (label, int, ratings, object)
    category: str = "all"
    options: tuple[str, ...] | None = None  # answer labels for choice-style scorers
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"id": self.id, "category": self.category, "prompt": self.prompt, "answer": self.answer}
        if self.options is not None:
            out["options"] = list(self.options)
        if self.meta:
            out["meta"] = self.meta
        return out


@dataclass(frozen=True)
class ProbeSet:
    name: str
    description: str
    scorer: str
    chat: bool
    items: tuple[ProbeItem, ...]
    sha256: str  # of the canonical file content: identifies this probe version (resume, provenance)
    answer_prefix: str = ""  # text put after the (templated) prompt, where the answer starts
    max_tokens: int = 64  # for scorers that generate
    source: str | None = None

    @property
    def categories(self) -> list[str]:
        return sorted({item.category for item in self.items})


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_sha256(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


def builtin_root():
    """The built-in probe files: package data rys.probe_data when installed, else the repo's probes/."""
    try:
        root = resources.files("rys.probe_data")
        if any(entry.name.endswith(".json") for entry in root.iterdir()):
            return root
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    # An editable install maps rys.probe_data nowhere importable; the data sits next to the package.
    return Path(rys.__file__).resolve().parent.parent / "probes"


def list_probes() -> list[str]:
    """Names of the built-in probe sets."""
    root = builtin_root()
    if not root.is_dir():
        return []
    return sorted(entry.name[: -len(".json")] for entry in root.iterdir() if entry.name.endswith(".json"))


def load_probe(name_or_path: str | Path) -> ProbeSet:
    """A built-in set by name, or a probe file by path (rys format or layer-scan format)."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        raw, source = path.read_text(encoding="utf-8"), str(path)
    elif text in list_probes():
        entry = builtin_root().joinpath(text + ".json")
        raw, source = entry.read_text(encoding="utf-8"), str(entry)
    else:
        raise ProbeError(f"unknown probe {text!r}: not a built-in probe set and no such file",
                         f"use one of: {', '.join(list_probes())} (rys probes), or a path to a probe JSON file")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ProbeError(f"probe file {source} is not valid JSON: {err}", "fix the file's JSON syntax") from err
    return parse_probe(data, source=source, default_name=path.stem)


def parse_probe(data: Any, source: str | None = None, default_name: str = "custom") -> ProbeSet:
    """Probe data (already parsed JSON) -> a validated ProbeSet."""
    where = source or "probe data"
    sha = content_sha256(data)
    if _is_layer_scan(data):
        data = _from_layer_scan(data, default_name)
    if not isinstance(data, dict) or "items" not in data:
        raise ProbeError(f"{where} is not a probe set: expected an object with 'items' "
                         "(or a layer-scan list of {prompt, expected_score})",
                         "see docs/probes.md for the probe file format")
    from rys.probes.scorers import SCORERS, get_scorer  # scorers import this module

    scorer_name = data.get("scorer")
    if scorer_name not in SCORERS:
        raise ProbeError(f"{where}: unknown scorer {scorer_name!r}", f"use one of: {', '.join(SCORERS)}")
    raw_items = data["items"]
    if not isinstance(raw_items, list) or not raw_items:
        raise ProbeError(f"{where}: 'items' must be a non-empty list", "add at least one item")
    items = tuple(_parse_item(raw, n, where) for n, raw in enumerate(raw_items))
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ProbeError(f"{where}: duplicate item id {item.id!r}", "give every item a unique 'id'")
        seen.add(item.id)
    scorer = get_scorer(scorer_name)
    for item in items:
        problem = scorer.check_item(item)
        if problem:
            raise ProbeError(f"{where}: item {item.id!r} does not fit scorer {scorer_name!r}: {problem}",
                             "fix the item's 'answer'/'options' (see docs/probes.md)")
    max_tokens = data.get("max_tokens", 64)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ProbeError(f"{where}: max_tokens must be a positive integer, got {max_tokens!r}",
                         "set max_tokens to e.g. 64")
    return ProbeSet(name=str(data.get("name") or default_name), description=str(data.get("description", "")),
                    scorer=scorer_name, chat=bool(data.get("chat", False)), items=items, sha256=sha,
                    answer_prefix=str(data.get("answer_prefix", "")), max_tokens=max_tokens, source=source)


def _parse_item(raw: Any, n: int, where: str) -> ProbeItem:
    if not isinstance(raw, dict) or not isinstance(raw.get("prompt"), str) or "answer" not in raw:
        raise ProbeError(f"{where}: item #{n} needs a string 'prompt' and an 'answer'",
                         "each item is an object like {\"id\": \"q1\", \"prompt\": \"...\", \"answer\": ...}")
    options = raw.get("options")
    if options is not None and (not isinstance(options, list) or len(options) < 2
                                or not all(isinstance(o, str) and o for o in options)):
        raise ProbeError(f"{where}: item #{n} 'options' must be a list of at least two strings",
                         "e.g. \"options\": [\"A\", \"B\", \"C\", \"D\"]")
    return ProbeItem(id=str(raw.get("id", n)), prompt=raw["prompt"], answer=raw["answer"],
                     category=str(raw.get("category", "all")),
                     options=tuple(options) if options is not None else None, meta=raw.get("meta") or {})


# layer-scan custom probes: a list of questions (or {name, description, questions|prompts}) whose
# answer is a digit rating 0-9 given as expected_score.
def _layer_scan_questions(data: Any):
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and "items" not in data:
        for key in ("questions", "prompts", "probes"):
            if isinstance(data.get(key), list):
                return data[key]
    return None


def _is_layer_scan(data: Any) -> bool:
    questions = _layer_scan_questions(data)
    return bool(questions) and all(isinstance(q, dict) and "expected_score" in q for q in questions)


def _from_layer_scan(data: Any, default_name: str) -> dict:
    head = data if isinstance(data, dict) else {}
    items = [{"id": str(q.get("id", n)), "prompt": q.get("prompt", q.get("question")),
              "answer": q["expected_score"], "category": q.get("category", "all")}
             for n, q in enumerate(_layer_scan_questions(data))]
    return {"name": head.get("name", default_name), "description": head.get("description", "layer-scan probe"),
            "scorer": "rating", "chat": head.get("chat", False), "items": items}
