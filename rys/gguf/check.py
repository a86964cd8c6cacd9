"""Checks made before a model is served or swept: the file is a whole GGUF (the same reading `rys inspect`
does, so a truncated file is one line instead of a server log), and which layer paths its architecture
allows under each method (rys/gguf/arch_rules.py). Results are cached per file (path, mtime, size)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rys.gguf.arch_rules import REWRITE, RUNTIME, refusal, rule_for
from rys.gguf.errors import UnsupportedPath


@dataclass(frozen=True)
class ModelFacts:
    arch: str
    n_layers: int
    n_nextn: int
    meta: dict  # key -> MetaValue (long arrays stand in as LongArray)


@functools.lru_cache(maxsize=64)
def _facts(path: str, _mtime_ns: int, _size: int) -> ModelFacts:
    from rys.gguf.source import open_source

    source = open_source(path)  # raises CorruptGGUF with the reason (truncated, not a GGUF, ...)
    meta = {key: mv for key, (_, mv) in source.fields.items()}
    return ModelFacts(source.arch, source.n_layers, source.n_nextn, meta)


def model_facts(model: str | Path) -> ModelFacts:
    """The checked facts of a model file (CorruptGGUF when the file is not a whole GGUF)."""
    path = Path(model).resolve()
    stat = path.stat()
    return _facts(str(path), stat.st_mtime_ns, stat.st_size)


def check_servable(model: str | Path) -> ModelFacts:
    """The check every serving command makes before it starts llama-server."""
    return model_facts(model)


def path_problems_for(model: str | Path, path: Sequence[int], method: str = REWRITE) -> list[str]:
    """Why `path` of `model` cannot be run correctly under `method` (empty: it can)."""
    from rys.gguf.metadata import path_problems

    facts = model_facts(model)
    problems = path_problems(rule_for(facts.arch), facts.arch, facts.meta, facts.n_layers, list(path), method)
    if method == RUNTIME and facts.n_nextn:  # even the identity: the patch would drop the nextn blocks
        problems.append("the model has MTP (nextn) layers, which the runtime patch does not remap")
    return problems


def arch_refusal(model: str | Path) -> str | None:
    """Why no layer path but the identity can be right for this model under either method (None: some
    can), from its architecture alone: what a sweep checks before it starts."""
    facts = model_facts(model)
    n = facts.n_layers
    if n < 2:
        return None
    # a one-layer skip touches every kind of rule that can refuse a model outright
    probe = list(range(1, n))
    reasons = path_problems_for(model, probe, REWRITE)
    whole = refusal(rule_for(facts.arch), facts.arch) is not None
    if whole or (reasons and all(_is_model_wide(r, facts) for r in reasons)):
        return reasons[0]
    return None


def _is_model_wide(reason: str, facts: ModelFacts) -> bool:
    rule = rule_for(facts.arch)
    return rule is not None and any(when.reason in reason for when in rule.refuse_when)


def refuse_sweep(model: str | Path) -> None:
    """Raise UnsupportedPath up front when a sweep of `model` could only fail config after config."""
    reason = arch_refusal(model)
    if reason:
        raise UnsupportedPath(f"cannot sweep {Path(model).name}: {reason}",
                              "sweep a model of another architecture (rys inspect shows it; docs/surgery.md lists "
                              "what each architecture supports)")
