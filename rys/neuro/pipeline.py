"""Run one job per layer path with a few servers in flight: while one server loads its model (mostly
waiting on the disk and the health poll) another answers requests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_order(fn: Callable[[T], R], items: Iterable[T], workers: int = 2) -> Iterator[tuple[T, R]]:
    """(item, fn(item)) in input order, `workers` at a time.

    On a failure or an interrupt (SIGTERM, Ctrl-C), the jobs not yet started are cancelled and the
    servers of running jobs are stopped until those jobs end (a job may start its server just after a
    first stop), then the error is raised: nothing keeps running behind the caller's back."""
    from rys.server import stop_all

    items = list(items)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="rys-neuro") as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            for item, future in zip(items, futures):
                yield item, future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            while wait(futures, timeout=0.2).not_done:
                stop_all()
            raise


def share_cores(server_args: Sequence[str], workers: int) -> list[str]:
    """server_args plus --threads giving each of `workers` servers in flight its share of the cores,
    unless the user chose --threads: left alone every server takes every core, and their spin-waiting
    threads then slow each other down many times over."""
    from rys.llama.features import flag_value

    args = list(server_args)
    if workers > 1 and all(flag_value(args, f) is None for f in ("-t", "--threads")):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        args += ["--threads", str(max(1, cores // workers))]
    return args
