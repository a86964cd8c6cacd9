"""Cost of `rys calibrate` (time, memory) and of attention entropy against plain scoring, measured in one run.

calibrate: wall time split into reading the hidden states (one server per truncated path) and the fit,
the peak memory of this process (the fit: head matrix, states, full-vocabulary distributions) and of the
largest llama-server it started.

attention: the same prompts scored on one patched llama-server (flash attention off, one slot), each
prompt evaluated in full either way (cache_prompt off for the plain requests), alternating plain and
readout requests over several rounds. Target: readout / plain <= 2x.

    .venv/bin/python benchmarks/bench_neuro_readout.py [--model smollm2] [--prompts 4] [--skip-calibrate]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path


def _prompts(n: int):
    from rys.neuro.lens import probe_prompts
    from rys.probes import load_probe

    return [p for name in ("math-logprob", "reasoning") for p in probe_prompts(load_probe(name), n)]


def bench_calibrate(model: Path, binary: Path, n: int, workers: int) -> None:
    from rys.neuro.calibrate import calibrate
    from rys.neuro.pipeline import share_cores
    from rys.server.manager import ServerConfig

    config = ServerConfig(binary=binary, ctx_size=512, extra_args=tuple(share_cores([], workers)),
                          log_dir=Path("/tmp/rys-bench-logs"))
    t0 = time.monotonic()
    lens, info = calibrate(model, _prompts(n), config, adam_steps=0, workers=workers)
    wall = time.monotonic() - t0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    held = info["held_out"]
    print(f"calibrate {model.name}: {len(info['prompt_ids'])} prompts, {sum(info['tokens'].values())} tokens "
          f"({info['tokens']}), {lens.n_layers} layers, n_embd {lens.n_embd}")
    print(f"  wall {wall:.1f} s = read {info['read_seconds']:.1f} s + fit {info['fit_seconds']:.1f} s "
          f"(+ setup); peak memory: this process {own:.0f} MiB, largest llama-server {child:.0f} MiB")
    print(f"  held-out mean KL over layers 0..{lens.n_layers - 2}: logit "
          f"{sum(held['logit_kl_bits'][:-1]) / (lens.n_layers - 1):.2f} bits, tuned "
          f"{sum(held['tuned_kl_bits'][:-1]) / (lens.n_layers - 1):.2f} bits")


def bench_attention(model: Path, binary: Path, n: int, rounds: int) -> None:
    from rys.neuro.attention import attention_config, entropies
    from rys.server.manager import LlamaServer, ServerConfig

    config = attention_config(ServerConfig(binary=binary, ctx_size=512, log_dir=Path("/tmp/rys-bench-logs")))
    with LlamaServer(model, config, name="bench-attention") as server:
        client = server.client
        prompts = [client.tokenize(client.format_prompt(p.text, p.chat) + p.suffix, add_special=True)
                   for p in _prompts(n)]
        plain = readout = 0.0
        for ids in prompts:  # warm-up
            client._complete(ids, n_predict=1, cache_prompt=False)
        for _ in range(rounds):
            for ids in prompts:
                t = time.perf_counter()
                client._complete(ids, n_predict=1, cache_prompt=False)
                plain += time.perf_counter() - t
                t = time.perf_counter()
                entropies(client, ids)
                readout += time.perf_counter() - t
    tokens = sum(len(p) for p in prompts)
    print(f"attention {model.name}: {len(prompts)} prompts ({tokens} tokens) x {rounds} rounds")
    print(f"  plain scoring {plain:.2f} s, with the entropy readout {readout:.2f} s -> readout / plain = "
          f"{readout / plain:.2f}x (target <= 2x: {'met' if readout / plain <= 2 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None, help="repeatable [default: smollm2]")
    parser.add_argument("--prompts", type=int, default=4, help="items of each of math-logprob and reasoning")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-calibrate", action="store_true")
    args = parser.parse_args()

    from rys.llama.locate import find_llama_server
    from rys.llama.runtime import find_patched_server
    from rys.models import resolve_model

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for alias in args.model or ["smollm2"]:
        model = resolve_model(alias)
        if not args.skip_calibrate:
            bench_calibrate(model, find_llama_server(None), args.prompts, args.workers)
        bench_attention(model, find_patched_server(), args.prompts, args.rounds)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
