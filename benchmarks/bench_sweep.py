#!/usr/bin/env python3
"""rys sweep vs the llm-circuit-finder method, on the same model, probe items and configs.

    .venv/bin/python benchmarks/bench_sweep.py --model smollm2 --limit 4 --block-sizes "2 3" --stride 6

Reference (their method, rebuilt with our own parts): for every config, rewrite the whole GGUF
(rys.gguf.build_single) into --tmpdir (tmpfs by default, as theirs), start a fresh llama-server on it
the way llm-circuit-finder does (plain `llama-server -m FILE -c N --port P` plus --server-args), score
the probe with what a stock server offers (one forced request per continuation token), stop the server,
delete the file. --reference-launch rys gives the reference rys's launch arguments too (-fit off and
-fa off on a CPU-only build), so only the method differs. Ours: rys.sweep.runner.run_configs as `rys sweep` runs it
(runtime layer paths on a patched server, else the layer store; one server per worker switched from
path to path where the server has path-switch.patch (--switch off: a fresh server per config), each
config started from the baseline's residual rows after the layers it shares with the unmodified model
where the server has prefix-resume.patch (--reuse-prefix off: every layer evaluated); a
continuation scored in one request where the server has prompt-logprobs.patch; the next server started
ahead with --prefetch on; shared token cache), with a cold layer store each time, so writing the shared layer files is counted. Both score the baseline
too. The methods run in the order reference, rys, rys, reference (--rounds 2) so a change in machine
load hits both alike; the ratio is of the summed wall times. Prints wall time per run and method, the
split per phase, bytes written, the ratio, and checks that both methods give the same scores.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--probe", default="math-logprob")
    ap.add_argument("--limit", type=int, default=4, help="probe items")
    ap.add_argument("--block-sizes", default="2 3")
    ap.add_argument("--stride", type=int, default=6)
    ap.add_argument("--ctx-size", type=int, default=512)
    ap.add_argument("--server-args", default="", help="extra llama-server arguments for both methods (quoted)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per method, in the order A B B A A B ...")
    ap.add_argument("--switch", choices=("auto", "off"), default="auto",
                    help="rys keeps one server and switches its layer path where the build can (auto), or not")
    ap.add_argument("--reuse-prefix", choices=("auto", "off"), default="auto",
                    help="configs start from the baseline's kept residual rows where the build can (auto), or not")
    ap.add_argument("--prefetch", choices=("auto", "on", "off"), default="off",
                    help="rys: start the next server ahead (off: as `rys sweep` does by default; auto: when the build is CPU-only)")
    ap.add_argument("--reference-launch", choices=("peer", "rys"), default="peer",
                    help="reference server launch: as llm-circuit-finder (peer) or with rys's launch arguments (rys)")
    ap.add_argument("--llama-server")
    ap.add_argument("--tmpdir", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                    help="where both methods write (default: /dev/shm, as llm-circuit-finder)")
    args = ap.parse_args()

    from rys.gguf import LayerStore, build_single
    from rys.gguf.provenance import file_sha256
    from rys.gguf.source import open_source
    from rys.llama.locate import find_llama_server
    from rys.models import resolve_model
    from rys.probes import load_probe, run_probe
    from rys.server import LlamaServer, ServerConfig
    from rys.sweep.results import ResultStore, read_rows
    from rys.sweep.runner import SweepJob, can_start_ahead, limit_items, run_configs, shared_cpu_threads
    from rys.sweep.space import PairSpace, baseline, order_for_reuse

    model = resolve_model(args.model)
    n_layers = open_source(model).n_layers
    probe = limit_items(load_probe(args.probe), args.limit)
    sizes = tuple(int(b) for b in re.split(r"[,\s]+", args.block_sizes.strip()))
    configs = order_for_reuse([baseline(n_layers), *PairSpace(n_layers, block_sizes=sizes, stride=args.stride).configs()])
    binary = find_llama_server(args.llama_server)
    extra = tuple(shlex.split(args.server_args))
    prefetch = {"on": True, "off": False}.get(args.prefetch)
    if prefetch is None:
        prefetch = can_start_ahead(binary, extra, model)
    work = Path(tempfile.mkdtemp(prefix="rys-bench-", dir=args.tmpdir))
    server = ServerConfig(binary=binary, ctx_size=args.ctx_size, extra_args=extra, log_dir=work / "logs")
    # the peer's server has no prompt logprobs: it forces one continuation token per request
    ref_server = dataclasses.replace(server, prompt_logprobs=0, cpu_defaults=args.reference_launch == "rys")
    print(f"model {model.name} ({model.stat().st_size / 2**20:.0f} MiB, {n_layers} layers), probe {probe.name} "
          f"x {len(probe.items)} items, {len(configs)} configs incl. baseline, reference server args {list(extra)}, "
          f"rys starts the next server ahead: {prefetch}, reference launch: {args.reference_launch}")
    ours_launch, ref_launch = LlamaServer(model, server), LlamaServer(model, ref_server)
    print(f"llama-server {binary}: rys scores {ours_launch.prompt_window} continuation tokens per request "
          f"(0: one forced request per token, as the reference); launch arguments added: rys "
          f"{ours_launch.launch_args}, reference {ref_launch.launch_args}")
    file_sha256(model)  # hash once, outside both timings (cached for later runs)

    def reference(run: int) -> tuple[float, dict, dict, int]:
        scores, phases, written = {}, {"write": 0.0, "start": 0.0, "score": 0.0, "stop": 0.0}, 0
        t_start = time.monotonic()
        for c in configs:
            out = work / f"ref{run}" / "model.gguf"
            out.parent.mkdir(exist_ok=True)
            t0 = time.monotonic()
            build_single(model, out, list(c.path), force=True)
            written += out.stat().st_size
            t1 = time.monotonic()
            srv = LlamaServer(out, ref_server, name="bench-ref").start()
            try:
                t2 = time.monotonic()
                scores[c.key] = run_probe(srv.client, probe).score
                t3 = time.monotonic()
            finally:
                srv.stop()
            out.unlink()
            t4 = time.monotonic()
            for name, dt in (("write", t1 - t0), ("start", t2 - t1), ("score", t3 - t2), ("stop", t4 - t3)):
                phases[name] += dt
        return time.monotonic() - t_start, scores, phases, written

    # as `rys sweep` runs it: with servers started ahead, each gets its share of the cores unless
    # --server-args sets --threads (then both methods run with exactly the same arguments)
    our_server = dataclasses.replace(server, extra_args=extra + tuple(shared_cpu_threads(extra, [], 1))) \
        if prefetch else server
    print(f"rys server args: {list(our_server.extra_args)}")

    def ours(run: int) -> tuple[float, dict, dict, int]:
        results = work / f"ours{run}.jsonl"
        job = SweepJob(model=model, model_sha256=file_sha256(model), n_layers=n_layers, probes=[probe],
                       results=ResultStore(results), server=our_server, store=LayerStore(root=work / f"store{run}"),
                       progress=False, log=lambda _: None, prefetch=prefetch,
                       switch_paths=False if args.switch == "off" else None,
                       reuse_prefix=False if args.reuse_prefix == "off" else None)
        t0 = time.monotonic()
        run_configs(job, configs)
        wall = time.monotonic() - t0
        rows = read_rows(results)
        phases = {"write": sum(r.timings["materialize_s"] for r in rows),
                  "start": sum(r.timings["server_start_s"] for r in rows),
                  "wait": sum(r.timings.get("ready_wait_s", r.timings["server_start_s"]) for r in rows),
                  "score": sum(r.timings["score_s"] for r in rows),
                  "switched": sum(bool(r.timings.get("path_switched")) for r in rows),
                  "reused": sum(r.timings.get("reused_layers", 0) for r in rows),
                  "executed": sum(r.n_layers for r in rows)}
        shutil.rmtree(work / f"store{run}", ignore_errors=True)
        return wall, {r.path: r.score for r in rows}, phases, sum(r.timings["bytes_written"] for r in rows)

    runs = {"reference": [], "rys": []}
    try:
        for k in range(args.rounds):
            order = ("reference", "rys") if k % 2 == 0 else ("rys", "reference")
            for method in order:
                runs[method].append((reference if method == "reference" else ours)(k))
                print(f"  round {k + 1} {method:<9} {runs[method][-1][0]:8.2f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def total(method: str, i: int):
        return sum(r[i] for r in runs[method])

    ref_total, ours_total = total("reference", 0), total("rys", 0)
    ref_ph = {p: sum(r[2][p] for r in runs["reference"]) for p in runs["reference"][0][2]}
    our_ph = {p: sum(r[2][p] for r in runs["rys"]) for p in runs["rys"][0][2]}
    print(f"\nsums over {args.rounds} run(s) per method, {len(configs)} configs each")
    print(f"{'':<30}{'total s':>9}{'write s':>9}{'start s':>9}{'waited s':>10}{'score s':>9}{'MiB written':>13}")
    print(f"{'reference (rewrite+restart)':<30}{ref_total:>9.2f}{ref_ph['write']:>9.2f}{ref_ph['start']:>9.2f}"
          f"{ref_ph['start']:>10.2f}{ref_ph['score']:>9.2f}{total('reference', 3) / 2**20:>13.0f}")
    print(f"{'rys sweep':<30}{ours_total:>9.2f}{our_ph['write']:>9.2f}{our_ph['start']:>9.2f}"
          f"{our_ph['wait']:>10.2f}{our_ph['score']:>9.2f}{total('rys', 3) / 2**20:>13.0f}")
    print(f"(reference stop: {ref_ph['stop']:.2f} s; rys stops servers in the background; rys switched a "
          f"running server's path for {our_ph['switched']} of {len(configs) * args.rounds} configs instead of "
          "starting one: its 'start s' for those is the switch)")
    if our_ph["reused"]:
        print(f"prefix reuse: rys's configs started from the baseline's kept rows for {our_ph['reused']} of "
              f"{our_ph['executed']} executed layers ({our_ph['reused'] / our_ph['executed']:.0%})")
    print(f"end-to-end speed-up: {ref_total / ours_total:.2f}x (per round: "
          + ", ".join(f"{a[0] / b[0]:.2f}x" for a, b in zip(runs["reference"], runs["rys"])) + "); "
          + (f"write phase {ref_ph['write'] / our_ph['write']:.1f}x faster, "
             f"{total('reference', 3) / max(total('rys', 3), 1):.1f}x fewer bytes"
             if total("rys", 3) else "rys wrote nothing (runtime layer paths on a patched server)"))
    diff = max(abs(a[1][key] - b[1][key]) for a in runs["reference"] for b in runs["rys"] for key in a[1])
    print(f"same scores both ways: max |difference| = {diff:.2e} over {len(configs)} configs"
          + (" (batched vs one-token evaluation and the attention kernel round differently: docs/server.md)"
             if diff else ""))


if __name__ == "__main__":
    main()
