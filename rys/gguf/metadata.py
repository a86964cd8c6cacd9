"""Pure metadata math of a layer path: which source block fills each position, which keys change, and
why a path cannot be right. No I/O: inputs are decoded metadata values, outputs are new values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gguf import GGUFValueType

from rys.gguf.arch_rules import (
    N_LAYERS,
    RECURRENT_KEY,
    REWRITE,
    SWA_KEY,
    ArchRule,
    IndexArray,
    IndexPattern,
    refusal,
)
from rys.gguf.source import MetaValue

# Arrays that are not per-layer even when their length happens to equal block_count.
_NOT_PER_LAYER = ("rope.dimension_sections",)


def layer_map(path: Sequence[int], n_layers: int, n_nextn: int = 0) -> list[int]:
    """Source block for every output block: the path, then the MTP/nextn blocks kept last, as llama.cpp
    expects them after the executed layers."""
    return list(path) + [n_layers + k for k in range(n_nextn)]


def _pattern_period(pattern: IndexPattern, arch: str, meta: Mapping[str, MetaValue], n_layers: int) -> int | None:
    if pattern.period == N_LAYERS:
        return n_layers
    if isinstance(pattern.period, str):
        entry = meta.get(f"{arch}.{pattern.period}")
        if entry is None:
            return pattern.default or 0
        return int(entry.value)
    return None


def source_flags(spec: IndexArray, arch: str, meta: Mapping[str, MetaValue], block_count: int,
                 n_layers: int) -> list[bool]:
    """The per-block flag llama.cpp uses for the source: the stored array, else derived from the index."""
    entry = meta.get(f"{arch}.{spec.key}")
    if entry is not None and entry.type == GGUFValueType.ARRAY:
        flags = [bool(x) for x in entry.value][:block_count]
        return flags + [False] * (block_count - len(flags))
    period = meta.get(f"{arch}.{spec.period_key}")
    # llama.cpp marks nextn blocks (il >= n_layer) neither SWA nor recurrent
    return (spec.pattern.flags(n_layers, int(period.value) if period is not None else None)
            + [False] * (block_count - n_layers))


def source_swa_flags(rule: ArchRule | None, arch: str, meta: Mapping[str, MetaValue], block_count: int,
                     n_layers: int) -> list[bool] | None:
    """Which source blocks run sliding-window attention (None: the architecture has none)."""
    for spec in rule.index_arrays if rule else ():
        if spec.key == SWA_KEY:
            return source_flags(spec, arch, meta, block_count, n_layers)
    return None


def path_problems(rule: ArchRule | None, arch: str, meta: Mapping[str, MetaValue], n_layers: int,
                  path: Sequence[int], method: str = REWRITE) -> list[str]:
    """Reasons no metadata can make `path` right under `method` (REWRITE: a rewritten file on any
    llama-server; RUNTIME: the unchanged file on the patched one). Empty = fine; the identity path is
    always fine."""
    if list(path) == list(range(n_layers)):
        return []
    refused = refusal(rule, arch, method)
    if refused:
        return [refused]
    problems = []
    for when in rule.refuse_when:
        entry = meta.get(f"{arch}.{when.key}")
        if entry is not None and not isinstance(entry.value, (list, str)) and entry.value > 0:
            problems.append(f"{when.reason} ({arch}.{when.key} = {entry.value})")
    if problems:
        return problems
    for fixed in rule.fixed:
        if method not in fixed.methods:
            continue
        pattern = fixed.pattern
        period = _pattern_period(pattern, arch, meta, n_layers)
        src, new = pattern.flags(n_layers, period), pattern.flags(len(path), period)
        bad = [p for p, s in enumerate(path) if new[p] != src[s]]
        if bad:
            p = bad[0]
            shown = pattern.period if isinstance(pattern.period, int) else period
            hint = (f"keep layers below {shown} at positions below {shown}" if pattern.residues == "prefix"
                    else f"keep each layer at the same position modulo {shown} (e.g. blocks of a multiple of {shown})")
            problems.append(f"{arch} derives {fixed.what} from the layer index: position {p} "
                            f"{'has' if new[p] else 'lacks'} it but source layer {path[p]} "
                            f"{'has' if src[path[p]] else 'lacks'} it ({len(bad)} positions differ); {hint}")
    if rule.attention_needed:
        recurrent = _recurrent_flags(rule, arch, meta, n_layers)
        if recurrent is not None and all(recurrent[s] for s in path):
            problems.append(f"{arch} is a hybrid model and the path runs only recurrent layers; llama.cpp needs at least "
                            f"one attention layer (e.g. keep layer {recurrent.index(False)})")
    if rule.same_length and len(path) != n_layers:
        problems.append(f"{arch}: {rule.same_length}; the source has {n_layers} layers and the path {len(path)}")
    if method == REWRITE:
        for switch in rule.count_switches:
            if switch.hits(n_layers) != switch.hits(len(path)):
                problems.append(f"{arch}: {switch.what}; the source has {n_layers} layers and the path {len(path)} "
                                f"(the runtime patch keeps the source's behaviour)")
    return problems


def _recurrent_flags(rule: ArchRule, arch: str, meta: Mapping[str, MetaValue], n_layers: int) -> list[bool] | None:
    """Which source layers are recurrent: the index-derived array, else where head_count_kv is 0."""
    for spec in rule.index_arrays:
        if spec.key == RECURRENT_KEY:
            return source_flags(spec, arch, meta, n_layers, n_layers)
    entry = meta.get(f"{arch}.attention.head_count_kv")
    if entry is None or entry.type != GGUFValueType.ARRAY:
        return None  # one value for every layer: all attention or all recurrent alike
    flags = [int(v) == 0 for v in list(entry.value)[:n_layers]]
    return flags if False in flags else None


def _pin_values(rule: ArchRule | None, arch: str, meta: Mapping[str, MetaValue], n_layers: int) -> dict[str, MetaValue]:
    pins = {}
    for pin in rule.pins if rule else ():
        key = f"{arch}.{pin.key}"
        if key not in meta:
            type_name, value = pin.value(meta, n_layers)
            pins[key] = MetaValue(GGUFValueType[type_name], value)
    return pins


def remap_metadata(meta: Mapping[str, MetaValue], arch: str, rule: ArchRule | None, block_count: int,
                   n_layers: int, path: Sequence[int]) -> dict[str, MetaValue | None]:
    """The metadata changes for `path`: key -> new value, or None to drop the key.

    Every `{arch}.*` array with one entry per block is remapped new[p] = old[map[p]], the sliding-window
    pattern and recurrent layers are written explicitly where llama.cpp would derive them from the (now
    shifted) index, values llama.cpp derives from the layer count are pinned (ArchRule.pins), and the
    input's split.* keys are dropped (the store adds its own).
    """
    n_nextn = block_count - n_layers
    mapping = layer_map(path, n_layers, n_nextn)
    changes: dict[str, MetaValue | None] = {
        f"{arch}.block_count": MetaValue(GGUFValueType.UINT32, len(mapping)),
    }
    for key, entry in meta.items():
        if key.startswith("split."):
            changes[key] = None
        elif (key.startswith(f"{arch}.") and entry.type == GGUFValueType.ARRAY
              and len(entry.value) == block_count and not key.endswith(_NOT_PER_LAYER)):
            changes[key] = MetaValue(entry.type, [entry.value[s] for s in mapping], entry.item_type)
    for spec in rule.index_arrays if rule else ():
        flags = source_flags(spec, arch, meta, block_count, n_layers)
        changes[f"{arch}.{spec.key}"] = MetaValue(GGUFValueType.ARRAY, [flags[s] for s in mapping], GGUFValueType.BOOL)
    changes.update(_pin_values(rule, arch, meta, n_layers))
    return changes
