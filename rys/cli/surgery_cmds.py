"""`rys build`, `rys inspect`, `rys path`: layer paths and the GGUF files that run them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from rys import paths
from rys.errors import RysError


def path_options(fn):
    """The ways to name a layer path; exactly one is used."""
    options = [
        click.option("--path", "-p", "path_text", default=None, help='Explicit path, e.g. "0..14,12..14,15..29".'),
        click.option("--duplicate", nargs=2, type=int, default=None, metavar="I J",
                     help="RYS config: layers 0..J-1 then I..N-1 (block I..J-1 runs twice)."),
        click.option("--repeat", nargs=3, type=int, default=None, metavar="I J TIMES",
                     help="Block I..J-1 run TIMES times in a row."),
        click.option("--interleave", nargs=3, type=int, default=None, metavar="I J TIMES",
                     help="Each layer of I..J-1 run TIMES times in place."),
        click.option("--skip", "skip_text", default=None, help='Layers to leave out, e.g. "3,7..9".'),
        click.option("--truncate", type=int, default=None, metavar="K", help="Only layers 0..K-1."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def path_from_options(n_layers: int, path_text=None, duplicate=None, repeat=None, interleave=None,
                      skip_text=None, truncate=None) -> list[int]:
    given = {name: value for name, value in (("--path", path_text), ("--duplicate", duplicate),
                                             ("--repeat", repeat), ("--interleave", interleave),
                                             ("--skip", skip_text), ("--truncate", truncate)) if value is not None}
    if len(given) > 1:
        raise paths.PathError(f"give one layer path, not {len(given)} ({', '.join(given)})",
                              "use exactly one of --path, --duplicate, --repeat, --interleave, --skip, --truncate")
    if not given:
        return list(range(n_layers))  # the identity path
    if path_text is not None:
        return paths.parse_path(path_text, n_layers)
    if duplicate is not None:
        return paths.duplicate(*duplicate, n_layers)
    if repeat is not None:
        return paths.repeat(*repeat, n_layers)
    if interleave is not None:
        return paths.interleave(*interleave, n_layers)
    if skip_text is not None:
        return paths.skip(paths.parse_path(skip_text, n_layers), n_layers)
    return paths.truncate(truncate, n_layers)


@click.command()
@click.argument("model")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path), required=False)
@path_options
@click.option("--force", is_flag=True, help="Build a path rys knows is wrong for this architecture (recorded).")
@click.option("--runtime", is_flag=True,
              help="Write nothing: print the llama-server command that runs the path on the unchanged file "
                   "(needs a server built with: rys setup llama-server --patched).")
@click.option("--llama-server", "llama_server", default=None,
              help="With --runtime: the patched llama-server [default: the found server if patched, else "
                   "the patched build in the rys cache].")
def build(model, out, force, runtime, llama_server, **path_spec) -> None:
    """Write MODEL run along a layer path as one self-contained GGUF at OUT (identity if no path given)."""
    from rys.gguf import build_single, model_info
    from rys.models import resolve_model

    src = resolve_model(model)
    path = path_from_options(model_info(src).n_layers, **path_spec)
    if runtime:
        _print_runtime_command(src, path, out, llama_server)
        return
    if out is None:
        raise RysError("missing OUT: where to write the GGUF",
                       "give an output file, e.g. rys build smollm2 dup.gguf --duplicate 10 16, "
                       "or --runtime to run the path without writing a file")
    started = time.monotonic()
    build_single(src, out, path, force=force)
    click.echo(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(path)} layers: {paths.format_path(path)}) "
               f"in {time.monotonic() - started:.1f} s")


def _print_runtime_command(src: Path, path: list[int], out, llama_server) -> None:
    import shlex

    from rys.llama.locate import find_llama_server
    from rys.llama.runtime import find_patched_server, supports_runtime_paths
    from rys.serve_path import runtime_command

    if out is not None:
        raise RysError("--runtime writes no file, but an OUT was given", f"drop {out}, or drop --runtime")
    if llama_server is not None:
        binary = find_llama_server(llama_server)
    else:
        try:
            found = find_llama_server()
        except RysError:
            found = None
        # the found server when it is patched; else the patched build, wherever rys keeps it
        binary = found if found is not None and supports_runtime_paths(found) else find_patched_server()
    cmd = runtime_command(binary, src, path)
    # -c: llama-server's default is the training context, with a KV cache slot per executed layer
    click.echo(shlex.join(cmd + ["-c", "4096"]))
    click.echo(f"# {len(path)} executed layers ({paths.format_path(path)}) on the unchanged {src.name}; "
               "no file written", err=True)


@click.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def inspect(model, as_json) -> None:
    """Architecture, layers, per-layer arrays, sliding-window layers, tensor sizes, rys provenance."""
    from rys.gguf import format_info, model_info
    from rys.models import resolve_model

    info = model_info(resolve_model(model))
    click.echo(json.dumps(info.to_dict(), indent=1) if as_json else format_info(info))


@click.command("path")
@click.argument("text", required=False)
@path_options
@click.option("--n-layers", "-n", type=int, default=None, help="Layers of the model (or give --model).")
@click.option("--model", "-m", default=None, help="Model whose layer count to use (alias or path).")
@click.option("--json", "as_json", is_flag=True, help="Print the path as a JSON list.")
def path_cmd(text, n_layers, model, as_json, **path_spec) -> None:
    """Print a layer path in its shortest form, e.g. `rys path --duplicate 3 7 -n 30`."""
    if model is not None:
        from rys.gguf import model_info
        from rys.models import resolve_model

        n_layers = model_info(resolve_model(model)).n_layers
    if text is not None:
        if path_spec["path_text"] is not None:
            raise paths.PathError("give the path once, as an argument or with --path", "drop one of them")
        path_spec["path_text"] = text
    if n_layers is None and path_spec["path_text"] is None and path_spec["truncate"] is None:
        raise RysError("this path needs the model's layer count", "pass -n N or --model MODEL")
    if n_layers is None:
        path = (paths.parse_path(path_spec["path_text"]) if path_spec["path_text"] is not None
                else paths.truncate(path_spec["truncate"]))
    else:
        path = path_from_options(n_layers, **path_spec)
    click.echo(json.dumps(path) if as_json else paths.format_path(path))


def register(cli: click.Group) -> None:
    cli.add_command(build)
    cli.add_command(inspect)
    cli.add_command(path_cmd)
