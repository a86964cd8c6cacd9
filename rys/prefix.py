"""Prefix reuse: a config starts from the baseline's residual stream after the layers it shares with it.

A duplication config (i, j) runs layers 0..j-1 exactly as the unmodified model does, on the same tokens,
so their output (the residual stream after layer j-1) is the baseline's. On a server built with
vendor/llama.cpp/prefix-resume.patch the baseline's requests keep those rows (`rys_capture_layers`), and
the config then runs only the rest of its path on the same server, fed with the kept rows
(`rys_resume_layer`): the same numbers as the whole path, for fewer layers. The same holds for any path
that starts with the unmodified model's first layers (a skip-one ablation of layer s shares 0..s-1).
Pure planning here; rys.serve_path.PathSession drives a server with it (sweeps, ablations).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence

DEFAULT_BUDGET_MIB = 2048  # kept rows at most, unless $RYS_PREFIX_MIB says otherwise
BUDGET_ENV = "RYS_PREFIX_MIB"
PROMPT_TOKENS_PER_CHAR = 0.5  # an over-estimate: English text runs about 0.25 tokens per character
TEMPLATE_TOKENS = 64  # what a chat template adds around a prompt, at most for the demo models


def reuse_layer(path: Sequence[int], n_layers: int) -> int | None:
    """The last layer the path shares with the unmodified model from its start (path[:k] == 0..k-1), whose
    rows it can start from; None when it shares none. Never the model's last layer (its rows are kept only
    for the scored positions) nor the path's last entry (something must run after it)."""
    k = 0
    while k < len(path) - 1 and k < n_layers - 1 and path[k] == k:
        k += 1
    return k - 1 if k else None


def suffix(path: Sequence[int], layer: int) -> list[int]:
    """The part of the path that runs after the rows kept after `layer`."""
    return list(path[layer + 1:])


def layer_uses(paths: Iterable[Sequence[int]], n_layers: int) -> Counter:
    """How many of the paths would start from each layer's rows."""
    return Counter(x for x in (reuse_layer(p, n_layers) for p in paths) if x is not None)


def rows_bytes_per_layer(prompts: Iterable[str], n_embd: int) -> int:
    """An over-estimate of what keeping one layer's rows for these prompts costs (f32 rows, one per token)."""
    tokens = sum(int(len(p) * PROMPT_TOKENS_PER_CHAR) + TEMPLATE_TOKENS for p in prompts)
    return tokens * n_embd * 4


def choose_layers(uses: Counter, bytes_per_layer: int, budget_bytes: int) -> list[int]:
    """The layers to keep rows for: the most used first, as many as the budget holds."""
    if bytes_per_layer <= 0:
        return sorted(uses)
    fit = max(0, budget_bytes // bytes_per_layer)
    ranked = sorted(uses, key=lambda layer: (-uses[layer], layer))
    return sorted(ranked[:fit])


def budget_bytes() -> int:
    """What kept rows may take: $RYS_PREFIX_MIB, else the smaller of 2 GiB and a quarter of free memory."""
    import psutil

    mib = os.environ.get(BUDGET_ENV)
    if mib:
        return int(float(mib) * 2**20)
    return min(DEFAULT_BUDGET_MIB * 2**20, psutil.virtual_memory().available // 4)


def plan_capture(paths: Iterable[Sequence[int]], n_layers: int, prompts: Iterable[str], n_embd: int) -> list[int]:
    """The layers whose rows the unmodified path keeps for these paths and prompts, within budget_bytes()."""
    return choose_layers(layer_uses(paths, n_layers), rows_bytes_per_layer(prompts, n_embd), budget_bytes())


def available(config, probes=()) -> bool:
    """Whether servers of this ServerConfig can keep and start from rows for these probes: a build with
    prefix-resume.patch, one slot, and probes that only score prompts (a generated token has no rows)."""
    from rys.llama.features import PREFIX_RESUME, has_feature
    from rys.probes.scorers import get_scorer

    return (has_feature(config.binary, PREFIX_RESUME) and config.slots == 1
            and not any(get_scorer(p.scorer).generates for p in probes))
