"""What a GGUF holds, as far as layer surgery cares: architecture, layers, per-layer arrays, sliding-window
layers, tensor types and sizes per layer, and rys provenance when rys made the file."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from gguf import GGMLQuantizationType, GGUFValueType

from rys.gguf.arch_rules import RUNTIME, describe, refusal, rule_for
from rys.gguf.metadata import source_swa_flags
from rys.gguf.source import open_source


@dataclass
class LayerInfo:
    index: int
    n_tensors: int
    bytes: int
    types: dict[str, int]  # ggml type -> tensor count


@dataclass
class ModelInfo:
    files: list[str]
    arch: str
    name: str
    n_layers: int  # executable layers: the valid range of a path
    block_count: int  # as stored, including nextn (MTP) blocks
    n_nextn: int
    alignment: int
    file_bytes: int
    global_bytes: int
    known_arch: bool  # in rys's architecture table
    path_rules: str  # what layer paths of this architecture must respect, or why they are refused
    per_layer_arrays: dict[str, list]
    swa_layers: list[int] | None  # None: the architecture has no sliding-window layers
    layers: list[LayerInfo]
    provenance: dict[str, str]

    def to_dict(self) -> dict:
        return asdict(self)


def model_info(src: str | Path) -> ModelInfo:
    source = open_source(src)
    meta = {key: mv for key, (_, mv) in source.fields.items()}
    rule = rule_for(source.arch)
    arrays = {key: list(mv.value) for key, mv in meta.items()
              if key.startswith(f"{source.arch}.") and mv.type == GGUFValueType.ARRAY
              and len(mv.value) == source.block_count}
    swa = source_swa_flags(rule, source.arch, meta, source.block_count, source.n_layers) if rule else None
    layers = []
    for il in range(source.block_count):
        tensors = source.layer_tensors(il)
        types = Counter(GGMLQuantizationType(t.ggml_type).name for t in tensors)
        layers.append(LayerInfo(il, len(tensors), sum(t.nbytes for t in tensors), dict(sorted(types.items()))))
    return ModelInfo(
        files=[str(f) for f in source.files], arch=source.arch, name=str(source.value("general.name", "")),
        n_layers=source.n_layers, block_count=source.block_count, n_nextn=source.n_nextn,
        alignment=source.alignment, file_bytes=sum(f.stat().st_size for f in source.files),
        global_bytes=sum(t.nbytes for t in source.global_tensors), known_arch=rule is not None,
        path_rules=_path_rules(rule, source.arch),
        per_layer_arrays=arrays,
        swa_layers=None if swa is None else [il for il, flag in enumerate(swa) if flag],
        layers=layers,
        provenance={key: str(mv.value) for key, mv in meta.items() if key.startswith("rys.")})


def _path_rules(rule, arch: str) -> str:
    rewrite, runtime = refusal(rule, arch), refusal(rule, arch, RUNTIME)
    if rewrite:
        return f"refused: {rewrite}"
    if runtime:
        return f"rewrite only ({runtime}); {describe(rule)}"
    return describe(rule)


def format_info(info: ModelInfo) -> str:
    """The human-readable report of `rys inspect`."""
    from rys.paths import format_path

    mb = 1e6
    lines = [
        f"model       {info.name or '?'}  ({Path(info.files[0]).name}"
        + (f" + {len(info.files) - 1} more splits)" if len(info.files) > 1 else ")"),
        f"arch        {info.arch}{'' if info.known_arch else '  (not in rys table: only identity paths build)'}",
        f"layers      {info.n_layers}" + (f" + {info.n_nextn} nextn/MTP" if info.n_nextn else ""),
        f"size        {info.file_bytes / mb:.1f} MB ({info.global_bytes / mb:.1f} MB outside the layers)",
        f"alignment   {info.alignment}",
        f"paths       {info.path_rules}",
    ]
    if info.swa_layers is not None:
        lines.append(f"sliding-window layers  {format_path(info.swa_layers) if info.swa_layers else 'none'}")
    for key, values in info.per_layer_arrays.items():
        lines.append(f"{key}  {values}")
    for key, value in info.provenance.items():
        lines.append(f"{key}  {value}")
    lines.append("layer  tensors      MB  types")
    for layer in info.layers:
        types = ", ".join(f"{name} x{n}" for name, n in layer.types.items())
        lines.append(f"{layer.index:5d}  {layer.n_tensors:7d}  {layer.bytes / mb:6.2f}  {types}")
    return "\n".join(lines)
