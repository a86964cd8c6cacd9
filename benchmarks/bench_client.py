"""How much of llama-server's prompt throughput survives the rys client, and how fast a server starts.

Scores N single-token probe items (distinct prompts, top-10 next-token distribution) through
LlamaClient.map with k slots, then compares:
  client rate = sum(prompt_n) / wall time seen by rys
  server rate = sum(prompt_n) / sum(prompt_ms)   (llama-server's own per-request timings)
Target: ratio >= 0.80. Where the server evaluates several slots' prompts in one batch their prompt_ms
overlap, the server rate is understated and the ratio can exceed 1: that is the gain of parallel slots. Also prints start-to-ready seconds and the cost of one full-vocabulary request.

usage: .venv/bin/python benchmarks/bench_client.py [--model smollm2] [--items 48] [--slots 1,2]
"""

from __future__ import annotations

import statistics
import time

import click

from rys.llama.locate import find_llama_server
from rys.models import resolve_model
from rys.server import LlamaServer, ServerConfig

WORDS = ("river", "copper", "orbit", "lantern", "meadow", "quartz", "violin", "harbor", "cactus", "glacier")


def items(n: int) -> list[str]:
    """Distinct ~60-token probes that share no prefix, so every prompt token is really evaluated."""
    out = []
    for i in range(n):
        a, b = 17 + 31 * i, 3 + 7 * i
        w = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(6))
        out.append(f"{w} {i}. A farmer has {a} sheep and buys {b} more at the market on a sunny morning, "
                   f"then sells none of them before the evening. How many sheep does the farmer have now? "
                   f"Answer with one number. Answer:")
    return out


def measure(model, binary, n_items: int, slots: int, server_args: str) -> dict:
    with LlamaServer(model, ServerConfig(binary, ctx_size=256, slots=slots, extra_args=server_args)) as server:
        client = server.client
        ready = server.start_seconds
        client.next_token("warm up", top_k=10)
        prompts = items(n_items)
        t0 = time.perf_counter()
        dists = client.map(lambda p: client.next_token(p, top_k=10), prompts)
        wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = client.next_token(prompts[0])
        full_s = time.perf_counter() - t0
    tokens = sum(d.timings["prompt_n"] for d in dists)
    server_rate = tokens / (sum(d.timings["prompt_ms"] for d in dists) / 1000)
    client_rate = tokens / wall
    return {"slots": slots, "tokens": tokens, "wall": wall, "client": client_rate, "server": server_rate,
            "ratio": client_rate / server_rate, "ready": ready, "full_s": full_s, "n_vocab": full.n_vocab}


@click.command()
@click.option("--model", default="smollm2", show_default=True)
@click.option("--items", "n_items", default=48, show_default=True)
@click.option("--slots", default="1,2", show_default=True, help="comma-separated slot counts")
@click.option("--llama-server", "llama_server", default=None)
@click.option("--server-args", default="", help="passed to llama-server, e.g. '-ngl 99'")
def main(model, n_items, slots, llama_server, server_args):
    model, binary = resolve_model(model), find_llama_server(llama_server)
    print(f"model {model.name}, {n_items} single-token items, top-10 logprobs")
    print(f"{'slots':>5} {'tokens':>6} {'wall s':>7} {'client tok/s':>12} {'server tok/s':>12} {'ratio':>6} "
          f"{'ready s':>7} {'full-vocab s':>12}")
    readies = []
    for k in (int(s) for s in slots.split(",")):
        r = measure(model, binary, n_items, k, server_args)
        readies.append(r["ready"])
        print(f"{r['slots']:>5} {r['tokens']:>6} {r['wall']:>7.2f} {r['client']:>12.1f} {r['server']:>12.1f} "
              f"{r['ratio']:>6.2f} {r['ready']:>7.2f} {r['full_s']:>12.2f}")
    print(f"start-to-ready: median {statistics.median(readies):.2f} s over {len(readies)} starts; "
          f"full vocabulary = {r['n_vocab']} tokens per request")


if __name__ == "__main__":
    main()
