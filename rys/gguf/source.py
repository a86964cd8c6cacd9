"""Read a source GGUF (single file or `-00001-of-0000N` splits) without loading tensor data.

We parse only the header (gguf-py's reader decodes every vocabulary string, seconds per open) and keep
tensor locations (file, offset, size) and raw metadata entries, so the writer can copy both verbatim.
"""

from __future__ import annotations

import math
import mmap
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from rys.gguf.errors import CorruptGGUF
from rys.models import check_gguf

_SPLIT_NAME = re.compile(r"^(?P<prefix>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
_LAYER_TENSOR = re.compile(r"^blk\.(\d+)\.(.+)$")
DEFAULT_ALIGNMENT = 32
_DECODE_MAX = 4096  # arrays longer than this (vocabularies) are skipped, not decoded

_SCALAR = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h", GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?", GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
}


@dataclass(frozen=True)
class LongArray:
    """Stands in for an array too long to be worth decoding (its raw bytes are still copied)."""

    length: int

    def __len__(self) -> int:
        return self.length


@dataclass(frozen=True)
class MetaValue:
    """One metadata value: its GGUF type, the Python value, and the element type of an array."""

    type: GGUFValueType
    value: object
    item_type: GGUFValueType | None = None


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor's bytes live in the source; `layer` is None for global tensors."""

    name: str
    dims: tuple[int, ...]  # GGUF order (ne0 first)
    ggml_type: int
    nbytes: int
    file: Path
    offset: int  # absolute, in `file`
    layer: int | None
    suffix: str  # name after "blk.N." for layer tensors


@dataclass
class Source:
    files: list[Path]
    arch: str
    block_count: int  # as stored: includes nextn (MTP) layers
    n_nextn: int  # trailing MTP layers llama.cpp does not execute
    alignment: int
    tensors: list[TensorRef]
    # key -> (raw bytes of the whole KV entry, decoded value); in file order, from the first split
    fields: dict[str, tuple[bytes, MetaValue]] = field(repr=False)

    @property
    def n_layers(self) -> int:
        """Executable layers: the valid range of a layer path."""
        return self.block_count - self.n_nextn

    def value(self, key: str, default=None):
        entry = self.fields.get(key)
        return default if entry is None else entry[1].value

    def layer_tensors(self, layer: int) -> list[TensorRef]:
        return [t for t in self.tensors if t.layer == layer]

    @property
    def global_tensors(self) -> list[TensorRef]:
        return [t for t in self.tensors if t.layer is None]


def split_files(first: Path) -> list[Path]:
    """All files of a split model given any one of them; [first] for a single file."""
    match = _SPLIT_NAME.match(first.name)
    if not match:
        return [first]
    count = int(match.group("count"))
    files = [first.with_name(f"{match.group('prefix')}-{no:05d}-of-{count:05d}.gguf") for no in range(1, count + 1)]
    missing = [f for f in files if not f.exists()]
    if missing:
        raise CorruptGGUF(f"split model {first.name} is missing {len(missing)} of its {count} files "
                          f"(first missing: {missing[0].name})", "put all split files in the same folder")
    return files


class _Cursor:
    """Sequential reader over a GGUF header in a memory map; running off the end means a damaged file."""

    def __init__(self, buf, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str):
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return values if len(values) > 1 else values[0]

    def string(self) -> bytes:
        n = self.take("<Q")
        if self.pos + n > len(self.buf):
            raise struct.error("string runs past the end of the file")
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return raw

    def value(self, vtype: int):
        if vtype == GGUFValueType.STRING:
            return self.string().decode("utf-8", errors="replace")
        return self.take(_SCALAR[vtype])

    def meta_value(self) -> MetaValue:
        vtype = GGUFValueType(self.take("<I"))
        if vtype != GGUFValueType.ARRAY:
            return MetaValue(vtype, self.value(vtype))
        item = GGUFValueType(self.take("<I"))
        n = self.take("<Q")
        if n > _DECODE_MAX:  # tokenizer tables: skip them, nothing here edits them
            if item == GGUFValueType.STRING:
                for _ in range(n):
                    self.pos += 8 + struct.unpack_from("<Q", self.buf, self.pos)[0]
            else:
                self.pos += n * struct.calcsize(_SCALAR[item])
            if self.pos > len(self.buf):
                raise struct.error("array runs past the end of the file")
            return MetaValue(vtype, LongArray(n), item)
        return MetaValue(vtype, [self.value(item) for _ in range(n)], item)


