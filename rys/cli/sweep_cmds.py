"""`rys sweep`, `rys report`, `rys export`: thin wrappers over rys.sweep."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click

from rys.sweep import SweepError


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    """'3 4 5' or '3,4,5' -> (3, 4, 5)."""
    if not text:
        return None
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not all(p.isdigit() for p in parts):
        raise SweepError(f"{what} must be whole numbers, got {text!r}", f'write e.g. {what} "3 4 5" or {what} 3,4,5')
    return tuple(int(p) for p in parts)


def _probes(spec: str):
    """The whole probe sets named; --limit and the held-out split are applied by rys.sweep.confirm.plan."""
    from rys.probes import load_probe

    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise SweepError("no probe given", "pass --probe math (or several: --probe math,reasoning)")
    probes = [load_probe(n) for n in names]
    if len({p.name for p in probes}) != len(probes):
        raise SweepError(f"--probe names a probe twice: {spec}", "list each probe once")
    return probes


@click.command("sweep")
@click.argument("model")
@click.option("--probe", "probe_spec", required=True, help="Probe set(s), comma-separated: math,reasoning or a JSON file.")
@click.option("--limit", type=int, help="Score only the first N items of each probe (a quick sweep).")
@click.option("--results", type=click.Path(dir_okay=False, path_type=Path),
              help="Results JSONL (default results/<model>.sweep.jsonl). Rerun the same command to resume.")
@click.option("--block-sizes", help='Block lengths to try, e.g. "3 4 5" (default: --min-block..--max-block).')
@click.option("--min-block", type=int, default=1, show_default=True)
@click.option("--max-block", type=int, help="Largest block length (default: the layer count).")
@click.option("--stride", type=int, default=1, show_default=True, help="Step between block start layers.")
@click.option("--start-min", type=int, default=0, show_default=True, help="First block start layer.")
@click.option("--start-max", type=int, help="Last block start layer.")
@click.option("--skip-early", type=int, default=0, show_default=True, help="Never touch the first K layers.")
@click.option("--skip-late", type=int, default=0, show_default=True, help="Never touch the last K layers.")
@click.option("--sparse-first", is_flag=True, help="Run at --stride first, then refine around the top configs at stride 1.")
@click.option("--refine-top", type=int, default=3, show_default=True, help="How many top configs --sparse-first refines.")
@click.option("--paths", "paths_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Explicit layer paths, one per line (0..9,5..29); replaces the (i, j) space.")
@click.option("--repeat", type=int, default=2, show_default=True, help="Times the block runs (2 = RYS duplication).")
@click.option("--interleave", is_flag=True, help="Repeat each block layer in place (i,i,i+1,i+1,...) instead.")
@click.option("--skip-baseline", is_flag=True, help="Do not score the unmodified model (deltas need it once).")
@click.option("--workers", type=int, help="Parallel llama-servers sharing the queue (default 1; with --ray: at "
                                         "most this many actors, default as many as the cluster fits).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None, metavar="[auto|ADDRESS|local]",
              help="Run the workers as Ray actors anywhere in a cluster, one llama-server per GPU: --ray (auto: the "
                   "running cluster), --ray HOST:PORT, or --ray local (a private cluster of this machine). "
                   "Needs rys[ray].")
@click.option("--gpus-per-worker", type=float, help="--ray: GPUs per actor (default 1 where the cluster has GPUs).")
@click.option("--cpus-per-worker", type=float,
              help="--ray: CPU-only actors with this many cores each (their servers get as many --threads).")
@click.option("--model-path-on-nodes",
              help="--ray: where the nodes hold the GGUF (default: the same path); $VARIABLES expand on each node.")
@click.option("--worker-args", multiple=True, help='Per-worker llama-server args, once per worker: --worker-args "--device CUDA0".')
@click.option("--server-args", default="", help="Extra llama-server arguments for every server (quoted).")
@click.option("--llama-server", "llama_server", type=click.Path(path_type=Path), help="llama-server binary.")
@click.option("--ctx-size", type=int, default=2048, show_default=True, help="Context per slot.")
@click.option("--slots", type=int, default=1, show_default=True, help="Parallel requests per server (1 = exact A/B).")
@click.option("--port", type=int, help="Fixed port (one worker only; default: a free port).")
@click.option("--prefetch/--no-prefetch", default=None,
              help="Start the next config's server while the current one scores, each server on half the "
                   "CPU cores (default: off; it pays only where server starts are slow next to scoring).")
@click.option("--switch/--no-switch", "switch", default=True, show_default=True,
              help="Keep each worker's llama-server and switch its layer path between configs where the build "
                   "can (rys setup llama-server --patched); --no-switch starts a fresh server for every config.")
@click.option("--reuse-prefix/--no-reuse-prefix", "reuse_prefix", default=True, show_default=True,
              help="With path switching and probes that only score prompts: the baseline keeps its residual "
                   "stream and each config starts after the layers it shares with the unmodified model.")
@click.option("--tmpdir", type=click.Path(file_okay=False, path_type=Path),
              help="Layer store directory (default: /dev/shm/rys-UID or $RYS_STORE_DIR).")
@click.option("--top-k", type=int, default=5, show_default=True, help="Configs marked and listed.")
@click.option("--report/--no-report", default=True, show_default=True, help="Write heatmaps and summary at the end.")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the report goes (default: <results>-report next to the results file).")
@click.option("--html/--no-html", default=True, show_default=True, help="Also write interactive HTML heatmaps.")
@click.option("--no-progress", is_flag=True, help="No progress bar (logs, CI).")
@click.option("--strategy", type=click.Choice(["grid", "halving", "guided"]), default=None,
              help="grid: every config on every item; halving (the default; grid with --sparse-first): every "
                   "config on a few items, more items only for those still in contention (under 14 items: the "
                   "same as grid); guided: a gradient-boosted surrogate picks what to score.")
@click.option("--halving-eta", type=float, default=4, show_default=True, help="halving: items grow and configs shrink by this factor per rung.")
@click.option("--halving-min-items", type=int, default=4, show_default=True, help="halving: items in the first rung (at least).")
@click.option("--budget", type=float, default=0.2, show_default=True, help="guided: share of the whole grid's compute to spend (layers run per scored item, baseline included).")
@click.option("--beam", type=int, default=0, show_default=True, help="guided: then score two-block paths made of the top N blocks.")
@click.option("--confirm-top", type=int, default=3, show_default=True,
              help="Re-score the top K configs and the baseline on held-out items the search never saw (0 = off).")
@click.option("--confirm-items", type=int, help="Held-out items per probe (default: as many as the search scores).")
@click.option("--holdout", type=float, default=0.25, show_default=True,
              help="For probe files not made by a rys generator: the share of items held out (by a hash of the id) "
                   "before the search starts. Generated sets get fresh items instead.")
def sweep_cmd(model, probe_spec, limit, results, block_sizes, min_block, max_block, stride, start_min, start_max,
              skip_early, skip_late, sparse_first, refine_top, paths_file, repeat, interleave, skip_baseline,
              workers, ray_address, gpus_per_worker, cpus_per_worker, model_path_on_nodes, worker_args, server_args, llama_server, ctx_size, slots, port, prefetch, switch, reuse_prefix, tmpdir, top_k,
              report, report_dir, html, no_progress, strategy, halving_eta, halving_min_items, budget, beam,
              confirm_top, confirm_items, holdout):
    """Measure layer paths of MODEL (a GGUF path or demo alias) on probes, resumably.

    \b
    rys sweep smollm2 --probe math --limit 16 --block-sizes "2 3 4" --stride 2
    rys sweep model.gguf --probe math --ray            # one llama-server per GPU of a Ray cluster
    """
    from rys.models import resolve_model
    from rys.sweep.claim import ResultsLock

    params = {k: v for k, v in locals().items() if k not in ("resolve_model", "ResultsLock")}
    model_path = resolve_model(model)
    params["results"] = results = results or Path("results") / f"{model_path.stem}.sweep.jsonl"
    _check_ray_options(ray_address, {"--gpus-per-worker": gpus_per_worker, "--cpus-per-worker": cpus_per_worker,
                                     "--model-path-on-nodes": model_path_on_nodes}, worker_args, port, prefetch)
    with ResultsLock(results):  # before any server starts: one sweep per results file
        _sweep(model_path=model_path, **params)


def _check_ray_options(ray_address, ray_options: dict, worker_args, port, prefetch) -> None:
    if ray_address is None:
        given = [name for name, value in ray_options.items() if value is not None]
        if given:
            raise SweepError(f"{given[0]} is a Ray option", f"add --ray (or leave {given[0]} out)")
        return
    for name, bad in (("--worker-args", bool(worker_args)), ("--port", port is not None), ("--prefetch", bool(prefetch))):
        if bad:
            raise SweepError(f"{name} runs workers in this process; --ray places them with Ray",
                             f"leave {name} out (each Ray worker gets its own GPU and port)")


def _sweep(model, probe_spec, limit, results, block_sizes, min_block, max_block, stride, start_min, start_max,
           skip_early, skip_late, sparse_first, refine_top, paths_file, repeat, interleave, skip_baseline,
           workers, ray_address, gpus_per_worker, cpus_per_worker, model_path_on_nodes, worker_args, server_args,
           llama_server, ctx_size, slots, port, prefetch, switch, reuse_prefix, tmpdir, top_k,
           report, report_dir, html, no_progress, strategy, halving_eta, halving_min_items, budget, beam,
           confirm_top, confirm_items, holdout, model_path):
    from rys.gguf import LayerStore
    from rys.gguf.check import refuse_sweep
    from rys.gguf.provenance import file_sha256
    from rys.gguf.source import open_source
    from rys.llama.locate import find_llama_server
    from rys.server import ServerConfig
    from rys.sweep import confirm
    from rys.sweep.report import write_report
    from rys.sweep.results import ResultStore
    from rys.sweep.runner import SweepJob, run_sparse_first
    from rys.sweep.space import PairSpace, check_space, read_paths_file
    from rys.sweep.strategy import Search, get_strategy
    from rys.sweep.threads import can_start_ahead, shared_cpu_threads

    refuse_sweep(model_path)  # an architecture no path can be right for stops here, with the reason
    binary = find_llama_server(llama_server)
    if confirm_top < 0:
        raise SweepError(f"--confirm-top must be 0 or more, got {confirm_top}", "use --confirm-top 3, or 0 to skip it")
    # halving: the grid's best in its top 3 at 0.17 of its compute, and the same confirmed winner, on the
    # real Qwen grid of benchmarks/bench_strategy.py (README, Strategies)
    strategy = strategy or ("grid" if sparse_first else "halving")
    if sparse_first and strategy != "grid":
        raise SweepError(f"--sparse-first is a grid refinement; --strategy {strategy} chooses configs itself",
                         "leave out --sparse-first or use --strategy grid")
    # the held-out items are fixed here, before the search sees any item
    held = confirm.plan(_probes(probe_spec), limit, confirm_items, holdout, enabled=confirm_top > 0)
    probes = held.search
    for note in held.notes:
        click.echo(f"note: {note}", err=True)
    max_workers = workers
    workers = 1 if workers is None else workers
    if worker_args and len(worker_args) != workers:
        if workers != 1:
            raise SweepError(f"--workers {workers} but --worker-args given {len(worker_args)} times",
                             "give --worker-args once per worker, or leave --workers out")
        workers = len(worker_args)
    if workers < 1:
        raise SweepError(f"--workers must be at least 1, got {workers}", "use --workers 1")
    if port is not None and workers > 1:
        raise SweepError("--port fixes one port but there are several workers", "leave --port out")
    if port is not None and prefetch:
        raise SweepError("--port fixes one port, but --prefetch runs two servers at once", "leave --port out")
    # Off unless asked: measured on an idle 2-core CPU, two servers on half the cores each scored so much
    # slower that hiding the starts gained nothing (1.02x vs 1.28x without; docs/sweep.md, Speed).
    prefetch = bool(prefetch)
    if prefetch and not can_start_ahead(binary, shlex.split(server_args), model_path):
        click.echo("note: --prefetch with a GPU or little free RAM: two servers must fit at once", err=True)
    extra_args = shlex.split(server_args)
    if prefetch:
        extra_args += shared_cpu_threads(extra_args, [shlex.split(a) for a in worker_args], workers)
    n_layers = open_source(model_path).n_layers
    job = SweepJob(
        model=model_path, model_sha256=file_sha256(model_path), n_layers=n_layers, probes=probes,
        results=ResultStore(results),
        server=ServerConfig(binary=binary, ctx_size=ctx_size, slots=slots, extra_args=extra_args,
                            port=port, log_dir=results.parent / f"{results.stem}-logs"),
        worker_args=[tuple(shlex.split(a)) for a in worker_args] or [()] * workers,
        store=LayerStore(root=tmpdir), progress=not no_progress, top_k=top_k, log=click.echo, prefetch=prefetch,
        switch_paths=None if switch else False, reuse_prefix=None if reuse_prefix else False)
    click.echo(f"model {model_path.name}: {n_layers} layers; probes "
               + ", ".join(f"{p.name} ({len(p.items)} items)" for p in probes) + f"; results {results}")
    if paths_file:
        candidates = read_paths_file(paths_file, n_layers)
    else:
        space = PairSpace(n_layers, block_sizes=_ints(block_sizes, "--block-sizes"), min_block=min_block,
                          max_block=max_block, stride=stride, start_min=start_min, start_max=start_max,
                          skip_early=skip_early, skip_late=skip_late, times=repeat, interleaved=interleave)
        check_space(space)
        candidates = space.configs()
    if ray_address is not None:
        from rys.sweep.ray_pool import RayPool

        job.pool = RayPool(job, ray_address, gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker,
                           model_path_on_nodes=model_path_on_nodes, max_workers=max_workers, store_root=tmpdir,
                           log=click.echo)
        click.echo(f"Ray: {len(job.pool.actors)} workers on {len(job.pool.seen)} node(s)")
    else:
        from rys.sweep.runner import ThreadPool

        job.pool = ThreadPool(job)  # held for the whole search: servers outlive a guided search's batches
    try:
        if sparse_first and not paths_file:
            stats = run_sparse_first(job, space, refine_top, skip_baseline)
        else:
            search = Search(job, candidates, skip_baseline)
            # halving carries at least the configs the confirmation will re-score through to all items
            options = {"eta": halving_eta, "min_items": halving_min_items, "keep": max(confirm_top, 3),
                       "budget": budget, "beam": beam}
            get_strategy(strategy)(search, options)
            stats = search.stats
        confirmed = confirm.run_confirmation(job, held.held_out, confirm_top)
        if confirmed is not None:
            stats.add(confirmed)
    finally:
        job.pool.close()  # every worker, and with it every server (Ray: on every node)
    try:
        Path(job.server.log_dir).rmdir()  # only failed configs keep a llama-server log: drop it when none did
    except OSError:
        pass  # not empty, or never made
    click.echo(f"\n{stats.scored} configs scored (the baseline counts as one), {stats.skipped} already in {results}, "
               f"{stats.failed} failed"
               + (f" (see {job.results.failures})" if stats.failed else ""))
    if report and job.results.rows():
        done = write_report(results, report_dir, top_k=top_k, html=html)
        click.echo(done.summary)
        click.echo("\nwrote " + ", ".join(str(f) for f in done.files))


@click.command("report")
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder (default <results>-report).")
@click.option("--top-k", type=int, default=5, show_default=True)
@click.option("--html/--no-html", default=True, show_default=True)
@click.option("--annotate", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A `rys map` report.json: add layer-label bands to the heatmaps and list the labelled "
                   "layers each top config duplicates.")
def report_cmd(results, out, top_k, html, annotate):
    """Rebuild heatmaps, rankings, Pareto front and summary from a results file (nothing is rerun)."""
    from rys.sweep.report import write_report

    if annotate:
        from rys.neuro.annotate import load_map, write_annotated

        load_map(annotate)  # a wrong file fails before any report file is rewritten
    done = write_report(results, out, top_k=top_k, html=html)
    click.echo(done.summary)
    files = list(done.files)
    if annotate:
        text, more = write_annotated(results, annotate, files[-1].parent, top_k=top_k, html=html)
        click.echo("\n" + text)
        files += more
    click.echo("\nwrote " + ", ".join(str(f) for f in files))


@click.command("export")
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--config", "which", default="best", show_default=True,
              help="best (the best config confirmed on held-out items), search-best (the search's top, "
                   "unconfirmed), i,j (a RYS block) or a layer path like 0..9,5..29.")
@click.option("--format", "fmt", type=click.Choice(["path", "yaml", "gguf"]), default="path", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Output file (yaml, gguf).")
@click.option("--model", help="Source GGUF for --format gguf (default: the model the results were measured on).")
@click.option("--hf-model", default="MODEL", show_default=True, help="The HF model name written into the mergekit YAML.")
@click.option("--force", is_flag=True, help="Let the rewriter override its architecture safety checks.")
def export_cmd(results, which, fmt, out, model, hf_model, force):
    """Export one config of a sweep: its layer path, a mergekit passthrough YAML or a standalone GGUF."""
    from rys import paths as layer_paths
    from rys.models import resolve_model
    from rys.sweep.export import choose, export_gguf, mergekit_yaml
    from rys.sweep.results import current_rows, read_rows

    rows = current_rows(read_rows(results))
    path = choose(rows, which)
    if fmt == "path":
        click.echo(layer_paths.format_path(path))
        return
    if fmt == "yaml":
        text = mergekit_yaml(path, hf_model)
        if out:
            out.write_text(text)
            click.echo(f"wrote {out}")
        else:
            click.echo(text, nl=False)
        return
    source_spec = model or (rows[0].provenance.get("model") if rows else None)
    if not source_spec:
        raise SweepError("the results do not say which model they measured", "pass --model PATH")
    if not out:
        raise SweepError("--format gguf needs --out FILE.gguf", "add --out rys-best.gguf")
    written = export_gguf(resolve_model(source_spec), path, out, force=force)
    click.echo(f"wrote {written} ({len(path)} layers: {layer_paths.format_path(path)})")


def register(cli: click.Group) -> None:
    cli.add_command(sweep_cmd)
    cli.add_command(report_cmd)
    cli.add_command(export_cmd)
