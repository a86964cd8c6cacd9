"""The one per-architecture table: what a layer path must rewrite or respect, per llama.cpp architecture.

Read off llama.cpp b11434 (src/models/<arch>.cpp, src/llama-hparams.cpp). Generic rules that hold for
every architecture live in metadata.py (block_count, per-layer arrays, nextn layers, split keys); this
table only says what differs. An architecture that is not here is refused unless the user forces it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IndexPattern:
    """A per-layer property llama.cpp derives from the layer INDEX: layer il has it when il % period is in
    `residues`. `period` may name a metadata key (relative to `{arch}.`) holding the period."""

    period: int | str
    # "last": il % period == period - 1; "all_but_last": il % period < period - 1;
    # "all_but_first": il % period != 0 (llama-hparams.cpp set_swa_pattern, dense_first)
    residues: str
    when_zero: bool = False  # the flag of every layer when the period is 0

    def flags(self, n_layers: int, period: int | None = None) -> list[bool]:
        """Per-layer flags; `period` overrides the default (from the key the file stores it in)."""
        period = self.period if period is None else period
        if not isinstance(period, int) or period <= 0:
            return [self.when_zero] * n_layers
        test = {"last": lambda r: r == period - 1,
                "all_but_last": lambda r: r < period - 1,
                "all_but_first": lambda r: r != 0}[self.residues]
        return [test(il % period) for il in range(n_layers)]


@dataclass(frozen=True)
class IndexArray:
    """A per-layer flag llama.cpp derives from the index unless `{arch}.<key>` holds a per-layer array.
    We always write the array, new[p] = flag(path[p]), so each position keeps its source layer's flag.
    `period_key` (relative to `{arch}.`) is where a file may store the pattern's period as a scalar."""

    key: str
    pattern: IndexPattern
    period_key: str


@dataclass(frozen=True)
class ArchRule:
    # Per-layer flags to write explicitly (sliding-window layers, recurrent layers).
    index_arrays: tuple[IndexArray, ...] = ()
    # Index-derived behaviour no key can set: every position must keep its source layer's flag.
    fixed: tuple[tuple[str, IndexPattern], ...] = ()
    # Key (relative to `{arch}.`) counting leading dense layers that must stay a prefix of the path.
    dense_prefix_key: str | None = None
    # Behaviour switched on only at exact layer counts: (counts, what changes). A path may not move
    # the model into or out of such a count.
    count_switches: tuple[tuple[tuple[int, ...], str], ...] = ()
    # Set when no path other than the identity can be right.
    unsupported: str | None = None


_PLAIN = ArchRule()


SWA_KEY = "attention.sliding_window_pattern"


def _swa(period: int) -> tuple[IndexArray, ...]:
    """period - 1 sliding-window layers, then one global (llama-model.cpp load_swa_pattern); a scalar
    stored under the same key overrides the period."""
    return (IndexArray(SWA_KEY, IndexPattern(period, "all_but_last", when_zero=True), SWA_KEY),)


# Hybrid models: recurrent (linear-attention) layers except every full_attention_interval-th one.
_RECURRENT = (IndexArray("attention.recurrent_layers", IndexPattern(4, "all_but_last"), "full_attention_interval"),)
_SWA_3_OF_4 = _swa(4)
_NOPE_EVERY_4TH = ("NoPE (no rotary embedding) on every 4th layer", IndexPattern(4, "last"))

ARCH_RULES: dict[str, ArchRule] = {
    # block_count + renaming is all these need (llama-cpp notes §3)
    "llama": _PLAIN,
    "mistral3": _PLAIN,
    "qwen2": _PLAIN,
    "qwen3": _PLAIN,
    "phi3": _PLAIN,
    "exaone": _PLAIN,
    "granite": _PLAIN,
    "gemma": _PLAIN,
    "gemma2": ArchRule(
        index_arrays=_swa(2),
        count_switches=(((46,), "the 27B attention scale applies only at exactly 46 layers"),)),
    "gemma3": ArchRule(
        index_arrays=_swa(6),
        count_switches=(((62,), "the 27B attention scale applies only at exactly 62 layers"),)),
    "cohere2": ArchRule(index_arrays=_SWA_3_OF_4),
    "olmo2": ArchRule(index_arrays=_SWA_3_OF_4),
    "gpt-oss": ArchRule(index_arrays=_swa(2)),
    "exaone4": ArchRule(
        index_arrays=_SWA_3_OF_4,
        count_switches=(((64,), "sliding-window attention is enabled only at exactly 64 layers (32B)"),)),
    "qwen3next": ArchRule(index_arrays=_RECURRENT),
    "qwen35": ArchRule(index_arrays=_RECURRENT),
    "qwen35moe": ArchRule(index_arrays=_RECURRENT),
    "smollm3": ArchRule(fixed=(_NOPE_EVERY_4TH,)),
    "llama4": ArchRule(
        index_arrays=_SWA_3_OF_4,
        fixed=(_NOPE_EVERY_4TH,
               ("MoE on every interleave_moe_layer_step-th layer",
                IndexPattern("interleave_moe_layer_step", "last")))),
    "deepseek2": ArchRule(
        dense_prefix_key="leading_dense_block_count",
        count_switches=(((26, 27), "the V2-Lite attention layout is chosen by a layer count of 26 or 27"),)),
    "gemma3n": ArchRule(
        unsupported="gemma3n has per-layer-embedding tensors sized by the layer count and shares KV caches "
                    "from layer 20 on; no metadata can describe another path"),
}


def rule_for(arch: str) -> ArchRule | None:
    return ARCH_RULES.get(arch)
