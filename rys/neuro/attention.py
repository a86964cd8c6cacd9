"""Attention entropy: how focused or diffuse each head of each layer is on a probe's prompts.

llama.cpp exposes no attention weights. vendor/llama.cpp/neuro-readout.patch (marker rys-attention-v1)
makes the graph keep each layer's attention softmax (`kq_soft_max`, which exists only with flash
attention off) and computes, for every prompt position and head, the entropy of its weights over the
keys in bits: H = -sum_j p_j log2 p_j, between 0 (all weight on one key) and log2(pos + 1) (uniform over
the causal prefix). A /completion request with `rys_attention: true` answers them as
`rys_attention_entropy` [executed layer][head][position].

The entropies are per executed layer, so a path that runs a layer twice reports both passes. Position 0
sees only itself (entropy 0 in every head) and is left out of the means.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rys import paths as layer_paths
from rys.neuro import NeuroError
from rys.neuro.lens import LensPrompt

ATTENTION = "rys-attention-v1"  # --help marker of neuro-readout.patch


@dataclass
class PromptAttention:
    id: str
    n_tokens: int
    entropy: np.ndarray  # [executed layer, head, position], bits


@dataclass
class AttentionResult:
    model: str
    path: list[int]  # executed layers (physical index of each position)
    prompts: list[PromptAttention]
    seconds: float

    def head_means(self) -> np.ndarray:
        """[executed layer, head]: mean entropy over prompts and positions 1.. (bits)."""
        rows = [p.entropy[:, :, 1:] for p in self.prompts if p.n_tokens > 1]
        if not rows:
            raise NeuroError("every prompt has a single token", "attention entropy needs prompts of two tokens or more")
        return np.concatenate(rows, axis=2).mean(axis=2)

    def layer_profile(self) -> list[float]:
        return [float(v) for v in self.head_means().mean(axis=1)]

    def labels(self) -> list[str]:
        """Executed layer names: the physical layer, with its pass number where the path repeats it."""
        seen: dict[int, int] = {}
        out = []
        for layer in self.path:
            seen[layer] = seen.get(layer, 0) + 1
            out.append(str(layer) if self.path.count(layer) == 1 else f"{layer}#{seen[layer]}")
        return out

    def to_dict(self) -> dict:
        means = self.head_means()
        return {"format": "rys-attention/1", "model": self.model, "path": layer_paths.format_path(self.path),
                "executed": self.labels(), "seconds": self.seconds,
                "layer_profile_bits": self.layer_profile(), "head_means_bits": means.tolist(),
                "max_bits": [float(np.log2(p.n_tokens)) for p in self.prompts],
                "prompts": [{"id": p.id, "n_tokens": p.n_tokens, "entropy_bits": p.entropy.tolist()}
                            for p in self.prompts]}


def attention_config(config):
    """The ServerConfig for the readout: one slot, flash attention off (the softmax must exist)."""
    from rys.llama.features import flag_value, list_devices

    args = list(config.extra_args)
    fa = flag_value(args, "-fa") or flag_value(args, "--flash-attn")
    if fa is not None and fa not in ("off", "0", "false"):
        raise NeuroError(f"attention entropy needs flash attention off, but --server-args has -fa {fa}",
                         "drop -fa from --server-args (rys passes -fa off)")
    if fa is None:
        args += ["-fa", "off"]
    device = flag_value(args, "-dev") or flag_value(args, "--device")
    if device != "none" and any(d.startswith("Vulkan") for d in list_devices(config.binary) or []):
        # Refused rather than rerouted: where the readout runs is the user's choice, and said in the command.
        raise NeuroError(f"{config.binary} runs on a Vulkan device, where the attention readout crashed the "
                         "server at its first request in 7 of 23 runs (Mesa's lavapipe: SIGSEGV in the driver's "
                         "queue thread; docs/backends.md)",
                         'read attention on the CPU: add --server-args "--device none" (this build), or pass '
                         "--llama-server with the CPU build (rys setup llama-server --patched)")
    return dataclasses.replace(config, slots=1, extra_args=tuple(args))


def entropies(client, ids: Sequence[int]) -> np.ndarray:
    """[executed layer, head, position] for one prompt, from a server of the patched build."""
    data = client._complete(list(ids), n_predict=1, rys_attention=True)
    raw = data.get("rys_attention_entropy")
    if raw is None:
        raise NeuroError("llama-server answered without rys_attention_entropy",
                         "use a llama-server built with vendor/llama.cpp/neuro-readout.patch "
                         "(rys setup llama-server --patched)")
    out = np.asarray(raw, dtype=np.float64)
    if out.ndim != 3 or out.shape[2] != len(ids):
        raise NeuroError(f"llama-server returned attention entropies of shape {out.shape} for {len(ids)} tokens",
                         "use a llama-server built with rys's current patches")
    return out


def run_attention(model: Path, prompts: Sequence[LensPrompt], config, path: Sequence[int] | None = None) -> AttentionResult:
    """Per-head attention entropy of every prompt, on `path` (default: the unmodified model)."""
    from rys.gguf.source import open_source
    from rys.llama.features import has_feature
    from rys.probes import open_target

    start = time.monotonic()
    if not prompts:
        raise NeuroError("no prompts", "pass --probe NAME or --prompt TEXT")
    if not has_feature(config.binary, ATTENTION):
        raise NeuroError(f"{config.binary} cannot read attention weights (no {ATTENTION} in its --help)",
                         "build the patched server: rys setup llama-server --patched")
    n_layers = open_source(model).n_layers
    executed = list(range(n_layers)) if path is None else [int(x) for x in path]
    config = attention_config(config)
    with open_target(model, config, path=None if path is None else executed, name="attention") as server:
        client = server.client
        out = []
        for p in prompts:
            ids = client.tokenize(client.format_prompt(p.text, p.chat) + p.suffix, add_special=True)
            ent = entropies(client, ids)
            if ent.shape[0] != len(executed):
                raise NeuroError(f"llama-server reported {ent.shape[0]} executed layers for a path of {len(executed)}",
                                 "use a llama-server built with rys's current patches")
            out.append(PromptAttention(p.id, len(ids), ent))
    return AttentionResult(str(model), executed, out, time.monotonic() - start)


def summary_line(result: AttentionResult) -> str:
    profile = result.layer_profile()
    lo, hi = int(np.argmin(profile)), int(np.argmax(profile))
    return (f"mean head entropy {statistics.fmean(profile):.3f} bits; most focused layer {result.labels()[lo]} "
            f"({profile[lo]:.3f}), most diffuse {result.labels()[hi]} ({profile[hi]:.3f})")
