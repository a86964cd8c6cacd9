"""Write GGUF files: header and metadata encoded here, tensor bytes streamed from the source file by the
kernel (copy_file_range, else sendfile), never through Python memory. Files appear complete or not at all.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gguf import GGUFValueType

from rys.gguf.errors import NoSpace, SurgeryError
from rys.gguf.source import _SCALAR, MetaValue, TensorRef
from rys.outputs import temp_name

GGUF_VERSION = 3
MAX_TENSOR_NAME = 63  # llama.cpp rejects names of 64+ bytes



@dataclass(frozen=True)
class OutTensor:
    """A tensor of the output: its new name and where its bytes come from."""

    name: str
    src: TensorRef


def _string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def _value(vtype: GGUFValueType, value) -> bytes:
    if vtype == GGUFValueType.STRING:
        return _string(value)
    return struct.pack(_SCALAR[vtype], value)


def encode_kv(key: str, mv: MetaValue) -> bytes:
    """One KV entry in GGUF v3 encoding."""
    head = _string(key) + struct.pack("<I", int(mv.type))
    if mv.type == GGUFValueType.ARRAY:
        items = list(mv.value)
        return head + struct.pack("<IQ", int(mv.item_type), len(items)) + b"".join(
            _value(mv.item_type, v) for v in items)
    return head + _value(mv.type, mv.value)


def _pad(n: int, alignment: int) -> int:
    return (alignment - n % alignment) % alignment


def encode_header(kv_entries: Sequence[bytes], tensors: Sequence[OutTensor], alignment: int) -> bytes:
    """Everything before the tensor data, padded to the alignment; tensor offsets are packed in order."""
    parts = [b"GGUF", struct.pack("<IQQ", GGUF_VERSION, len(tensors), len(kv_entries)), *kv_entries]
    offset = 0
    for t in tensors:
        if len(t.name.encode()) > MAX_TENSOR_NAME:
            raise SurgeryError(f"tensor name {t.name!r} would be longer than {MAX_TENSOR_NAME} bytes",
                               "llama.cpp cannot load it; use a shorter path (fewer than 1000 layers)")
        parts.append(_string(t.name) + struct.pack("<I", len(t.src.dims))
                     + struct.pack(f"<{len(t.src.dims)}Q", *t.src.dims)
                     + struct.pack("<IQ", t.src.ggml_type, offset))
        offset += t.src.nbytes + _pad(t.src.nbytes, alignment)
    header = b"".join(parts)
    return header + b"\0" * _pad(len(header), alignment)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _stream(src_fd: int, dst_fd: int, offset: int, count: int) -> None:
    """Copy count bytes at offset from src to dst's current position, inside the kernel."""
    use_sendfile = False
    while count > 0:
        if not use_sendfile:
            try:
                done = os.copy_file_range(src_fd, dst_fd, count, offset)
            except OSError as err:
                if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                use_sendfile = True  # e.g. across filesystems on some kernels
                continue
        else:
            done = os.sendfile(dst_fd, src_fd, offset, count)
        if done == 0:
            raise SurgeryError("the source file ended while copying tensor data (truncated while in use?)",
                               "check the model file and run again")
        offset += done
        count -= done


def write_gguf(fd: int, kv_entries: Sequence[bytes], tensors: Sequence[OutTensor], alignment: int) -> int:
    """Write a whole GGUF to fd; returns bytes written."""
    header = encode_header(kv_entries, tensors, alignment)
    _write_all(fd, header)
    written = len(header)
    sources: dict[Path, int] = {}
    try:
        for t in tensors:
            if t.src.file not in sources:
                sources[t.src.file] = os.open(t.src.file, os.O_RDONLY)
            _stream(sources[t.src.file], fd, t.src.offset, t.src.nbytes)
            pad = _pad(t.src.nbytes, alignment)
            _write_all(fd, b"\0" * pad)
            written += t.src.nbytes + pad
    finally:
        for src_fd in sources.values():
            os.close(src_fd)
    return written


def no_space(where: Path, err: OSError) -> NoSpace:
    return NoSpace(f"no space left on the filesystem of {where} ({err.strerror})",
                   "free space there, or write somewhere else (for the layer store: set RYS_STORE_DIR "
                   "or a smaller --store-limit)")


@contextmanager
def atomic_file(final: Path) -> Iterator[int]:
    """Yield a fd of a temp file that becomes `final` only if the block succeeds; removed otherwise."""
    tmp = temp_name(final)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            yield fd
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise no_space(final, err) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
