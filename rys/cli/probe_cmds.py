"""`rys probes` (list, show, generate) and `rys probe MODEL --probe P`: probe sets and one probe run."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import click


@click.group(invoke_without_command=True)
@click.pass_context
def probes(ctx: click.Context) -> None:
    """Probe sets: list the built-in ones (no subcommand), show one, or generate one."""
    if ctx.invoked_subcommand is not None:
        return
    from rys.probes import list_probes, load_probe

    click.echo(f"{'name':<14} {'items':>5}  {'scorer':<13} {'chat':<5} categories")
    for name in list_probes():
        probe = load_probe(name)
        click.echo(f"{name:<14} {len(probe.items):>5}  {probe.scorer:<13} {'yes' if probe.chat else 'no':<5} "
                   f"{', '.join(probe.categories)}")


@probes.command("show")
@click.argument("name")
@click.option("-n", "count", type=int, default=3, show_default=True, help="How many items to print.")
def probes_show(name: str, count: int) -> None:
    """Print a probe set's header and its first items (NAME: built-in name or a probe file)."""
    from rys.probes import get_scorer, load_probe

    probe = load_probe(name)
    scorer = get_scorer(probe.scorer)
    click.echo(f"{probe.name}: {probe.description}")
    click.echo(f"scorer {probe.scorer}, chat {'on' if probe.chat else 'off'}, {len(probe.items)} items, "
               f"answer prefix {probe.answer_prefix!r}, sha256 {probe.sha256[:16]}")
    click.echo(f"source {probe.source}")
    click.echo(f"chance {_num(scorer.chance(probe.items))}, constant answer {_constant(scorer.constant(probe.items))}")
    for item in probe.items[:count]:
        click.echo(f"\n--- {item.id} [{item.category}]  answer: {json.dumps(item.answer)}")
        click.echo(item.prompt)


@probes.command("generate")
@click.argument("name")
@click.option("--n", "count", type=int, default=None, help="Number of items (default: the built-in size).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file (default: print to stdout).")
def probes_generate(name: str, count: int | None, seed: int, out: Path | None) -> None:
    """Generate a built-in probe set deterministically (same --n and --seed, same file)."""
    from rys.probes.generators import generate, render, write
    from rys.probes.sets import parse_probe

    data = generate(name, count, seed)
    parse_probe(data)  # what we write must load
    if out is None:
        click.echo(render(data), nl=False)
    else:
        write(data, out)
        click.echo(f"wrote {len(data['items'])} items to {out}", err=True)


@click.command()
@click.argument("model")
@click.option("--probe", "probe_name", required=True, help="Built-in probe name or a probe file.")
@click.option("--path", "layer_path", default=None, help='Layer path to run, e.g. "0..14,10..29".')
@click.option("--limit", type=int, default=None, help="Score only the first N items (a quick look).")
@click.option("--json", "as_json", is_flag=True, help="Print the full result (with per-item records) as JSON.")
@click.option("--llama-server", "llama_server", default=None, help="llama-server binary.")
@click.option("--server-args", default="", help='Extra llama-server arguments, e.g. "-t 2".')
@click.option("--ctx-size", type=int, default=1024, show_default=True, help="Context per slot.")
@click.option("--slots", type=int, default=1, show_default=True, help="Parallel requests (llama-server -np).")
def probe(model, probe_name, layer_path, limit, as_json, llama_server, server_args, ctx_size, slots) -> None:
    """Run one probe on MODEL (a path or alias), or on MODEL run along a layer path."""
    from rys.llama.locate import find_llama_server
    from rys.models import resolve_model
    from rys.probes import load_probe, open_target, run_probe
    from rys.server import ServerConfig

    probe_set = load_probe(probe_name)
    if limit is not None:
        probe_set = dataclasses.replace(probe_set, items=probe_set.items[:max(1, limit)])
    model_path = resolve_model(model)
    path = None
    if layer_path is not None:
        from rys.gguf import model_info
        from rys.paths import parse_path

        path = parse_path(layer_path, model_info(model_path).n_layers)
    config = ServerConfig(binary=find_llama_server(llama_server), ctx_size=ctx_size, slots=slots,
                          extra_args=tuple(shlex.split(server_args)))
    with open_target(model_path, config, path=path) as server:
        result = run_probe(server.client, probe_set)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=1))
        return
    click.echo(f"{result.probe} on {model_path.name}{f' path {layer_path}' if layer_path else ''}: "
               f"{result.n} items, {result.seconds:.1f} s")
    click.echo(f"score    {result.score:.4f}  95% CI [{result.ci_low:.4f}, {result.ci_high:.4f}]")
    click.echo(f"accuracy {result.accuracy:.4f}")
    click.echo(f"coverage {_num(result.coverage)}")
    click.echo(f"chance   {_num(result.chance)}")
    click.echo(f"constant {_constant((result.constant, result.constant_answer) if result.constant is not None else None)}")
    click.echo(f"flags    {', '.join(result.flags) if result.flags else 'none'}")
    for name, cat in result.categories.items():
        click.echo(f"  {name:<18} n={cat['n']:<3} score {cat['score']:.4f}  accuracy {cat['accuracy']:.4f}")


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _constant(constant) -> str:
    return "n/a" if constant is None else f"{constant[0]:.4f} ({constant[1]})"


def register(cli: click.Group) -> None:
    cli.add_command(probes)
    cli.add_command(probe)
