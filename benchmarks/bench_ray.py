#!/usr/bin/env python3
"""Per-config cost of a sweep through Ray vs in-process, one worker, the same sweep.

    .venv/bin/python benchmarks/bench_ray.py --model smollm2 --limit 4 --block-sizes 2 --stride 2 --rounds 3

In-process: rys.sweep.runner.run_configs with one worker thread (`rys sweep`). Ray: the same call with
the job's workers in a RayPool of one CPU actor on a private local Ray cluster (`rys sweep --ray local
--cpus-per-worker C`): the actor runs the same Worker, and the driver writes the rows. Both get the same
--server-args (--threads C unless given), a fresh results file and layer store per run, and score the
baseline plus the configs; the methods alternate (in-process, Ray, Ray, in-process, ...) so a change in
machine load hits both alike. Ray's own start (cluster and actor, once per sweep) is printed apart; the
ratio is of the summed wall times of the sweeps themselves, per config. On a machine shared with other
work those vary more between runs than the overhead itself, so it also prints what Ray adds to each
config in the same run: the driver's round trip minus the time the worker took inside the actor. Also
checks that both give the same per-item records, bit for bit.
"""

from __future__ import annotations

import argparse
import platform
import re
import shlex
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--probe", default="math-logprob")
    ap.add_argument("--limit", type=int, default=4, help="probe items")
    ap.add_argument("--block-sizes", default="2")
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--ctx-size", type=int, default=512)
    ap.add_argument("--cpus", type=int, default=2, help="cores of the one worker (its server's --threads)")
    ap.add_argument("--server-args", default="")
    ap.add_argument("--rounds", type=int, default=3, help="runs per method")
    ap.add_argument("--llama-server")
    args = ap.parse_args()

    import ray

    from rys.gguf import LayerStore
    from rys.gguf.provenance import file_sha256
    from rys.gguf.source import open_source
    from rys.llama.locate import find_llama_server
    from rys.models import resolve_model
    from rys.probes import load_probe
    from rys.server import ServerConfig
    from rys.sweep.ray_pool import RayPool
    from rys.sweep.results import ResultStore, read_rows
    from rys.sweep.runner import SweepJob, limit_items, run_configs
    from rys.sweep.space import PairSpace
    from rys.sweep.threads import sets_threads

    model = resolve_model(args.model)
    n_layers = open_source(model).n_layers
    probe = limit_items(load_probe(args.probe), args.limit)
    sizes = tuple(int(b) for b in re.split(r"[,\s]+", args.block_sizes.strip()))
    configs = PairSpace(n_layers, block_sizes=sizes, stride=args.stride).configs()
    binary = find_llama_server(args.llama_server)
    extra = tuple(shlex.split(args.server_args))
    if not sets_threads(extra):
        extra += ("--threads", str(args.cpus))
    sha = file_sha256(model)
    work = Path(tempfile.mkdtemp(prefix="rys-bench-ray-"))
    n = len(configs) + 1  # and the baseline

    def job(name: str) -> SweepJob:
        return SweepJob(model=model, model_sha256=sha, n_layers=n_layers, probes=[probe],
                        results=ResultStore(work / f"{name}.jsonl"),
                        server=ServerConfig(binary=binary, ctx_size=args.ctx_size, extra_args=extra,
                                            log_dir=work / "logs"),
                        store=LayerStore(root=work / f"store-{name}"), progress=False, log=lambda _: None)

    t0 = time.monotonic()
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
    cluster_s = time.monotonic() - t0
    times: dict[str, list[float]] = {"in-process": [], "ray": []}
    starts = []
    trips: list[tuple[float, float]] = []  # Ray runs: (driver round trip, seconds inside the actor) per config
    rows: dict[str, list] = {}
    try:
        order = [m for r in range(args.rounds) for m in (("in-process", "ray") if r % 2 == 0 else ("ray", "in-process"))]
        for n_run, method in enumerate(order):
            name = f"{method}-{n_run}"
            sweep = job(name)
            if method == "ray":
                t0 = time.monotonic()
                sweep.pool = RayPool(sweep, cpus_per_worker=args.cpus, store_root=work / f"store-{name}",
                                     log=lambda _: None)
                ray.get(sweep.pool.actors[0].waiting)  # the actor is up
                starts.append(time.monotonic() - t0)
            try:
                t0 = time.monotonic()
                stats = run_configs(sweep, configs)
                times[method].append(time.monotonic() - t0)
            finally:
                if sweep.pool is not None:
                    trips += sweep.pool.round_trips
                    sweep.pool.close()
            assert (stats.scored, stats.failed) == (n, 0), stats
            rows[name] = sorted(read_rows(work / f"{name}.jsonl"), key=lambda r: r.path)
            print(f"{name:<14} {times[method][-1]:7.2f} s  {times[method][-1] / n * 1000:7.1f} ms/config", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    def records(rs):  # the per-item records and the scores made of them, without wall times
        return [{k: v for k, v in r.result.items() if k != "seconds"} for r in rs]

    first = records(next(iter(rows.values())))
    same = all(records(rs) == first for rs in rows.values())
    local, remote = sum(times["in-process"]), sum(times["ray"])
    print(f"\nmachine: {platform.processor() or platform.machine()}, {args.cpus} worker cores; "
          f"llama-server {binary}")
    print(f"sweep: {n} configs (baseline + {len(configs)}) x {len(probe.items)} {probe.name} items, "
          f"{args.rounds} runs per method, server args {' '.join(extra)}")
    print(f"in-process: {local / len(times['in-process']) / n * 1000:.1f} ms/config "
          f"(runs {', '.join(f'{t:.2f}' for t in times['in-process'])} s)")
    print(f"ray       : {remote / len(times['ray']) / n * 1000:.1f} ms/config "
          f"(runs {', '.join(f'{t:.2f}' for t in times['ray'])} s)")
    print(f"ray start : cluster {cluster_s:.1f} s once, actor {statistics.median(starts):.2f} s per sweep (median)")
    print(f"per-config ratio ray / in-process: {remote / len(times['ray']) / (local / len(times['in-process'])):.3f} "
          f"(of the mean run; of the median run {statistics.median(times['ray']) / statistics.median(times['in-process']):.3f})")
    gap = sum(t - s for t, s in trips) / len(trips)
    print(f"ray round trip vs time inside the actor, per config: +{gap * 1000:.2f} ms "
          f"(ratio {sum(t for t, _ in trips) / sum(s for _, s in trips):.4f} over {len(trips)} configs)")
    print(f"per-item records identical across all runs: {same}")


if __name__ == "__main__":
    main()
