"""CPU thread policy for sweep servers: how many cores each llama-server may take.

Left alone, every llama-server takes all cores; several on one machine then slow each other down many
times over with spin-waiting threads (docs/sweep.md, Speed), so servers that run at once share them.
"""

from __future__ import annotations

import os
from pathlib import Path

THREAD_FLAGS = ("-t", "--threads")


def sets_threads(*arg_lists) -> bool:
    """True when any of the argument lists already chooses --threads (the user's choice wins)."""
    from rys.llama.features import flag_value

    return any(flag_value(args, f) is not None for args in arg_lists for f in THREAD_FLAGS)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def can_start_ahead(binary, extra_args=(), model: Path | None = None) -> bool:
    """True when llama-server can only use the CPU and a second copy of the model fits in free memory.

    Then starting the next config's server while the current one scores costs little: the weights are
    shared through the page cache. With a GPU, two servers at once may not fit, or the second would be
    fitted onto other devices and score slightly differently, so a GPU sweep keeps one server at a time.
    """
    import psutil

    from rys.llama.features import cpu_only

    if model is not None and Path(model).stat().st_size * 3 > psutil.virtual_memory().available:
        return False
    return cpu_only(binary, extra_args)


def shared_cpu_threads(extra_args, worker_args: list, workers: int) -> list[str]:
    """llama-server arguments giving each of the 2 x workers servers that run at once (one scoring, one
    starting ahead) its share of the cores, unless the user chose --threads."""
    if sets_threads(extra_args, *worker_args):
        return []
    return ["--threads", str(max(1, cores() // (2 * max(1, workers))))]


def actor_threads(extra_args, cpus: float | None) -> list[str]:
    """A CPU-only Ray worker reserves `cpus` cores of its node; its server gets that many threads, since
    other workers' servers on the same node run on the rest (unless the user chose --threads)."""
    if not cpus or sets_threads(extra_args):
        return []
    return ["--threads", str(max(1, int(cpus)))]
