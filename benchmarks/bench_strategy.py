#!/usr/bin/env python3
"""Search strategies against the exhaustive grid: compute spent and whether they find its winners.

    .venv/bin/python benchmarks/bench_strategy.py --model smollm2 --block-sizes "2 4 6" --stride 4 \
        --out results/strategy-bench                      # grid for real, halving and guided replayed
    .venv/bin/python benchmarks/bench_strategy.py ... --mode real    # halving and guided for real too

The reference is `rys sweep --strategy grid` (every config on every item, its top 5 then re-scored on
held-out items), written to OUT/grid.jsonl; a rerun resumes it. Halving and guided then run either for
real (`--mode real`: `rys sweep --strategy halving|guided`, each into its own results file, each
confirming its top 3), or replayed (`--mode replay`, the default): the same strategy code
(rys.sweep.strategy) drives a Search whose rows come from the grid's per-item records instead of a
server. A config's score on an item does not depend on which other configs or items were scored
(one slot, bit-for-bit equal scores with or without path switching and prefix reuse:
tests/test_path_switch.py, tests/test_prefix_resume.py), so a replay makes the choices a real run
makes and spends the same (config, item) pairs; its wall time is estimated from the grid's own
per-row times. Several settings per strategy can be replayed in one run (--eta, --min-items, --budget).

Prints, per strategy: configs and (config, item) pairs scored, compute (scored tokens x executed
layers: each item's tokens counted with the model's tokenizer, the layers being those a config runs
after the baseline rows it reuses) and its ratio to the grid, wall time and its ratio, whether the
grid's best config is in the strategy's top 3, and the recall of the grid's top 5 in its top 5. For the
grid also: configs with raw p < 0.05 against those significant after Benjamini-Hochberg, and its top
5's search deltas next to their held-out deltas.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def sweep(model: str, probe: str, results: Path, strategy: str, space: list[str], confirm: int,
          extra: list[str]) -> float:
    """Run one strategy to the end (resuming); seconds of this call."""
    cmd = [str(ROOT / ".venv/bin/rys"), "sweep", model, "--probe", probe, "--results", str(results),
           "--strategy", strategy, "--confirm-top", str(confirm), "--no-progress", "--no-html",
           "--report-dir", str(results.with_name(results.stem + "-report")), *space, *extra]
    print("$", " ".join(cmd[1:]), flush=True)
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def search_wall(rows) -> float:
    """Search wall time read from the rows (a resumed run still reports it): the first row's own start
    and scoring, then up to the last search row's finish."""
    search = sorted((r for r in rows if r.stage == "search"), key=lambda r: r.finished_at)
    first, last = search[0], search[-1]
    head = first.timings.get("ready_wait_s", 0) + first.timings.get("score_s", 0)
    return (datetime.fromisoformat(last.finished_at) - datetime.fromisoformat(first.finished_at)).total_seconds() + head


def token_counts(model: Path, probe) -> dict[str, int]:
    """Prompt tokens of each item as a sweep sends them (chat template, answer prefix, answer)."""
    from rys.llama.locate import find_llama_server
    from rys.server import LlamaServer, ServerConfig

    server = LlamaServer(model, ServerConfig(binary=find_llama_server(None), ctx_size=512), name="bench-tokens")
    with server.start():
        client = server.client
        return {item.id: len(client.tokenize(client.format_prompt(item.prompt, probe.chat) + probe.answer_prefix
                                             + " " + str(item.answer), add_special=True)) for item in probe.items}


def compute(rows, tokens: dict[str, int]) -> float:
    """Scored tokens x executed layers over the search rows (the baseline included)."""
    total = 0.0
    for r in rows:
        if r.stage == "search":
            layers = r.n_layers - int(r.timings.get("reused_layers", 0))
            total += layers * sum(tokens.get(str(item["id"]), 0) for item in new_items(r))
    return total


def new_items(row) -> list[dict]:
    """The items a row's run scored: not those it kept from the config's earlier rung (the first ones)."""
    return row.result["items"][int(row.timings.get("extended_items", 0)):]


