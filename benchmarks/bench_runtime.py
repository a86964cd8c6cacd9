"""Runtime layer paths (patched llama-server) against materialized GGUFs: memory and time to ready.

For one model and one block duplication (default: Qwen2.5-Coder-1.5B, 4 layers in the middle), measured
in one run on this machine, each server started in turn, one slot, -c 512:
  memory: weight buffers as llama.cpp reports them (mapped + repacked), and the resident set (VmRSS,
          which also holds the KV cache of every executed layer) after one request, as ratios to the
          STOCK server on the unmodified file. Target: runtime path <= 1.02 (no weight copies); the
          rewritten file pays for the extra layers.
  time:   "config chosen" -> "server ready" (path arguments or files made, server started, /health ok),
          as a ratio to the split layout (rys.gguf.LayerStore, a fresh store, then a second config that
          reuses its block files) and to a single rewritten file.

usage: RYS_PATCHED_LLAMA_SERVER=... .venv/bin/python benchmarks/bench_runtime.py [--model M] [--block 4]
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

import click

from rys import paths
from rys.gguf import LayerStore, build_single, model_info
from rys.llama.locate import find_llama_server
from rys.llama.runtime import find_patched_server, runtime_path_args
from rys.models import resolve_model
from rys.server import LlamaServer, ServerConfig

PROMPT = "def quicksort(items):\n    "


def _rss_mib(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def _weights_mib(log: Path) -> float:
    """llama.cpp's own account of the weight buffers ("... model buffer size = X MiB"): weights only,
    unlike RSS, which also holds the KV cache (one slot per executed layer) and compute buffers."""
    sizes = re.findall(r"model buffer size =\s*([0-9.]+) MiB", log.read_text(errors="replace"))
    return sum(float(x) for x in sizes)


def _serve(binary, model, chosen: float, extra_args=(), log_dir: Path | None = None) -> dict:
    """Start, answer one request, measure, stop. `chosen` is when the config was chosen (monotonic)."""
    log_dir = Path(tempfile.mkdtemp(prefix="rys-bench-logs-")) if log_dir is None else log_dir
    # -lv 4: the loader's buffer sizes are info-level messages, hidden at the default verbosity
    config = ServerConfig(binary=binary, ctx_size=512, slots=1, extra_args=("-lv", "4", *extra_args),
                          log_dir=log_dir, keep_logs=True)
    with LlamaServer(model, config, name="bench-runtime") as server:
        ready = time.monotonic() - chosen
        top = server.client.next_token(PROMPT, top_k=1).tokens[0]
        mem = _rss_mib(server.pid)
        log = server.log_path
    weights = _weights_mib(log)
    shutil.rmtree(log_dir, ignore_errors=True)
    return {"ready_s": ready, "top": top, "weights": weights, **mem}


@click.command()
@click.option("--model", default="qwen2.5-coder-1.5b", show_default=True)
@click.option("--block", default=4, show_default=True, help="layers duplicated")
def main(model: str, block: int):
    src = resolve_model(model)
    n = model_info(src).n_layers
    i = n // 2 - block // 2
    path, path2 = paths.duplicate(i, i + block, n), paths.duplicate(i + 1, i + 1 + block, n)
    stock, patched = find_llama_server(prefer_patched=False), find_patched_server()
    print(f"model {src.name}: {n} layers; path {paths.format_path(path)} ({len(path)} layers)")
    print(f"stock {stock}\npatched {patched}")

    rows = {"original (stock)": _serve(stock, src, time.monotonic())}  # also warms the page cache

    chosen = time.monotonic()
    rows["runtime path (patched)"] = _serve(patched, src, chosen, runtime_path_args(path, binary=patched))

    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    root = Path(tempfile.mkdtemp(prefix="rys-bench-runtime-", dir=shm))
    try:
        store = LayerStore(root / "store")
        for name, p in (("split layout, fresh store", path), ("split layout, 2nd config", path2)):
            chosen = time.monotonic()
            with store.materialize(src, p) as made:
                rows[name] = _serve(stock, made.model_path, chosen)
        chosen = time.monotonic()
        single = build_single(src, root / "single.gguf", path)
        rows["single rewritten file"] = _serve(stock, single, chosen)
        # the store lives in tmpfs, the model usually on disk: this row separates storage from method
        if shm is not None and shutil.disk_usage(shm).free > 3 * src.stat().st_size:
            copy = Path(shutil.copy2(src, root / src.name))
            chosen = time.monotonic()
            rows["runtime path, model in tmpfs"] = _serve(patched, copy, chosen, runtime_path_args(path, binary=patched))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    base = rows["original (stock)"]
    runtime = rows["runtime path (patched)"]
    print(f"\n{'config':28s} {'ready s':>8s} {'weights':>8s} {'RSS MiB':>9s} {'anon':>8s} {'file':>8s} "
          f"{'W/orig':>7s} {'RSS/orig':>9s}  top token")
    for name, r in rows.items():
        print(f"{name:28s} {r['ready_s']:8.2f} {r['weights']:8.1f} {r['VmRSS']:9.1f} {r['RssAnon']:8.1f} "
              f"{r['RssFile']:8.1f} {r['weights'] / base['weights']:7.3f} {r['VmRSS'] / base['VmRSS']:9.3f}  {r['top']!r}")
    print()
    single = rows["single rewritten file"]
    print(f"weight memory (llama.cpp model buffers): runtime path / original = "
          f"{runtime['weights'] / base['weights']:.3f} (target <= 1.02); single rewritten file / original = "
          f"{single['weights'] / base['weights']:.3f}")
    print(f"resident memory (VmRSS, includes the KV cache per executed layer): runtime path / original = "
          f"{runtime['VmRSS'] / base['VmRSS']:.3f}; single rewritten file / original = "
          f"{single['VmRSS'] / base['VmRSS']:.3f}")
    for name in ("split layout, fresh store", "split layout, 2nd config", "single rewritten file"):
        print(f"time to ready: runtime path / {name} = {runtime['ready_s'] / rows[name]['ready_s']:.2f}")
    if "runtime path, model in tmpfs" in rows:
        tmpfs = rows["runtime path, model in tmpfs"]
        for name in ("split layout, fresh store", "split layout, 2nd config"):
            print(f"time to ready, both in tmpfs: runtime path / {name} = "
                  f"{tmpfs['ready_s'] / rows[name]['ready_s']:.2f}")
    same = len({r["top"] for name, r in rows.items() if name != "original (stock)"
                and name != "split layout, 2nd config"}) == 1
    print(f"runtime, split and single file agree on the top token: {same}")


if __name__ == "__main__":
    main()
