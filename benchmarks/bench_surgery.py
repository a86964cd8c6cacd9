"""Surgery cost on a real model, as ratios measured in one run (run: python benchmarks/bench_surgery.py).

Targets (issue "GGUF surgery"): in a sweep of RYS configs with block lengths 3..5, after the first few
configs, bytes written per config <= the duplicated block's bytes + the metadata split, and time per
config <= 1/10 of `cp` of the whole model; the single-file build is reported as a ratio to `cp`.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from rys.gguf import LayerStore, build_single, model_info
from rys.gguf.provenance import model_sha256
from rys.gguf.source import open_source
from rys.models import resolve_model
from rys.paths import duplicate, format_path


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", help="alias or GGUF path")
    parser.add_argument("--dir", default="/dev/shm" if os.access("/dev/shm", os.W_OK) else None,
                        help="where the store and copies go (default: tmpfs)")
    parser.add_argument("--warmup", type=int, default=3, help="configs that fill the store (one per block length)")
    args = parser.parse_args()

    src = resolve_model(args.model)
    info = model_info(src)
    n = info.n_layers
    size = src.stat().st_size
    model_sha256(open_source(src).files)  # hash once, outside the timings (it is cached per file)
    work = Path(tempfile.mkdtemp(prefix="rys-bench-", dir=args.dir))
    try:
        _, cp_s = timed(lambda: subprocess.run(["cp", str(src), str(work / "copy.gguf")], check=True))
        (work / "copy.gguf").unlink()
        out = work / "single.gguf"
        _, single_s = timed(lambda: build_single(src, out, duplicate(10, 14, n)))
        out.unlink()

        store = LayerStore(work / "store", limit_bytes=10 * size)
        configs = [(i, i + b) for i in range(n) for b in (3, 4, 5) if i + b <= n]
        rows = []
        for i, j in configs:
            with store.materialize(src, duplicate(i, j, n)) as m:
                block_bytes = sum(layer.bytes for layer in info.layers[i:j])
                rows.append((i, j, m.bytes_written, m.seconds, block_bytes, m.model_path.stat().st_size))
        steady = rows[args.warmup:]
        worst = max(steady, key=lambda r: r[2] / (r[4] + r[5]))
        per_config = [r[3] for r in steady]
        print(f"model        {src.name}: {info.arch}, {n} layers, {size / 1e9:.2f} GB "
              f"(store and copies on {args.dir or 'the default temp dir'})")
        print(f"cp           {cp_s:.2f} s for the whole model ({size / cp_s / 1e9:.2f} GB/s)")
        print(f"single file  {single_s:.2f} s for RYS (10,14) = {single_s / cp_s:.2f} x cp")
        print(f"sweep        {len(rows)} RYS configs, block lengths 3..5; first {args.warmup} fill the store: "
              f"{sum(r[2] for r in rows[:args.warmup]) / 1e9:.2f} GB in {sum(r[3] for r in rows[:args.warmup]):.2f} s")
        print(f"bytes/config after warm-up: max {max(r[2] for r in steady) / 1e6:.1f} MB, mean "
              f"{statistics.mean(r[2] for r in steady) / 1e6:.1f} MB; worst ratio to (block + metadata split) = "
              f"{worst[2] / (worst[4] + worst[5]):.2f} at ({worst[0]},{worst[1]}) "
              f"[block {worst[4] / 1e6:.1f} MB + metadata {worst[5] / 1e6:.1f} MB]  (target <= 1)")
        mean = statistics.mean(per_config)
        print(f"time/config after warm-up: mean {mean * 1e3:.0f} ms = {mean / cp_s:.3f} x cp (target <= 0.1); "
              f"median {statistics.median(per_config) * 1e3:.0f} ms, max {max(per_config) * 1e3:.0f} ms "
              f"= {max(per_config) / cp_s:.3f} x cp")
        print(f"store        {store.usage() / 1e9:.2f} GB for {len(rows)} configs "
              f"(full copies would be {sum(size + r[4] for r in rows) / 1e9:.1f} GB)")
        print(f"peak RSS     {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
              f"(model {size / 1e6:.0f} MB)")
        print(f"example      {format_path(duplicate(*configs[-1], n))}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
