"""Turn (source, path) into what to write: the metadata entries and, per output block, its tensors.
Both output layouts (single file, split store) write from the same plan."""

from __future__ import annotations

from dataclasses import dataclass

from rys.gguf.arch_rules import rule_for
from rys.gguf.errors import UnsupportedPath
from rys.gguf.metadata import layer_map, path_problems, remap_metadata
from rys.gguf.provenance import model_sha256, provenance_values
from rys.gguf.source import MetaValue, Source
from rys.gguf.writer import OutTensor, encode_kv
from rys.paths import format_path, validate


@dataclass
class Plan:
    source: Source
    path: list[int]
    source_hash: str
    kv: list[bytes]  # every metadata entry of the output, encoded, without split.* keys
    globals: list[OutTensor]  # token_embd, output_norm, output, rope_freqs, ...
    blocks: list[list[OutTensor]]  # per output block (path positions, then nextn blocks)
    block_sources: list[int]  # source block of each output block
    forced: list[str]  # problems the user chose to override

    @property
    def n_tensors(self) -> int:
        return len(self.globals) + sum(len(b) for b in self.blocks)


def block_tensors(source: Source, src_block: int, position: int) -> list[OutTensor]:
    return [OutTensor(f"blk.{position}.{t.suffix}", t) for t in source.layer_tensors(src_block)]


def make_plan(source: Source, path, force: bool = False) -> Plan:
    path = validate(path, source.n_layers)
    meta = {key: mv for key, (_, mv) in source.fields.items()}
    rule = rule_for(source.arch)
    problems = path_problems(rule, source.arch, meta, source.n_layers, path)
    if problems and not force:
        raise UnsupportedPath(f"layer path {format_path(path)} cannot be made right for this "
                              f"{source.arch} model: " + "; ".join(problems),
                              "choose another path, or pass --force (force=True) to build it anyway; "
                              "the output then records the reason in rys.forced")
    source_hash = model_sha256(source.files)
    changes: dict[str, MetaValue | None] = {key: None for key in meta if key.startswith("rys.")}
    changes.update(remap_metadata(meta, source.arch, rule, source.block_count, source.n_layers, path))
    changes.update(provenance_values(source.files[0].name, source_hash, format_path(path), problems))
    kv = []
    for key, (raw, _) in source.fields.items():
        if key not in changes:
            kv.append(raw)  # unchanged entries are copied byte for byte
        elif changes[key] is not None:
            kv.append(encode_kv(key, changes[key]))
    kv += [encode_kv(key, mv) for key, mv in changes.items() if key not in source.fields and mv is not None]
    mapping = layer_map(path, source.n_layers, source.n_nextn)
    return Plan(
        source=source, path=path, source_hash=source_hash, kv=kv,
        globals=[OutTensor(t.name, t) for t in source.global_tensors],
        blocks=[block_tensors(source, s, p) for p, s in enumerate(mapping)],
        block_sources=mapping, forced=problems)