def replay(grid_rows, probe, n_layers: int, strategy: str, options: dict, candidates):
    """Run a strategy on a Search that answers from the grid's rows. Returns (rows, estimated seconds)."""
    from rys.sweep.strategy import Search, get_strategy

    base = next(r for r in grid_rows if r.is_baseline and r.stage == "search")
    ref = {r.path: r for r in grid_rows if r.stage == "search" and not r.is_baseline}
    order = [item.id for item in probe.items]

    class Replay(Search):
        def score(self, configs, n_items=None):
            n = n_items or self.n_items
            keep = set(order[:n])
            for c in configs:
                full = ref.get(c.key)
                if full is None or any(r.path == c.key and r.n_items == n for r in self.out):
                    continue
                # as Search.score: the items of the config's largest earlier rung are kept, not rescored
                had = max((r.n_items for r in self.out if r.path == c.key and r.n_items < n), default=0)
                items = [i for i in full.result["items"] if i["id"] in keep]
                base_items = {i["id"]: i["score"] for i in base.result["items"]}
                delta = sum(i["score"] - base_items[i["id"]] for i in items) / n
                timings = dict(full.timings, extended_items=had)
                self.out.append(dataclasses.replace(full, n_items=n, result={"items": items}, timings=timings,
                                                    score=sum(i["score"] for i in items) / n, delta={"delta": delta}))
                self.seconds += (full.timings.get("ready_wait_s", 0)
                                 + full.timings.get("score_s", 0) * (n - had) / full.n_items)
                self.spent.append((c, n))

        def cost(self, config):  # what the grid's row ran: the same estimate Search.cost makes, measured
            row = ref[config.key]
            return row.n_layers - int(row.timings.get("reused_layers", 0))

        def rows(self):
            return self.out

    job = SimpleNamespace(probes=[probe], n_layers=n_layers, log=lambda _: None)
    search = Replay(job, list(candidates))
    search.out = [base]
    search.seconds = base.timings.get("ready_wait_s", 0) + base.timings.get("score_s", 0)
    get_strategy(strategy)(search, options)
    return search.out, search.seconds


def _end(value) -> str:
    return "unbounded" if value is None else f"{value:+.4f}"


def synthetic(seed: int, n_layers: int = 24, max_block: int = 10, n_items: int = 64):
    """A simulated grid (clearly not a model): every (i, j) with block length <= max_block of an
    n_layers model, per-item scores = item difficulty + the config's true effect + noise (sd 0.15). The
    true effects are RYS-like: most blocks hurt a little, more the longer they are and near the
    first layers; one smooth region around i = 10, length 4 helps. Returns (rows, probe, candidates)."""
    import numpy as np

    from rys.probes.sets import ProbeItem, ProbeSet
    from rys.sweep.results import Row
    from rys.sweep.space import PairSpace

    rng = np.random.default_rng(seed)
    candidates = PairSpace(n_layers, max_block=max_block).configs()
    items = [f"s{k:03d}" for k in range(n_items)]
    difficulty = rng.uniform(0.2, 0.8, n_items)
    probe = ProbeSet("synthetic", "", "continuation", False,
                     tuple(ProbeItem(i, "", 0) for i in items), "s" * 64)

    def row(path, i, j, times, scores):
        recs = [{"id": k, "score": float(x)} for k, x in zip(items, scores)]
        return Row(config="baseline" if times == 1 else f"({i},{j})", path=path, i=i, j=j, times=times,
                   interleaved=False, n_layers=n_layers + (j - i),
                   probe="synthetic", probe_sha256="s" * 64, score=float(np.mean(scores)), ci=[0, 1], coverage=None,
                   n_items=n_items, delta={"delta": float(np.mean(scores - difficulty))}, result={"items": recs},
                   timings={"reused_layers": j, "score_s": 1.0 * (n_layers + (j - i) - j) / n_layers},
                   provenance={"model_sha256": "synthetic"}, finished_at="2000-01-01T00:00:00+00:00")

    base = row(",".join(map(str, range(n_layers))), 0, 0, 1, difficulty)
    base.n_layers, base.timings = n_layers, {"reused_layers": 0, "score_s": 1.0}
    out = [base]
    for c in candidates:
        b = c.j - c.i
        effect = (0.05 * np.exp(-((c.i - 10) ** 2 + (b - 4) ** 2) / 6) - 0.004 * b
                  - (0.03 if c.i < 2 else 0.0))
        out.append(row(c.key, c.i, c.j, 2, difficulty + effect + rng.normal(0, 0.15, n_items)))
    return out, probe, candidates


