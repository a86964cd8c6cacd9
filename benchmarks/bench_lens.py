"""Cost of a full logit lens against plain next-token requests, measured in one run.

Target: a full lens over all N layers of SmolLM2 for one prompt (materialization into a fresh layer
store, N + 1 server starts, full-vocabulary requests; on a build that switches paths in place, one server
and each layer run from the kept rows, `--switch off` for the former) costs at most 3x the time of N
next-token requests on the full model. Both ratios are printed: against N full-vocabulary requests (the same
answer the lens reads per layer) and against N top-1 requests.

    .venv/bin/python benchmarks/bench_lens.py [--model smollm2] [--workers 2] [--server-args "..."]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--prompt", default="The capital of France is")
    parser.add_argument("--answer", default="Paris")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ctx-size", type=int, default=128)
    parser.add_argument("--server-args", default="")
    parser.add_argument("--switch", choices=("auto", "off"), default="auto",
                        help="one switched server for every layer where the build can (auto), or a server per layer")
    args = parser.parse_args()

    from rys.gguf import LayerStore
    from rys.gguf.source import open_source
    from rys.llama.locate import find_llama_server
    from rys.models import resolve_model
    from rys.neuro.lens import LensPrompt, run_lens
    from rys.neuro.pipeline import share_cores
    from rys.serve_path import switches_in_place
    from rys.server import LlamaServer, ServerConfig

    model = resolve_model(args.model)
    n_layers = open_source(model).n_layers

    def plain(config) -> dict[str, float]:
        with LlamaServer(model, config, name="bench-plain") as server:
            client = server.client
            ids = client.tokenize(args.prompt, add_special=True)
            client.next_token(ids, top_k=1)  # warm: the first request pays one-off costs
            timings = {}
            for label, top_k in (("full-vocab", None), ("top-1", 1)):
                start = time.perf_counter()
                for _ in range(n_layers):
                    client.next_token(ids, top_k=top_k)
                timings[label] = time.perf_counter() - start
        return timings

    with tempfile.TemporaryDirectory(prefix="rys-bench-lens-") as tmp:
        config = ServerConfig(binary=find_llama_server(), ctx_size=args.ctx_size, extra_args=args.server_args,
                              log_dir=Path(tmp) / "logs")
        # the lens servers share the cores as `rys lens` does; one switched server needs no share
        switched = args.switch == "auto" and switches_in_place(config.binary, model)
        workers = 1 if switched else args.workers
        lens_config = dataclasses.replace(config, extra_args=share_cores(config.extra_args, workers))

        def baseline() -> dict[str, float]:
            # The plain requests get the faster of llama-server's default threads and the lens's share, so
            # the ratio never flatters the lens; on a loaded machine the share can be the faster one.
            runs = [plain(config)] + ([plain(lens_config)] if lens_config != config else [])
            return {label: min(run[label] for run in runs) for label in runs[0]}

        # The machine may be shared: the requests are timed before and after the lens and averaged, so a
        # change of load during the run shifts both sides of the ratio alike.
        before = baseline()
        store = LayerStore(Path(tmp) / "store")  # cold: every truncated path is materialized in the run
        start = time.perf_counter()
        result = run_lens(model, [LensPrompt("p", args.prompt, args.answer)], lens_config, store=store,
                          workers=workers, switch=switched)
        lens_s = time.perf_counter() - start
        after = baseline()
    timings = {k: (before[k] + after[k]) / 2 for k in before}

    print(f"model {model.name}: {n_layers} layers, vocabulary {result.n_vocab}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    method = "one switched server, each layer from the kept rows" if switched else f"workers={workers}"
    print(f"full lens ({n_layers} truncated paths + the original model, {method}): {lens_s:.2f} s "
          f"({lens_s / n_layers:.3f} s per layer); self-test KL {result.self_test_kl_bits:.1e} bits")
    for label, seconds in timings.items():
        print(f"{n_layers} {label} next-token requests on the full model: {seconds:.2f} s (before {before[label]:.2f}, "
              f"after {after[label]:.2f}) -> lens / requests = {lens_s / seconds:.2f}x")
    target = lens_s / timings["full-vocab"]
    print(f"target <= 3x against full-vocabulary requests: {'met' if target <= 3 else 'NOT met'} ({target:.2f}x)")


if __name__ == "__main__":
    main()
