"""rys calibrate: read every layer's hidden states for a set of prompts through llama-server and fit a tuned
lens on them (rys.neuro.tuned).

The states are the /embeddings (pooling none) of each truncated path 0..L, one server per layer: the
reading `rys lens --hidden` does, which works on the stock server too (a patched one runs the paths at
run time). The lens file records how long reading and fitting took (docs/neuro.md has the figures).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rys import paths as layer_paths
from rys.neuro import NeuroError, hidden
from rys.neuro.lens import LensPrompt
from rys.neuro.pipeline import in_order
from rys.probes import open_target

MIN_PROMPTS = 4  # fit, selection and held-out prompts need at least one each, plus one more to fit on


@dataclass
class PromptStates:
    ids: list[list[int]]  # token ids per prompt
    states: dict[int, list[np.ndarray]]  # layer -> per prompt [tokens, n_embd], final-norm gain divided out
    seconds: float


def text_prompts(path: Path) -> list[LensPrompt]:
    """One prompt per non-empty line of a text file."""
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise NeuroError(f"cannot read {path}: {err}", "pass a UTF-8 text file, one prompt per line") from None
    return [LensPrompt(f"line-{k}", line) for k, line in enumerate(lines, 1) if line]


def split_prompts(n: int, held_out: float, seed: int) -> dict[str, list[int]]:
    """Prompt indexes for fitting, for choosing the step (selection) and for the held-out figures."""
    if n < MIN_PROMPTS:
        raise NeuroError(f"calibration needs at least {MIN_PROMPTS} prompts, got {n}",
                         "give more --probe items (--limit) or more lines in --text")
    if not 0 < held_out < 1:
        raise NeuroError(f"--held-out must be between 0 and 1, got {held_out}", "e.g. --held-out 0.25")
    order = [int(i) for i in np.random.default_rng(seed).permutation(n)]
    n_held = min(max(1, round(n * held_out)), n - 3)
    rest = order[n_held:]
    n_sel = max(1, len(rest) // 3)
    return {"held_out": sorted(order[:n_held]), "select": sorted(rest[:n_sel]), "fit": sorted(rest[n_sel:])}


def read_states(model: Path, prompts: Sequence[LensPrompt], config, *, workers: int = 2, store=None,
                on_layer: Callable[[int, int], None] | None = None) -> PromptStates:
    """Hidden states after every layer for every prompt (all token positions)."""
    from rys.gguf.source import open_source

    start = time.monotonic()
    source = open_source(model)
    n_layers = source.n_layers
    gain = hidden.read_gain(source)
    config = dataclasses.replace(config, embeddings=True)
    with open_target(model, config, name="calibrate-final") as server:
        client = server.client
        ids = [client.tokenize(client.format_prompt(p.text, p.chat) + p.suffix, add_special=True) for p in prompts]
        too_long = [p.id for p, t in zip(prompts, ids) if len(t) > config.ctx_size]
        if too_long:
            raise NeuroError(f"prompts {too_long[:5]} are longer than the context ({config.ctx_size} tokens)",
                             "raise --ctx-size or shorten those prompts")
        final = [hidden.remove_gain(client.embeddings(t), gain).astype(np.float32) for t in ids]

    def read_layer(layer: int) -> list[np.ndarray]:
        with open_target(model, config, path=layer_paths.truncate(layer + 1, n_layers), store=store,
                         name=f"calibrate-{layer}") as server:
            return [hidden.remove_gain(server.client.embeddings(t), gain).astype(np.float32) for t in ids]

    states: dict[int, list[np.ndarray]] = {n_layers - 1: final}
    for done, (layer, rows) in enumerate(in_order(read_layer, range(n_layers - 1), workers), 1):
        states[layer] = rows
        if on_layer:
            on_layer(done, n_layers - 1)
    return PromptStates(ids, dict(sorted(states.items())), time.monotonic() - start)


def calibrate(model: Path, prompts: Sequence[LensPrompt], config, *, held_out: float = 0.25, seed: int = 0,
              adam_steps: int = 8, workers: int = 2, store=None, on_read=None, on_fit=None):
    """Read the states, fit the lens, return (TunedLens, report dict)."""
    from rys.gguf.provenance import file_sha256
    from rys.neuro.head import read_head
    from rys.neuro.tuned import TunedLens, fit_lens

    split = split_prompts(len(prompts), held_out, seed)
    read = read_states(model, prompts, config, workers=workers, store=store, on_layer=on_read)
    # position 0 (the BOS token, or the first token) predicts from nothing and carries the attention sink's
    # outsized state: it is left out of the fit and of the figures
    states = {layer: [rows[1:] for rows in per_prompt] for layer, per_prompt in read.states.items()}
    if any(len(states[0][i]) == 0 for part in split.values() for i in part):
        raise NeuroError("a calibration prompt has a single token", "give prompts of two tokens or more")
    t0 = time.monotonic()
    head = read_head(model)
    fits, held = fit_lens(head, states, split, adam_steps=adam_steps, seed=seed, on_layer=on_fit)
    fit_s = time.monotonic() - t0
    sha = file_sha256(model)
    tokens = {part: int(sum(len(states[0][i]) for i in idx)) for part, idx in split.items()}
    info = {"prompts": len(prompts), "split": split, "tokens": tokens, "seed": seed, "adam_steps": adam_steps,
            "held_out": held, "read_seconds": round(read.seconds, 2), "fit_seconds": round(fit_s, 2),
            "fits": [{"layer": f.layer, "step": f.step, "adam_steps": f.adam_steps,
                      "selection_kl_bits": f.selection_kl, "identity_selection_kl_bits": f.identity_selection_kl}
                     for f in fits.values()],
            "prompt_ids": [p.id for p in prompts]}
    lens = TunedLens(sha, Path(model).name, len(read.states), head.n_embd,
                     {layer: f.translator for layer, f in fits.items() if not f.translator.is_identity}, info)
    return lens, info
