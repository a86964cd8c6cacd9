"""The shared layer store: a layer path as split GGUF files, where each block file is written once and
linked into every config that runs that source layer at that position (llama-cpp notes §2).

    <root>/.lock                         flock: shared while materializing, exclusive while evicting
    <root>/leases/<pid>-<id>.json        files a live config uses (never evicted)
    <root>/<model hash>/globals.gguf     token_embd, output, ... (split.no 1, shared by all configs)
    <root>/<model hash>/L<s>-P<p>.gguf   source block s renamed blk.p.* (split.no p+2)
    <root>/<model hash>/cfg-<key>-<N>/model-00001-of-0000N.gguf   metadata only, + relative symlinks

Files are keyed by the source's content hash, so two models never share a file. Least-recently-used
files (mtime, touched on every use) are evicted when the store is over its size limit.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from gguf import GGUFValueType

from rys.config import store_dir
from rys.gguf.errors import NoSpace
from rys.gguf.plan import Plan, make_plan
from rys.gguf.source import MetaValue, Source, open_source
from rys.gguf.writer import OutTensor, atomic_file, encode_kv, no_space, temp_name, write_gguf
from rys.paths import format_path

_SPLIT_NO = "split.no"
# Part of every config key: a change in what the metadata split holds must not reuse older configs.
METADATA_FORMAT = 2
_TEMP_PID = re.compile(r"\.tmp-(\d+)-")  # rys.gguf.writer.temp_name: .<name>.tmp-<pid>-<thread>-<random>


def _split_name(no: int, count: int) -> str:
    return f"model-{no:05d}-of-{count:05d}.gguf"  # llama.cpp only accepts this naming


@dataclass
class Materialized:
    """A config in the store, leased: none of its files are evicted until release()."""

    model_path: Path  # pass to `llama-server -m`
    path: list[int]
    bytes_written: int
    seconds: float
    files: list[Path] = field(repr=False)
    _lease: Path | None = field(default=None, repr=False)

    def release(self) -> None:
        if self._lease is not None:
            self._lease.unlink(missing_ok=True)
            self._lease = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _pid_alive(pid: int, started: float) -> bool:
    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0  # same pid, same process
    except psutil.NoSuchProcess:
        return False


class LayerStore:
    """Split-layout configs sharing block files; safe across threads and processes."""

    def __init__(self, root: str | Path | None = None, limit_bytes: int | None = None):
        self.root = Path(root) if root is not None else store_dir()
        try:
            (self.root / "leases").mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise NoSpace(f"cannot create the layer store at {self.root}: {err.strerror}",
                          "set RYS_STORE_DIR to a writable folder") from err
        if limit_bytes is None:
            st = os.statvfs(self.root)
            limit_bytes = st.f_blocks * st.f_frsize // 2  # half the filesystem: tmpfs is shared RAM
        self.limit_bytes = int(limit_bytes)
        self._sources: dict[tuple, Source] = {}
        self._sources_lock = threading.Lock()
        self._remove_leftovers()

    # -- public -------------------------------------------------------------------------------------

    def materialize(self, src: str | Path, path: Sequence[int], force: bool = False) -> Materialized:
        """The split-layout model for `path`, writing only files the store does not have yet."""
        started = time.monotonic()
        plan = make_plan(self._source(Path(src)), path, force)
        model_dir = self.root / plan.source_hash[:16]
        key = hashlib.sha1(f"{METADATA_FORMAT}|{format_path(plan.path)}|{';'.join(plan.forced)}".encode()).hexdigest()[:16]
        count = len(plan.blocks) + 2
        cfg_dir = model_dir / f"cfg-{key}-{count}"  # the count names its metadata split: one stat to size it
        block_files = [model_dir / f"L{s}-P{p}.gguf" for p, s in enumerate(plan.block_sources)]
        shared = [model_dir / "globals.gguf", *block_files]
        files = [cfg_dir, *shared]

        missing = [f for f in shared if not f.exists()]
        needed = sum(self._planned_size(plan, f) for f in missing)
        needed += 0 if cfg_dir.exists() else sum(len(kv) for kv in plan.kv) + 4096
        self._make_room(needed)
        written = 0
        with self._lock(fcntl.LOCK_SH):
            lease = self._write_lease(files)
            try:
                model_dir.mkdir(exist_ok=True)
                written += self._ensure_file(model_dir / "globals.gguf", plan.globals, 1, plan)
                for p, f in enumerate(block_files):
                    written += self._ensure_file(f, plan.blocks[p], p + 2, plan)
                written += self._ensure_config(cfg_dir, plan, shared)
                now = time.time()
                for f in files:
                    os.utime(f, (now, now))  # last use, for LRU eviction
            except BaseException:
                lease.unlink(missing_ok=True)
                raise
        return Materialized(model_path=cfg_dir / _split_name(1, count), path=plan.path, bytes_written=written,
                            seconds=time.monotonic() - started, files=files, _lease=lease)

    def usage(self) -> int:
        """Bytes of store files (links and leases not counted)."""
        return sum(size for _, size, _ in self._entries())

    def evict(self, needed: int = 0) -> int:
        """Remove least-recently-used unleased files until `needed` more bytes fit; returns bytes freed."""
        return self._make_room(needed, strict=False)

    # -- internals ----------------------------------------------------------------------------------

    def _remove_leftovers(self) -> None:
        """Leases and half-written temp files of processes that died (a killed sweep): nothing else
        would ever remove them, since eviction skips temp names and only scans leases when full."""
        self._leased()  # drops the leases of dead processes
        me = os.getpid()
        for folder in [self.root, self.root / "leases", *(d for d in self.root.iterdir() if d.is_dir())]:
            try:
                names = list(folder.iterdir())
            except OSError:
                continue
            for entry in names:
                m = _TEMP_PID.search(entry.name)
                if not entry.name.startswith(".") or m is None:
                    continue
                pid = int(m.group(1))
                if pid == me or psutil.pid_exists(pid):
                    continue  # being written by a live process (or a reused pid: left for later)
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def _source(self, src: Path) -> Source:
        # Parsing a header costs milliseconds to a second; sweeps materialize thousands of configs.
        st = src.stat()
        key = (str(src.resolve()), st.st_size, st.st_mtime_ns)
        with self._sources_lock:
            if key not in self._sources:
                self._sources[key] = open_source(src)
            return self._sources[key]

    @contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def _write_lease(self, files: list[Path]) -> Path:
        me = psutil.Process()
        lease = self.root / "leases" / f"{me.pid}-{uuid.uuid4().hex[:12]}.json"
        body = json.dumps({"pid": me.pid, "started": me.create_time(), "files": [str(f.relative_to(self.root)) for f in files]})
        try:
            with atomic_file(lease) as fd:
                os.write(fd, body.encode())
        except NoSpace as err:
            raise no_space(self.root, OSError(errno.ENOSPC, "no space for a lease file")) from err
        return lease

    def _leased(self) -> set[str]:
        """Files held by live leases; leases of dead processes are removed."""
        held: set[str] = set()
        for lease in (self.root / "leases").glob("*.json"):
            try:
                data = json.loads(lease.read_text())
            except (OSError, ValueError):
                continue  # being written or removed right now
            if _pid_alive(int(data["pid"]), float(data["started"])):
                held.update(data["files"])
            else:
                lease.unlink(missing_ok=True)
        return held

    def _entries(self) -> list[tuple[Path, int, float]]:
        """(evictable unit, bytes, last use): block files, globals, and config folders."""
        out = []
        for model_dir in self.root.iterdir():
            if not model_dir.is_dir() or model_dir.name == "leases":
                continue
            for entry in model_dir.iterdir():
                if entry.name.startswith("."):
                    continue  # a temp file being written
                try:
                    st = entry.stat()
                    size = st.st_size
                    if entry.is_dir():
                        size = (entry / _split_name(1, int(entry.name.rsplit("-", 1)[1]))).stat().st_size
                except FileNotFoundError:
                    continue  # evicted meanwhile
                out.append((entry, size, st.st_mtime))
        return out

    def _make_room(self, needed: int, strict: bool = True) -> int:
        if needed > self.limit_bytes and strict:
            raise NoSpace(f"a config needs {needed / 1e6:.0f} MB but the layer store limit is "
                          f"{self.limit_bytes / 1e6:.0f} MB", "raise the store limit (--store-limit)")
        entries = self._entries()
        used = sum(size for _, size, _ in entries)
        if used + needed <= self.limit_bytes:
            return 0
        freed = 0
        with self._lock(fcntl.LOCK_EX):
            held = self._leased()
            for entry, size, _ in sorted(self._entries(), key=lambda e: e[2]):
                if used + needed - freed <= self.limit_bytes:
                    break
                if str(entry.relative_to(self.root)) in held:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                freed += size
        if strict and used + needed - freed > self.limit_bytes:
            raise NoSpace(f"the layer store at {self.root} is full: {(used - freed) / 1e6:.0f} MB are held by "
                          f"running configs and {needed / 1e6:.0f} MB more are needed (limit "
                          f"{self.limit_bytes / 1e6:.0f} MB)", "release configs, or raise the store limit")
        return freed

    def _planned_size(self, plan: Plan, file: Path) -> int:
        tensors = plan.globals if file.name == "globals.gguf" else plan.blocks[int(file.stem.split("-P")[1])]
        return sum(t.src.nbytes + plan.source.alignment for t in tensors) + 4096

    def _split_kv(self, plan: Plan, no: int) -> list[bytes]:
        return [encode_kv("general.alignment", MetaValue(GGUFValueType.UINT32, plan.source.alignment)),
                encode_kv(_SPLIT_NO, MetaValue(GGUFValueType.UINT16, no))]

    def _ensure_file(self, final: Path, tensors: list[OutTensor], split_no: int, plan: Plan) -> int:
        """Write a shared split unless present; concurrent writers race harmlessly (same content)."""
        if final.exists():
            return 0
        tmp = temp_name(final)
        try:
            with atomic_file(tmp) as fd:
                written = write_gguf(fd, self._split_kv(plan, split_no), tensors, plan.source.alignment)
            os.link(tmp, final)  # fails if another writer won: theirs is identical
        except FileExistsError:
            written = 0
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise no_space(final, err) from err
            raise
        finally:
            tmp.unlink(missing_ok=True)
        return written

    def _ensure_config(self, cfg_dir: Path, plan: Plan, shared: list[Path]) -> int:
        if cfg_dir.exists():
            return 0
        count = len(shared) + 1
        tmp_dir = temp_name(cfg_dir)
        try:
            tmp_dir.mkdir()
            kv = plan.kv + [encode_kv(_SPLIT_NO, MetaValue(GGUFValueType.UINT16, 0)),
                            encode_kv("split.count", MetaValue(GGUFValueType.UINT16, count)),
                            encode_kv("split.tensors.count", MetaValue(GGUFValueType.INT32, plan.n_tensors))]
            with atomic_file(tmp_dir / _split_name(1, count)) as fd:
                written = write_gguf(fd, kv, [], plan.source.alignment)
            for no, target in enumerate(shared, start=2):
                (tmp_dir / _split_name(no, count)).symlink_to(Path("..") / target.name)
            try:
                tmp_dir.rename(cfg_dir)
            except OSError as err:
                if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                written = 0  # another process made the same config meanwhile
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise no_space(cfg_dir, err) from err
            raise
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        return written
