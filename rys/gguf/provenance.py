"""Where an output came from: source content hashes (cached per file) and the rys.* keys written into
every file rys makes."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from gguf import GGUFValueType

from rys import __version__
from rys.config import cache_dir
from rys.fetch import sha256_of
from rys.gguf.source import MetaValue

_LOCK = threading.Lock()
_MEMO: dict[str, str] = {}  # this process's view of the cache: sweeps ask for the same file thousands of times

# Not "rys.layer_path": a patched llama-server reads that key as a path to run (docs/runtime.md), so a
# rewritten file carrying it would run its path a second time on top of the rewritten layers.
KEY_PATH = "rys.source.path"
KEY_SOURCE = "rys.source.name"
KEY_HASH = "rys.source.sha256"
KEY_VERSION = "rys.version"
KEY_FORCED = "rys.forced"


def _cache_file() -> Path:
    return cache_dir() / "file-hashes.json"


def _load_cache() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's content, cached under (real path, size, mtime) so each file is read once."""
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    with _LOCK:
        cached = _MEMO.get(key) or _load_cache().get(key)
    if cached:
        _MEMO[key] = cached
        return cached
    value = sha256_of(path)
    with _LOCK:
        cache = _load_cache()
        cache[key] = value
        target = _cache_file()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(cache, indent=0))
        os.replace(tmp, target)  # concurrent writers: last one wins, every version is valid JSON
        _MEMO[key] = value
    return value


def model_sha256(files: Sequence[Path]) -> str:
    """One hash for a model: its file's hash, or the hash of its split files' hashes in order."""
    if len(files) == 1:
        return file_sha256(files[0])
    return hashlib.sha256("".join(file_sha256(f) for f in files).encode()).hexdigest()


def provenance_values(source_name: str, source_hash: str, path_text: str,
                      forced: Sequence[str] = ()) -> dict[str, MetaValue]:
    values = {
        KEY_PATH: MetaValue(GGUFValueType.STRING, path_text),
        KEY_SOURCE: MetaValue(GGUFValueType.STRING, source_name),
        KEY_HASH: MetaValue(GGUFValueType.STRING, source_hash),
        KEY_VERSION: MetaValue(GGUFValueType.STRING, __version__),
    }
    if forced:
        values[KEY_FORCED] = MetaValue(GGUFValueType.STRING, "; ".join(forced))
    return values
