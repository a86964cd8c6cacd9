"""The `rys` command. Commands live in one small module per area; each module's register() adds them."""

from __future__ import annotations

import importlib
import sys

import click

from rys import __version__
from rys.errors import RysError

# One module per area, each owning its commands (kept thin: parse options, call the library, print).
_COMMAND_MODULES = (
    "rys.cli.setup_cmds",  # setup, doctor, models
    "rys.cli.surgery_cmds",  # build, inspect, path
    "rys.cli.probe_cmds",  # probes, probe
    "rys.cli.sweep_cmds",  # sweep, report, export
    "rys.cli.neuro_cmds",  # ablate, circuit, lens, map, ...
    "rys.cli.eval_cmds",  # eval, compare
)


class _Group(click.Group):
    """Turns RysError into a two-line message and exit status 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RysError as err:
            click.echo(f"error: {err.message}", err=True)
            if err.hint:
                click.echo(f"  fix: {err.hint}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rys")
def main() -> None:
    """rys: layer-path surgery on GGUF models, measured through llama-server."""


for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(main)