def _guided_name(g: dict) -> str:
    return (f"guided budget {g['budget']:g}" + (f" start {g['start']:g}" if "start" in g else "")
            + ("" if g.get("explore", True) else " no-explore"))


def simulate(seeds: int, halving: list[dict], guided: list[dict]) -> None:
    """Strategies replayed on simulated grids: how often the grid's best is in their top 3, compute."""
    from rys.sweep.rank import combined_ranking

    tokens = 40  # every simulated item the same length: compute = items x executed layers
    table: dict[str, list] = {}
    for seed in range(seeds):
        grid, probe, candidates = synthetic(seed)
        ref = [r.path for r in combined_ranking(grid)]
        full = compute(grid, {i.id: tokens for i in probe.items})
        settings = [("halving", f"halving eta {h['eta']:g} min {h['min_items']}", h) for h in halving]
        settings += [("guided", _guided_name(g), g) for g in guided]
        for strategy, name, options in settings:
            rows, _ = replay(grid, probe, 24, strategy, dict(options, seed=seed), candidates)
            ranked = [r.path for r in combined_ranking(rows)]
            table.setdefault(name, []).append((compute(rows, {i.id: tokens for i in probe.items}) / full,
                                               ref[0] in ranked[:3], len(set(ref[:5]) & set(ranked[:5])) / 5))
    print(f"\nsimulated grids ({seeds} seeds; 24 layers, every (i, j) with block <= 10: "
          f"{len(candidates)} configs x 64 items; not a model, see synthetic()):")
    print(f"{'strategy':<24} {'compute x grid':>14} {'best in top 3':>14} {'top-5 recall':>13}")
    for name, results in table.items():
        print(f"{name:<24} {np.mean([r[0] for r in results]):>14.3f} "
              f"{sum(r[1] for r in results):>9} of {len(results):<2} {np.mean([r[2] for r in results]):>13.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--probe", default="math-logprob", help="built-in probe or file (made by a rys generator)")
    ap.add_argument("--block-sizes", default="2 6")
    ap.add_argument("--stride", default="4")
    ap.add_argument("--out", type=Path, default=Path("results/strategy-bench"))
    ap.add_argument("--mode", choices=("replay", "real"), default="replay")
    ap.add_argument("--eta", default="3,4", help="halving settings to try (replay), comma-separated")
    ap.add_argument("--min-items", default="4,6", help="halving first-rung items to try (replay)")
    ap.add_argument("--budget", default="0.2,0.3", help="guided budgets to try (replay)")
    ap.add_argument("--confirm-items", default=None, help="held-out items per probe (default: as many as the search)")
    ap.add_argument("--server-args", default="")
    ap.add_argument("--guided-start", default="", help="guided: shares of the budget for the random start to try")
    ap.add_argument("--no-explore", action="store_true", help="guided: also try without the exploration pick")
    ap.add_argument("--simulate", type=int, default=0, metavar="SEEDS",
                    help="only replay the strategies on this many simulated grids (no server, no model)")
    args = ap.parse_args()
    halving = [{"eta": float(e), "min_items": int(m), "keep": 3} for e in args.eta.split(",") for m in args.min_items.split(",")]
    guided = [{"budget": float(b)} for b in args.budget.split(",")]
    if args.guided_start:
        guided = [dict(g, start=float(s)) for g in guided for s in args.guided_start.split(",")]
    if args.no_explore:
        guided += [dict(g, explore=False) for g in guided]
    if args.simulate:
        simulate(args.simulate, halving, guided)
        return

    from rys.gguf.source import open_source
    from rys.models import resolve_model
    from rys.probes import load_probe
    from rys.sweep.confirm import confirmations
    from rys.sweep.rank import combined_ranking, verdicts
    from rys.sweep.results import current_rows, read_rows
    from rys.sweep.space import PairSpace

    args.out.mkdir(parents=True, exist_ok=True)
    model = resolve_model(args.model)
    n_layers = open_source(model).n_layers
    space = ["--block-sizes", args.block_sizes, "--stride", args.stride, "--server-args", args.server_args]
    if args.confirm_items:
        space += ["--confirm-items", args.confirm_items]
    sweep(args.model, args.probe, args.out / "grid.jsonl", "grid", space, 5, [])
    grid = current_rows(read_rows(args.out / "grid.jsonl"))
    probe = load_probe(args.probe)
    base = next(r for r in grid if r.is_baseline and r.stage == "search")
    probe = dataclasses.replace(probe, items=tuple(i for i in probe.items
                                                   if i.id in {x["id"] for x in base.result["items"]}))
    tokens = token_counts(model, probe)
    candidates = PairSpace(n_layers, block_sizes=tuple(int(b) for b in args.block_sizes.split()),
                           stride=int(args.stride)).configs()

    runs = {"grid": (grid, search_wall(grid), "real")}
    if args.mode == "real":
        h, g = halving[0], guided[0]
        for name, extra, label in (
                ("halving", ["--halving-eta", str(h["eta"]), "--halving-min-items", str(h["min_items"])],
                 f"halving eta {h['eta']:g} min {h['min_items']}"),
                ("guided", ["--budget", str(g["budget"])], f"guided budget {g['budget']:g}")):
            results = args.out / f"{name}.jsonl"
            sweep(args.model, args.probe, results, name, space, 3, extra)
            rows = current_rows(read_rows(results))
            runs[label] = (rows, search_wall(rows), "real")
    else:
        for h in halving:
            rows, seconds = replay(grid, probe, n_layers, "halving", h, candidates)
            runs[f"halving eta {h['eta']:g} min {h['min_items']}"] = (rows, seconds, "replay")
        for g in guided:
            rows, seconds = replay(grid, probe, n_layers, "guided", g, candidates)
            runs[_guided_name(g)] = (rows, seconds, "replay")

    ref_rank = [r.path for r in combined_ranking(grid)]
    ref_compute, ref_wall = compute(grid, tokens), runs["grid"][1]
    print(f"\nmodel {model.name} ({n_layers} layers), {probe.name} {len(probe.items)} items, block sizes "
          f"{args.block_sizes}, stride {args.stride}: {len(ref_rank)} configs in the grid")
    print(f"{'strategy':<24} {'how':<6} {'configs':>7} {'pairs':>6} {'compute':>9} {'x grid':>6} {'wall s':>7} "
          f"{'x grid':>6}  best in top 3  top-5 recall")
    for name, (rows, wall, how) in runs.items():
        ranked = [r.path for r in combined_ranking(rows)]
        search = [r for r in rows if r.stage == "search" and not r.is_baseline]
        c = compute(rows, tokens)
        recall = len(set(ref_rank[:5]) & set(ranked[:5])) / min(5, len(ref_rank))
        print(f"{name:<24} {how:<6} {len({r.path for r in search}):>7} {sum(len(new_items(r)) for r in search):>6} "
              f"{c:>9.3g} {c / ref_compute:>6.3f} {wall:>7.0f} {wall / ref_wall:>6.3f}  "
              f"{ref_rank[0] in ranked[:3]!s:<13}  {recall:.1f}")
    judged = verdicts(grid)[probe.name]
    print(f"\ngrid: {sum(v.p < 0.05 for v in judged.values())} of {len(judged)} configs have raw p < 0.05; "
          f"{sum(v.significant for v in judged.values())} are significant after Benjamini-Hochberg (FDR 0.05)")
    held = {c.path: c for c in confirmations(grid)}
    print("grid top 5: search delta -> held-out delta on fresh items")
    for path in ref_rank[:5]:
        c, v = held.get(path), judged[path]
        label = next(r.config for r in grid if r.path == path)
        after = "not re-scored" if c is None else (f"{c.held_out.delta:+.4f} [{_end(c.held_out.ci_low)}, "
                                                   f"{_end(c.held_out.ci_high)}] "
                                                   f"{'confirmed' if c.confirmed else 'not confirmed'} "
                                                   f"(adjusted p {c.held_out.p_adj:.2g})")
        print(f"  {label:<8} {v.delta:+.4f} (p {v.p:.2g}, adjusted {v.p_adj:.2g}) -> {after}")


if __name__ == "__main__":
    main()
