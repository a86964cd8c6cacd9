"""The results store: one JSON line per fully scored (config, probe), a separate failure log, resume keys.

Appends are one write() of one whole line under a lock (threads) and flock (processes), then fsync,
so a killed sweep leaves at most a torn last line, which is cut off before the next append.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from rys.sweep import SweepError

SCHEMA = 1


@dataclass
class Row:
    """One config scored on one probe. Written only once the probe ran to the end on that config."""

    config: str  # a label for people: "baseline", "(3,7)", or the path string
    path: str  # the layer path string: the resume key with the model and probe hashes
    i: int | None
    j: int | None
    times: int
    interleaved: bool
    n_layers: int  # executed layers (len of the path)
    probe: str
    probe_sha256: str
    score: float
    ci: list[float | None]  # the probe's own CI of its score
    coverage: float | None
    n_items: int
    delta: dict | None  # vs the baseline on the same items: {delta, ci_low, ci_high, p, significant}
    result: dict  # the full ProbeResult (per-item records), ProbeResult.from_dict() reads it back
    timings: dict  # materialize_s, server_start_s, score_s, bytes_written
    provenance: dict  # model, model_sha256, llama_build, server_args, launch_args, prompt_window, rys_version
    worker: int = 0
    finished_at: str = ""
    status: str = "ok"
    schema: int = SCHEMA
    # "search": a row the search ranked on; "confirm": the top configs and the baseline re-scored on
    # held-out items the search never saw (rys.sweep.confirm)
    stage: str = "search"
    # sha256 of the whole search probe this row belongs to: halving scores configs on its first items
    # (probe_sha256 is then that subset's), held-out rows on other items; "" = probe_sha256
    probe_version: str = ""

    @property
    def is_baseline(self) -> bool:
        return self.times == 1 and self.i is not None

    @property
    def version(self) -> str:
        return self.probe_version or self.probe_sha256

    def resume_key(self) -> tuple[str, str, str, str]:
        return resume_key(self.provenance.get("model_sha256", ""), self.path, self.probe, self.probe_sha256)

    @classmethod
    def from_dict(cls, data: dict) -> Row:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Failure:
    """A config that could not be scored: never a score, retried by the next run."""

    config: str
    path: str
    probes: list[str]
    error: str  # the exception class, e.g. ModelLoadError
    reason: str
    log_tail: str = ""
    log_path: str | None = None
    model_sha256: str = ""
    worker: int = 0
    at: str = ""
    extra: dict = field(default_factory=dict)


def resume_key(model_sha256: str, path: str, probe: str, probe_sha256: str) -> tuple[str, str, str, str]:
    return (model_sha256, path, probe, probe_sha256)


def failures_path(results: Path) -> Path:
    return results.with_name(results.stem + ".failures.jsonl")


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        lines.pop()  # a torn last line from a killed writer: that row was never complete
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise SweepError(f"{path}:{number} is not a JSON line ({err.msg})",
                             "the file was edited by hand or is not a rys results file; fix or remove that line") from err
    return records


def read_rows(path: Path) -> list[Row]:
    path = Path(path)
    if not path.exists():
        raise SweepError(f"results file not found: {path}", "pass the JSONL file a `rys sweep --results` run wrote")
    rows = []
    for record in _read_jsonl(path):
        if record.get("schema") != SCHEMA or record.get("status") != "ok":
            continue
        rows.append(Row.from_dict(record))
    return rows


def current_rows(rows: list[Row]) -> list[Row]:
    """The rows one report or export speaks for: one model, and per probe its latest version (sha)."""
    models = {r.provenance.get("model_sha256") for r in rows}
    if len(models) > 1:
        raise SweepError(f"the results file mixes {len(models)} models",
                         "keep one results file per model (--results) and report each on its own")
    latest = {r.probe: r.version for r in rows if r.stage == "search"}
    return [r for r in rows if r.version == latest.get(r.probe)]


def read_failures(results: Path) -> list[Failure]:
    return [Failure(**record) for record in _read_jsonl(failures_path(Path(results)))]


class ResultStore:
    """Appends rows and failures; knows which (model, path, probe) are done."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.failures = failures_path(self.path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SweepError(f"cannot create the folder of the results file {self.path}: {err.strerror or err}",
                             "pass --results a path in a folder you can write to") from None
        self._done = {row.resume_key() for row in read_rows(self.path)} if self.path.exists() else set()

    def rows(self) -> list[Row]:
        return read_rows(self.path) if self.path.exists() else []

    def is_done(self, model_sha256: str, path: str, probe: str, probe_sha256: str) -> bool:
        return resume_key(model_sha256, path, probe, probe_sha256) in self._done

    def append(self, row: Row) -> None:
        self._append(self.path, asdict(row))
        with self._lock:
            self._done.add(row.resume_key())

    def record_failure(self, failure: Failure) -> None:
        self._append(self.failures, asdict(failure))

    def _append(self, path: Path, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self._lock:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                _cut_torn_tail(fd)
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)  # closing drops the flock


def _cut_torn_tail(fd: int) -> None:
    """A writer killed mid-line leaves bytes after the last newline: drop them before appending."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    keep = size
    while keep > 0:
        start = max(0, keep - 65536)
        chunk = os.pread(fd, keep - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        keep = start
    os.ftruncate(fd, keep)
