#!/usr/bin/env python3
"""Skip-one ablation of every layer (rys ablate): one server switched from path to path, each skip path
started from the baseline's kept rows, against one server per path (the method before path switching).

    .venv/bin/python benchmarks/bench_ablate.py --model smollm2 --limit 4

Both run rys.neuro.ablate.score_skips on the same model, probe items and skip paths: `switch=True` (one
llama-server for everything where the build switches paths in place; prefix reuse where it can keep rows)
and `switch=False` (a server per path, `--workers` at a time, as `rys ablate` ran before). The methods run
in the order per-path, switched, switched, per-path (--rounds 2). Prints wall times, the ratio of the
sums, and checks that both give the same item records.
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--probe", default="math-logprob")
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="servers at a time for the per-path method")
    ap.add_argument("--llama-server", default=None)
    ap.add_argument("--server-args", default="")
    args = ap.parse_args()

    from rys.gguf.source import open_source
    from rys.llama.features import PATH_SWITCH, PREFIX_RESUME, has_feature
    from rys.llama.locate import find_llama_server
    from rys.models import resolve_model
    from rys.neuro.ablate import score_skips
    from rys.neuro.pipeline import share_cores
    from rys.probes import load_probe
    from rys.server import ServerConfig
    from rys.sweep.runner import limit_items

    model = resolve_model(args.model)
    n_layers = open_source(model).n_layers
    probe = limit_items(load_probe(args.probe), args.limit)
    binary = find_llama_server(args.llama_server)
    extra = shlex.split(args.server_args)
    work = Path(tempfile.mkdtemp(prefix="rys-bench-ablate-"))
    skips = [(layer,) for layer in range(n_layers)]
    print(f"model {model.name} ({n_layers} layers), probe {probe.name} x {len(probe.items)} items, "
          f"{len(skips)} skip-one paths + baseline; llama-server {binary}: path switch "
          f"{has_feature(binary, PATH_SWITCH)}, prefix reuse {has_feature(binary, PREFIX_RESUME)}")

    def run(switch: bool):
        workers = 1 if switch else args.workers
        config = ServerConfig(binary=binary, ctx_size=2048, extra_args=tuple(share_cores(extra, workers)),
                              log_dir=work / "logs")
        t0 = time.monotonic()
        scores = score_skips(model, probe, config, skips, switch=switch, workers=workers)
        return time.monotonic() - t0, scores

    times = {True: [], False: []}
    records = {}
    for k in range(args.rounds):
        for switch in ((False, True) if k % 2 == 0 else (True, False)):
            seconds, scores = run(switch)
            times[switch].append(seconds)
            records[switch] = scores
            print(f"  round {k + 1} {'switched' if switch else 'per-path':<9} {seconds:7.2f} s", flush=True)
    per_path, switched = sum(times[False]), sum(times[True])
    print(f"\nsums over {args.rounds} run(s): per-path servers ({args.workers} at a time) {per_path:.2f} s, "
          f"one switched server {switched:.2f} s")
    print(f"speed-up: {per_path / switched:.2f}x (per round: "
          + ", ".join(f"{a / b:.2f}x" for a, b in zip(times[False], times[True])) + ")")
    a, b = records[False], records[True]
    same = a.baseline.items == b.baseline.items and {s: r.items for s, r in a.results.items()} == {
        s: r.items for s, r in b.results.items()}
    print(f"same item records both ways: {same}; failed: {len(a.failed)} per-path, {len(b.failed)} switched")


if __name__ == "__main__":
    main()
