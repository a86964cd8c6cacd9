"""Neuroanatomy commands: lens, ablate, circuit, map."""

from __future__ import annotations

from pathlib import Path

import click

from rys.neuro import NeuroError


def _common(fn):
    """MODEL plus the options every neuro command shares (servers, output folder)."""
    options = [
        click.argument("model"),
        click.option("--llama-server", "llama_server", default=None, help="llama-server binary to use."),
        click.option("--server-args", default="", help='Extra llama-server arguments, e.g. "--threads 2".'),
        click.option("--ctx-size", default=512, show_default=True, help="Context per server (tokens)."),
        click.option("--workers", default=None, type=int,
                     help="Servers in flight at once, one loading while another answers "
                          "[default: 2 on a CPU-only llama-server, 1 with a GPU]."),
        click.option("--out", type=click.Path(path_type=Path), default=None,
                     help="Output folder [default: rys-<command>-<model>]."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _setup(command: str, model: str, llama_server, server_args: str, ctx_size: int, out: Path | None,
           workers: int | None = None):
    """The model file, a ServerConfig, the output folder, the number of servers in flight, and the meta
    every JSON file of the command records (how its layer paths run)."""
    import shlex

    from rys.llama.locate import find_llama_server
    from rys.models import resolve_model
    from rys.neuro.pipeline import share_cores
    from rys.serve_path import model_method
    from rys.server import ServerConfig

    path = resolve_model(model)
    binary = find_llama_server(llama_server)
    meta = {"path_method": model_method(binary, path)}
    click.echo(f"layer paths: {meta['path_method']} ({binary})", err=True)
    args = shlex.split(server_args)
    if workers is None:
        from rys.sweep.runner import can_start_ahead

        # With a GPU a second server may not fit, or land on another device and score differently.
        workers = 2 if can_start_ahead(binary, args, path) else 1
    if workers < 1:
        raise NeuroError(f"--workers must be at least 1, got {workers}", "use --workers 1 or 2")
    args = share_cores(args, workers)
    out = out or Path(f"rys-{command}-{path.stem}")
    out.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(binary=binary, ctx_size=ctx_size, extra_args=tuple(args), log_dir=out / "server-logs")
    return path, config, out, workers, meta


def _progress(skipped, outcome: str) -> None:
    what = "baseline" if not skipped else "skip " + ",".join(map(str, skipped))
    click.echo(f"  {what}: {outcome}", err=True)


def _layer_progress(done: int, total: int) -> None:
    click.echo(f"  lens: {done}/{total} layers", err=True)


def _files(files) -> None:
    click.echo("wrote: " + ", ".join(str(f) for f in files))


def _lens_prompts(prompt, answer, probe, limit):
    from rys.neuro.lens import LensPrompt, probe_prompts
    from rys.probes import load_probe

    if bool(prompt) == bool(probe):
        raise NeuroError("give either --prompt (with --answer) or --probe", 'e.g. --prompt "The capital of '
                         'France is" --answer Paris, or --probe reasoning')
    return [LensPrompt("prompt", prompt, answer)] if prompt else probe_prompts(load_probe(probe), limit)


@click.command()
@_common
@click.option("--prompt", default=None, help="Text the model continues.")
@click.option("--answer", default=None, help="Gold answer: the lens follows its first token.")
@click.option("--probe", default=None, help="Lens the items of a probe set instead of one prompt.")
@click.option("--limit", default=8, show_default=True, help="Probe items to lens.")
@click.option("--control-prompt", default=None, help="Control prompt (e.g. Germany for France).")
@click.option("--control-answer", default=None, help="The control prompt's own answer.")
@click.option("--top-k", default=5, show_default=True, help="Top tokens to report per layer.")
@click.option("--layers", default=None, help="Only these layers, e.g. 0..9,20 (the last is always read).")
@click.option("--hidden", is_flag=True, help="Also read hidden states: block influence, cosine to final.")
@click.option("--save-hidden", is_flag=True, help="Save hidden states as .npy (implies --hidden).")
@click.option("--tuned", "tuned", type=click.Path(path_type=Path), default=None,
              help="A tuned lens of this model (rys calibrate): report it next to the logit lens (implies --hidden).")
def lens(model, llama_server, server_args, ctx_size, workers, out, prompt, answer, probe, limit,
         control_prompt, control_answer, top_k, layers, hidden, save_hidden, tuned):
    """Logit lens: the next-token distribution after every layer, via truncated models."""
    from rys.neuro.lens import LensPrompt, run_lens
    from rys.neuro.report import write_lens
    from rys.paths import parse_path

    path, config, out, workers, meta = _setup("lens", model, llama_server, server_args, ctx_size, out, workers)
    prompts = _lens_prompts(prompt, answer, probe, limit)
    control = None
    if control_prompt:
        if not control_answer:
            raise NeuroError("--control-prompt needs --control-answer", "e.g. --control-answer Berlin")
        control = LensPrompt("control", control_prompt, control_answer)
    result = run_lens(path, prompts, config, control=control, with_hidden=hidden, top_k=top_k,
                      layers=parse_path(layers) if layers else None, workers=workers,
                      save_hidden=out if save_hidden else None, on_layer=_layer_progress, tuned=tuned)
    first = result.prompts[0]
    states = first.block_influence is not None
    click.echo(f"{'layer':>5} {'entropy':>8} {'KL bits':>8} {'p(ans)':>8} {'rank':>6}"
               + (f" {'infl':>6} {'cos':>6}" if states else "")
               + (f" {'tunedKL':>8} {'t.p(ans)':>8} {'t.rank':>6}" if first.tuned else "") + "  top tokens")
    for k, s in enumerate(first.layers):
        tops = "  ".join(f"{result.pieces.get(i, '')!r} {p:.2f}" for i, p in s.top[:3])
        prob = "" if s.answer_prob is None else f"{s.answer_prob:.4f}"
        extra = ""
        if states:  # block influence is unknown where the layer before was not lensed
            influence = first.block_influence[k]
            extra = f" {'' if influence is None else f'{influence:.3f}':>6} {first.cosine_to_final[k]:>6.3f}"
        if first.tuned:
            t = first.tuned[k]
            extra += f" {t.kl_bits:>8.3f} {'' if t.answer_prob is None else f'{t.answer_prob:.4f}':>8} {t.answer_rank or '':>6}"
        click.echo(f"{s.layer:>5} {s.entropy_bits:>8.3f} {s.kl_bits:>8.3f} {prob:>8} {s.answer_rank or '':>6}"
                   f"{extra}  {tops}")
    if states:
        click.echo("infl = block influence 1 - cos(h_in, h_out); cos = cosine to the final layer's state")
    click.echo(f"summary ({first.id}): " + ", ".join(f"{k}={v}" for k, v in first.summary.items()))
    if len(result.prompts) > 1:
        click.echo(f"(the table shows the first of {len(result.prompts)} prompts; lens.csv and lens.json hold all)")
    if result.control is not None and result.control.control_margin:
        margins = " ".join(f"{s.layer}:{m:+.3f}" for s, m in zip(result.control.layers, result.control.control_margin))
        click.echo(f"control margin p({control_answer}) - p({first.answer_piece.strip()}) on the control prompt, by layer: {margins}; "
                   f"positive from layer {result.control.summary.get('control_margin_positive_from')} on")
    if first.tuned:
        click.echo(f"tuned lens {tuned}: tunedKL / t.p(ans) / t.rank at the last token; numpy head check "
                   f"KL {result.head_check_kl_bits:.2e} bits")
    click.echo(f"self-test: KL(last layer || original) = {result.self_test_kl_bits:.2e} bits "
               f"({'passed' if result.self_test_passed else 'FAILED'}); {result.seconds:.1f} s")
    _files(write_lens(result, out, meta))
    if not result.self_test_passed:
        raise NeuroError("the lens self-test failed: the full-depth path does not reproduce the model",
                         "report this with the model's architecture; the layer rewriter may be wrong for it")


@click.command()
@_common
@click.option("--probe", "probes", multiple=True, help="Calibrate on this probe's prompts (repeatable).")
@click.option("--text", "text_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Calibrate on a text file, one prompt per line.")
@click.option("--limit", default=None, type=int, help="Use only the first N items of each probe.")
@click.option("--held-out", default=0.25, show_default=True, help="Share of prompts kept out of the fit.")
@click.option("--steps", default=8, show_default=True, help="Gradient steps on the KL per layer (0: line search only).")
@click.option("--seed", default=0, show_default=True, help="Seed of the prompt split and row subsampling.")
@click.option("--lens", "lens_file", type=click.Path(path_type=Path), default=None,
              help="Tuned lens file to write [default: OUT/tuned_lens.safetensors].")
def calibrate(model, llama_server, server_args, ctx_size, workers, out, probes, text_file, limit, held_out, steps,
              seed, lens_file):
    """Tuned lens: fit one affine translator per layer on hidden states read through llama-server."""
    from rys.neuro.calibrate import calibrate as run_calibrate
    from rys.neuro.calibrate import text_prompts
    from rys.neuro.lens import probe_prompts
    from rys.neuro.report import write_calibration
    from rys.neuro.tuned import save_lens
    from rys.probes import load_probe

    if not probes and text_file is None:
        raise NeuroError("calibrate needs prompts", "pass --probe NAME (repeatable) or --text FILE")
    path, config, out, workers, meta = _setup("calibrate", model, llama_server, server_args, ctx_size, out, workers)
    prompts = [p for name in probes for p in probe_prompts(load_probe(name), limit)]
    prompts += text_prompts(text_file) if text_file else []
    lens, info = run_calibrate(path, prompts, config, held_out=held_out, seed=seed, adam_steps=steps,
                               workers=workers, on_read=lambda d, n: click.echo(f"  states: {d}/{n} layers", err=True),
                               on_fit=lambda d, n: click.echo(f"  fit: {d}/{n} layers", err=True))
    held = info["held_out"]
    click.echo(f"held-out KL to the final distribution ({held['tokens']} tokens of "
               f"{len(info['split']['held_out'])} prompts), bits:")
    click.echo(f"{'layer':>5} {'logit':>8} {'tuned':>8}")
    for layer, a, b in zip(held["layers"], held["logit_kl_bits"], held["tuned_kl_bits"]):
        click.echo(f"{layer:>5} {a:>8.3f} {b:>8.3f}")
    click.echo(f"read {info['read_seconds']:.1f} s, fit {info['fit_seconds']:.1f} s")
    lens_path = save_lens(lens, lens_file or out / "tuned_lens.safetensors")
    _files([lens_path, *write_calibration(info, lens, out, meta)])


def _probe(probe: str, limit: int | None):
    from dataclasses import replace

    from rys.probes import load_probe

    loaded = load_probe(probe)
    if not limit or limit >= len(loaded.items):
        return loaded
    # A different item set is a different run: the journal must not mix it with the full probe's results.
    return replace(loaded, items=loaded.items[:limit], sha256=f"{loaded.sha256}:first-{limit}")


@click.command()
@_common
@click.option("--probe", required=True, help="Probe set (built-in name or file).")
@click.option("--limit", default=None, type=int, help="Score only the first N items.")
@click.option("--block", "block_sizes", default="1", show_default=True,
              help="Block sizes to skip, comma-separated, e.g. 1,2,4.")
@click.option("--layers", default=None, help="Only these layers (block starts), e.g. 10..20.")
def ablate(model, llama_server, server_args, ctx_size, workers, out, probe, limit, block_sizes, layers):
    """Skip each layer (or block) in turn; rank layers by how much the probe score drops."""
    from rys.gguf.source import open_source
    from rys.neuro.ablate import blocks, score_skips
    from rys.neuro.report import write_ablation
    from rys.paths import parse_path

    path, config, out, workers, meta = _setup("ablate", model, llama_server, server_args, ctx_size, out, workers)
    probe_set = _probe(probe, limit)
    n_layers = open_source(path).n_layers
    starts = parse_path(layers, n_layers) if layers else None
    try:
        sizes = [int(b) for b in block_sizes.split(",")]
    except ValueError:
        raise NeuroError(f"--block {block_sizes!r} is not a list of whole numbers", "e.g. --block 1,2,4") from None
    skips = [s for size in sizes for s in blocks(n_layers, size, starts)]
    scores = score_skips(path, probe_set, config, skips, journal=out / "skips.jsonl", workers=workers,
                         on_done=_progress)
    click.echo(f"baseline {scores.baseline.score:.4f} [{scores.baseline.ci_low:.4f}, {scores.baseline.ci_high:.4f}]")
    for row in sorted(scores.rows(), key=lambda r: -r.importance)[:10]:
        click.echo(f"  skip {row.skipped}: importance {row.importance:+.4f} [{row.ci_low:+.4f}, {row.ci_high:+.4f}] "
                   f"p={row.p:.3g} adjusted={row.p_adjusted:.3g}{' significant' if row.significant else ''}")
    click.echo(f"(significant: Benjamini-Hochberg adjusted p < 0.05 over the {len(scores.results)} configs; "
               f"{sum(r.significant for r in scores.rows())} are)")
    for skipped, error in scores.failed.items():
        click.echo(f"  FAILED skip {list(skipped)}: {error}", err=True)
    _files(write_ablation(scores, out, meta))


@click.command()
@_common
@click.option("--probe", required=True, help="Probe set (built-in name or file).")
@click.option("--limit", default=None, type=int, help="Score only the first N items.")
@click.option("--strategy", type=click.Choice(["fast", "thorough", "exhaustive"]), default="fast",
              show_default=True, help="fast: top 6 layers' pairs; thorough: top 12; exhaustive: all pairs.")
@click.option("--layers", default=None, help="Candidate layers only, e.g. 8..16 [default: all].")
def circuit(model, llama_server, server_args, ctx_size, workers, out, probe, limit, strategy, layers):
    """Pairwise layer skips: synergistic, redundant and independent layer pairs."""
    from rys.neuro.circuit import run_circuit
    from rys.neuro.report import write_circuit
    from rys.paths import parse_path

    path, config, out, workers, meta = _setup("circuit", model, llama_server, server_args, ctx_size, out, workers)
    scores, pairs = run_circuit(path, _probe(probe, limit), config, strategy,
                                layers=parse_path(layers) if layers else None, journal=out / "skips.jsonl",
                                workers=workers, on_done=_progress)
    for pair in sorted(pairs, key=lambda p: -abs(p.interaction)):
        click.echo(f"  ({pair.a}, {pair.b}): interaction {pair.interaction:+.4f} {pair.kind} "
                   f"(p={pair.p:.3g}, adjusted {pair.p_adjusted:.3g})")
    _files(write_circuit(scores, pairs, strategy, out, meta))


@click.command(name="map")
@_common
@click.option("--probe", required=True, help="Probe set (built-in name or file).")
@click.option("--limit", default=None, type=int, help="Score only the first N items.")
@click.option("--lens-limit", default=8, show_default=True, help="Probe items to lens (and to read attention on).")
@click.option("--tuned", "tuned", type=click.Path(path_type=Path), default=None,
              help="A tuned lens of this model (rys calibrate), reported next to the logit lens.")
def map_cmd(model, llama_server, server_args, ctx_size, workers, out, probe, limit, lens_limit, tuned):
    """Ablation + logit lens + hidden states + attention entropy in one report with layer labels."""
    from rys.gguf.source import open_source
    from rys.neuro.ablate import score_skips
    from rys.neuro.lens import probe_prompts, run_lens
    from rys.neuro.report import map_data, write_map

    path, config, out, workers, meta = _setup("map", model, llama_server, server_args, ctx_size, out, workers)
    probe_set = _probe(probe, limit)
    read_attention = _attention_readable(config)  # said before the long part, not after it
    n_layers = open_source(path).n_layers
    scores = score_skips(path, probe_set, config, [(layer,) for layer in range(n_layers)],
                         journal=out / "skips.jsonl", workers=workers, on_done=_progress)
    lens_result = run_lens(path, probe_prompts(probe_set, lens_limit), config, with_hidden=True, workers=workers,
                           on_layer=_layer_progress, tuned=tuned)
    attention = None
    if read_attention:
        from rys.neuro.attention import run_attention

        attention = run_attention(path, probe_prompts(probe_set, lens_limit), config)
    data = map_data(scores, lens_result, attention)
    click.echo(f"lens self-test KL {lens_result.self_test_kl_bits:.2e} bits; labels: " +
               " ".join(f"{r['layer']}:{r['label']}" for r in data["layers"]))
    earned = data["significance"]["labelled_by_effect"]
    click.echo(f"labelled by a significant ablation effect (BH over {data['significance']['layers_tested']} layers): "
               + (", ".join(map(str, earned)) if earned else "none; every layer is labelled by its position only"))
    _files(write_map(scores, lens_result, out, meta, attention))


@click.command()
@_common
@click.option("--probe", default=None, help="Probe set whose prompts are read (built-in name or file).")
@click.option("--prompt", default=None, help="One prompt instead of a probe.")
@click.option("--limit", default=8, show_default=True, help="Probe items to read.")
@click.option("--path", "layer_path", default=None, help="A layer path to run instead of the model, e.g. 0..20,15..29.")
def attention(model, llama_server, server_args, ctx_size, workers, out, probe, prompt, limit, layer_path):
    """Per-layer, per-head attention entropy (bits) over a probe's prompts (patched llama-server)."""
    from rys.gguf.source import open_source
    from rys.neuro.attention import run_attention, summary_line
    from rys.neuro.report import write_attention
    from rys.paths import parse_path

    # one server, so no thread share: --workers is accepted (shared options) but has nothing to do here
    path, config, out, _, meta = _setup("attention", model, llama_server, server_args, ctx_size, out, 1)
    prompts = _lens_prompts(prompt, None, probe, limit)
    executed = parse_path(layer_path, open_source(path).n_layers) if layer_path else None
    result = run_attention(path, prompts, config, executed)
    means = result.head_means()
    click.echo(f"{'layer':>6} {'mean':>7} {'min head':>9} {'max head':>9}   (bits; log2 of the prompt length "
               f"bounds a position: {min(result.to_dict()['max_bits']):.2f}-{max(result.to_dict()['max_bits']):.2f})")
    for name, row in zip(result.labels(), means):
        click.echo(f"{name:>6} {row.mean():>7.3f} {row.min():>9.3f} {row.max():>9.3f}")
    click.echo(summary_line(result) + f"; {result.seconds:.1f} s")
    _files(write_attention(result, out, meta))


@click.command(name="cross-probe")
@_common
@click.option("--probe", "probes", multiple=True, required=True, help="Probe set; give two or more.")
@click.option("--limit", default=None, type=int, help="Score only the first N items of each probe.")
def cross_probe(model, llama_server, server_args, ctx_size, workers, out, probes, limit):
    """Single-layer ablation on several probes: shared vs probe-specific layers, profile correlation."""
    from rys.gguf.source import open_source
    from rys.neuro.ablate import score_skips
    from rys.neuro.crossprobe import correlation, shared_and_specific
    from rys.neuro.plots import Chart
    from rys.neuro.report import chart_files, write_json

    if len(probes) < 2:
        raise NeuroError("cross-probe needs at least two probes", "repeat --probe, e.g. --probe math --probe eq")
    path, config, out, workers, meta = _setup("cross-probe", model, llama_server, server_args, ctx_size, out, workers)
    n_layers = open_source(path).n_layers
    profiles, significant = [], []
    for name in probes:
        probe_set = _probe(name, limit)
        scores = score_skips(path, probe_set, config, [(layer,) for layer in range(n_layers)],
                             journal=out / probe_set.name / "skips.jsonl", workers=workers, on_done=_progress)
        importance = scores.importance()
        profiles.append([importance.get(layer, 0.0) for layer in range(n_layers)])
        flags = scores.significant()
        significant.append([flags.get(layer, False) for layer in range(n_layers)])
    names = [_probe(name, 1).name for name in probes]
    corr = correlation(profiles)
    data = {"model": str(path), "probes": names, "importance": dict(zip(names, profiles)), "correlation": corr,
            **shared_and_specific(names, profiles, significant)}
    pairs = [(names[a], names[b], corr[a][b]) for a in range(len(names)) for b in range(a + 1, len(names))]
    click.echo("Pearson r of the importance profiles: " + ", ".join(
        f"{x} ~ {y} {'n/a (a constant profile)' if r is None else f'{r:+.3f}'}" for x, y, r in pairs))
    click.echo(f"important for every probe: {data['shared']}")
    for name, layers in data["specific"].items():
        click.echo(f"  only {name}: {layers}")
    files = [write_json(out / "cross_probe.json", data, meta),
             *chart_files(Chart("heatmap", "Correlation of layer-importance profiles", x=names, y=names, z=corr,
                                xlabel="probe", ylabel="probe", zlabel="Pearson r", diverging=True),
                          out, "cross_probe_correlation"),
             *chart_files(Chart("lines", "Layer importance per probe", x=list(range(n_layers)),
                                series=dict(zip(names, profiles)), xlabel="layer", ylabel="baseline - ablated"),
                          out, "cross_probe_importance")]
    _files(files)


@click.command(name="prompt-repeat")
@_common
@click.option("--probe", required=True, help="Probe set (built-in name or file).")
@click.option("--limit", default=None, type=int, help="Score only the first N items.")
@click.option("--counts", default="1,2,3", show_default=True, help="Prompt repeat counts.")
@click.option("--path", "dup_path", default=None, help="A duplication path to score alongside, e.g. 0..20,15..29.")
@click.option("--sweep", "sweep_results", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Score the best config of this `rys sweep` results file alongside (instead of --path).")
def prompt_repeat(model, llama_server, server_args, ctx_size, workers, out, probe, limit, counts, dup_path,
                  sweep_results):
    """Does repeating the prompt act like repeating layers? Scores per repeat count vs a duplication path."""
    from rys.gguf.source import open_source
    from rys.neuro.prompt_repeat import run_prompt_repeat
    from rys.neuro.report import write_json, write_prompt_repeat_chart
    from rys.paths import parse_path

    if dup_path and sweep_results:
        raise NeuroError("give either --path or --sweep, not both", "--sweep picks the sweep's best config")
    try:
        count_list = [int(c) for c in counts.split(",")]
    except ValueError:
        raise NeuroError(f"--counts {counts!r} is not a list of whole numbers", "e.g. --counts 1,2,3") from None
    path, config, out, workers, meta = _setup("prompt-repeat", model, llama_server, server_args, ctx_size, out, workers)
    n_layers = open_source(path).n_layers
    best = parse_path(dup_path, n_layers) if dup_path else None
    if sweep_results:
        from rys import paths as layer_paths
        from rys.sweep.export import choose
        from rys.sweep.results import current_rows, read_rows

        best = choose(current_rows(read_rows(sweep_results)), "best", n_layers)
        click.echo(f"best config of {sweep_results}: {layer_paths.format_path(best)}")
    data = run_prompt_repeat(path, _probe(probe, limit), config, count_list, best)
    for row in data["repeats"]:
        click.echo(f"  prompt x{row['count']}: score {row['score']:.4f}  delta {row['delta']:+.4f} "
                   f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] p={row['p']:.3g}")
    if data["path"]:
        row = data["path"]
        click.echo(f"  path {row['path']}: score {row['score']:.4f}  delta {row['delta']:+.4f} "
                   f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] p={row['p']:.3g}")
    _files([write_json(out / "prompt_repeat.json", data, meta), *write_prompt_repeat_chart(data, out)])


@click.command(name="compare-maps")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("rys-compare-maps"), show_default=True)
def compare_maps(reports, out):
    """Layer profiles of several `rys map` reports (report.json) on relative depth."""
    from rys.neuro.report import write_compare_maps

    _files(write_compare_maps(list(reports), out))


def register(cli: click.Group) -> None:
    for command in (lens, calibrate, attention, ablate, circuit, map_cmd, cross_probe, prompt_repeat, compare_maps):
        cli.add_command(command)


def _attention_readable(config) -> bool:
    """Whether rys map can read attention with this server; says why not where it cannot."""
    from rys.llama.features import has_feature
    from rys.neuro import NeuroError
    from rys.neuro.attention import ATTENTION, attention_config

    if not has_feature(config.binary, ATTENTION):
        click.echo("attention entropy: skipped (this llama-server has no attention readout; "
                   "rys setup llama-server --patched builds one)", err=True)
        return False
    try:
        attention_config(config)
    except NeuroError as err:
        click.echo(f"attention entropy: skipped ({err.message})\n  fix: {err.hint}", err=True)
        return False
    return True