def _parse(path: Path) -> tuple[dict[str, tuple[bytes, MetaValue]], list[tuple[str, tuple, int, int]], int]:
    """(fields, tensor infos (name, dims, type, relative offset), end of header) of one GGUF file."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        cur = _Cursor(buf, path)
        magic, version = cur.take("<4sI")
        if magic != b"GGUF" or version not in (2, 3):
            raise CorruptGGUF(f"{path} has GGUF version {version}, which rys cannot read",
                              "convert the model again with a current llama.cpp (GGUF v3, little-endian)")
        n_tensors, n_kv = cur.take("<QQ")
        fields = {}
        for _ in range(n_kv):
            start = cur.pos
            key = cur.string().decode("utf-8", errors="replace")
            mv = cur.meta_value()
            fields[key] = (bytes(buf[start:cur.pos]), mv)
        infos = []
        for _ in range(n_tensors):
            name = cur.string().decode("utf-8", errors="replace")
            n_dims = cur.take("<I")
            dims = struct.unpack_from(f"<{n_dims}Q", buf, cur.pos)
            cur.pos += 8 * n_dims
            ggml_type, offset = cur.take("<IQ")
            infos.append((name, tuple(dims), ggml_type, offset))
        return fields, infos, cur.pos


def _read(path: Path):
    check_gguf(path)
    try:
        return _parse(path)
    except (struct.error, ValueError, OverflowError) as err:
        raise CorruptGGUF(f"{path} is not a readable GGUF file ({err})",
                          "the file is damaged or truncated; download or convert it again") from err


def _nbytes(name: str, dims: tuple[int, ...], ggml_type: int, path: Path) -> int:
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except ValueError as err:
        raise CorruptGGUF(f"tensor {name} in {path} has unknown type {ggml_type}",
                          "the file is damaged, or needs a newer gguf package") from err
    return math.prod(dims) * type_size // block


def open_source(path: str | Path) -> Source:
    """Index a GGUF model: metadata of the first split and where each tensor's bytes are."""
    files = split_files(Path(path))
    parsed = [_read(f) for f in files]
    fields = parsed[0][0]
    arch_entry = fields.get("general.architecture")
    if arch_entry is None:
        raise CorruptGGUF(f"{files[0]} has no general.architecture key", "this is not a llama.cpp model file")
    arch = str(arch_entry[1].value)
    block_count = fields.get(f"{arch}.block_count")
    if block_count is None:
        raise CorruptGGUF(f"{files[0]} has no {arch}.block_count key",
                          "layer surgery needs a transformer model with numbered blocks")
    nextn = fields.get(f"{arch}.nextn_predict_layers")
    tensors = []
    for file, (file_fields, infos, header_end) in zip(files, parsed):
        entry = file_fields.get("general.alignment")
        alignment = int(entry[1].value) if entry else DEFAULT_ALIGNMENT
        data_start = header_end + (-header_end) % alignment
        size = file.stat().st_size
        for name, dims, ggml_type, rel in infos:
            nbytes = _nbytes(name, dims, ggml_type, file)
            if data_start + rel + nbytes > size:
                raise CorruptGGUF(f"{file} is truncated: tensor {name} ends at byte {data_start + rel + nbytes} "
                                  f"but the file has {size} bytes", "download or convert the model again")
            match = _LAYER_TENSOR.match(name)
            tensors.append(TensorRef(
                name=name, dims=dims, ggml_type=ggml_type, nbytes=nbytes, file=file, offset=data_start + rel,
                layer=int(match.group(1)) if match else None, suffix=match.group(2) if match else ""))
    if len(files) > 1:
        expected = fields.get("split.tensors.count")
        if expected is not None and int(expected[1].value) != len(tensors):
            raise CorruptGGUF(f"split model {files[0].name} lists {expected[1].value} tensors but its files hold "
                              f"{len(tensors)}", "the split files do not belong together; re-split the model")
    entry = fields.get("general.alignment")
    return Source(files=files, arch=arch, block_count=int(block_count[1].value),
                  n_nextn=int(nextn[1].value) if nextn else 0,
                  alignment=int(entry[1].value) if entry else DEFAULT_ALIGNMENT, tensors=tensors, fields=fields)
