"""One sweep per results file: an advisory lock on `<results>.lock`, which records the holder's pid.

Two sweeps appending to one file would both score every config (each reads the rows once, at start), so
the second one refuses and names the first. The kernel drops a flock when its holder dies, SIGKILL
included, so a killed sweep never leaves the file locked; the stale pid in it is simply overwritten.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from rys.sweep import SweepError


def lock_path(results: Path) -> Path:
    return results.with_name(results.name + ".lock")


def writable_results(results: Path) -> None:
    """A one-line error now, before any server starts, when the results file cannot be made there."""
    results = Path(results)
    try:
        results.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SweepError(f"cannot create the folder of the results file {results}: {err.strerror or err}",
                         "pass --results a path in a folder you can write to") from None
    if results.is_dir():
        raise SweepError(f"--results {results} is a folder", "pass the path of a .jsonl file")
    if not os.access(results.parent, os.W_OK | os.X_OK):
        raise SweepError(f"cannot write the results file {results}: its folder is not writable",
                         "pass --results a path in a folder you can write to")


class ResultsLock:
    """`with ResultsLock(results):` holds the results file for this process or refuses at once."""

    def __init__(self, results: Path):
        self.results = Path(results)
        self.path = lock_path(self.results)
        self.fd: int | None = None

    def acquire(self) -> ResultsLock:
        writable_results(self.results)
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise SweepError(f"cannot create the lock file {self.path}: {err.strerror or err}",
                                 "pass --results a path in a folder you can write to") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder_pid(fd)
                os.close(fd)
                who = f"rys pid {holder}" if holder else "another rys process"
                raise SweepError(f"results file {self.results} is in use by {who}",
                                 "wait for it to finish, or pass another --results") from None
            # The holder before us may have removed the file after we opened it: then our lock is on a
            # file nobody else will see, so open the path again.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked: a waiter re-checks the inode
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _holder_pid(fd: int, wait_s: float = 1.0) -> int | None:
    """The locking process's pid. It writes it right after taking the lock, so a sweep started at the
    same moment may look before it is there: look again for up to wait_s."""
    deadline = time.monotonic() + wait_s
    while (pid := _read_pid(fd)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return pid


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
