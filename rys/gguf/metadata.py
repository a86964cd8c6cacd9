"""Pure metadata math of a layer path: which source block fills each position, which keys change, and
why a path cannot be right. No I/O: inputs are decoded metadata values, outputs are new values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gguf import GGUFValueType

from rys.gguf.arch_rules import SWA_KEY, ArchRule, IndexArray, IndexPattern
from rys.gguf.source import MetaValue

# Arrays that are not per-layer even when their length happens to equal block_count.
_NOT_PER_LAYER = ("rope.dimension_sections",)


def layer_map(path: Sequence[int], n_layers: int, n_nextn: int = 0) -> list[int]:
    """Source block for every output block: the path, then the MTP/nextn blocks kept last, as llama.cpp
    expects them after the executed layers."""
    return list(path) + [n_layers + k for k in range(n_nextn)]


def _pattern_period(pattern: IndexPattern, arch: str, meta: Mapping[str, MetaValue]) -> int | None:
    if isinstance(pattern.period, str):
        entry = meta.get(f"{arch}.{pattern.period}")
        return int(entry.value) if entry is not None else 0
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
                  path: Sequence[int]) -> list[str]:
    """Reasons no metadata can make `path` right (empty = fine). The identity path is always fine."""
    if list(path) == list(range(n_layers)):
        return []
    if rule is None:
        return [(f"architecture {arch!r} is not in rys's table of architectures whose layer paths are known "
                 f"to be right (rys/gguf/arch_rules.py)")]
    if rule.unsupported:
        return [rule.unsupported]
    problems = []
    for what, pattern in rule.fixed:
        period = _pattern_period(pattern, arch, meta)
        src, new = pattern.flags(n_layers, period), pattern.flags(len(path), period)
        bad = [p for p, s in enumerate(path) if new[p] != src[s]]
        if bad:
            p = bad[0]
            problems.append(f"{arch} derives {what} from the layer index: position {p} "
                            f"{'has' if new[p] else 'lacks'} it but source layer {path[p]} "
                            f"{'has' if src[path[p]] else 'lacks'} it ({len(bad)} positions differ); "
                            f"keep each layer at the same position modulo the pattern (e.g. blocks of a "
                            f"multiple of {pattern.period if isinstance(pattern.period, int) else period})")
    if rule.dense_prefix_key:
        entry = meta.get(f"{arch}.{rule.dense_prefix_key}")
        lead = int(entry.value) if entry is not None else 0
        bad = [p for p, s in enumerate(path) if (p < lead) != (s < lead)]
        if bad:
            problems.append(f"{arch} runs the first {lead} layers dense ({rule.dense_prefix_key}); position "
                            f"{bad[0]} holds layer {path[bad[0]]}, so dense and MoE layers would be mixed up")
    for counts, what in rule.count_switches:
        if (n_layers in counts) != (len(path) in counts):
            problems.append(f"{arch}: {what}; the source has {n_layers} layers and the path {len(path)}")
    return problems


def remap_metadata(meta: Mapping[str, MetaValue], arch: str, rule: ArchRule | None, block_count: int,
                   n_layers: int, path: Sequence[int]) -> dict[str, MetaValue | None]:
    """The metadata changes for `path`: key -> new value, or None to drop the key.

    Every `{arch}.*` array with one entry per block is remapped new[p] = old[map[p]], the sliding-window
    pattern and recurrent layers are written explicitly where llama.cpp would derive them from the (now
    shifted) index, and the input's split.* keys are dropped (the store adds its own).
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
    return changes
