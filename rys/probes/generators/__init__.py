"""Deterministic generators of the built-in probe sets: same (n, seed) -> byte-identical file.

Items are written for this project (never copied from public benchmarks) so a probe cannot be
contaminated by, or contaminate, the benchmarks used to validate a config.
"""

from __future__ import annotations

import json
from pathlib import Path

from rys.probes.generators import eq_scenarios, json_follow, math_hard, reasoning
from rys.probes.sets import ProbeError, canonical_json

# name -> (generate(n, seed) -> probe dict, default item count)
GENERATORS = {
    "math": (math_hard.generate_math, 48),
    "math-logprob": (math_hard.generate_math_logprob, 48),
    "reasoning": (reasoning.generate, 50),
    "eq": (eq_scenarios.generate_eq, 48),
    "eq-choice": (eq_scenarios.generate_eq_choice, 40),
    "json": (json_follow.generate, 48),
}
DEFAULT_SEED = 0


def generate(name: str, n: int | None = None, seed: int = DEFAULT_SEED) -> dict:
    if name not in GENERATORS:
        raise ProbeError(f"no generator for probe {name!r}", f"use one of: {', '.join(GENERATORS)}")
    make, default_n = GENERATORS[name]
    n = default_n if n is None else n
    if n < 1:
        raise ProbeError(f"--n must be at least 1, got {n}", "ask for e.g. --n 48")
    data = make(n, seed)
    data["generator"] = {"name": name, "n": n, "seed": seed}
    return data


def render(data: dict) -> str:
    """The file text: stable key order and indentation so regenerating gives identical bytes."""
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def write(data: dict, out: Path) -> Path:
    """Write atomically (temp name + rename): never a half-written probe file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render(data), encoding="utf-8")
    tmp.replace(out)
    return out


__all__ = ["DEFAULT_SEED", "GENERATORS", "canonical_json", "generate", "render", "write"]
