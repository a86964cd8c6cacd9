#!/usr/bin/env python3
"""llm-circuit-finder's sweep.py flags, run by `rys sweep` (faster, resumable, with heatmaps).

    python sweep.py --model model.gguf --llama-server ./llama-server --block-sizes 3 4 5 --stride 2 \
        --server-args -ngl 99 -t 8

Defaults are theirs (8-layer blocks, stride 4, starts 4 .. layers - 8 - 4, probes math and eq), so a
command line that worked there measures the same configs here. As there, --server-args takes the rest
of the command line. Other flags are passed on to `rys sweep` unchanged (put them before --server-args,
e.g. --probe math-logprob --limit 16). The port is a free one unless --port is given. --ray [ADDRESS]
runs the workers on a Ray cluster, one llama-server per GPU (`rys sweep --ray`, docs/sweep.md).
"""

from __future__ import annotations

import argparse
import shlex
import sys

# llm-circuit-finder's defaults (their generate_sweep_configs and argparse)
BLOCK_SIZES = [8]
STRIDE = 4
START_MIN = 4
LATE_MARGIN = 4  # their start-max default: n_layers - max(block sizes) - 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Any other `rys sweep` option (e.g. --limit 16, --ctx-size 4096, --workers 2) is passed on; "
               "put it before --server-args. See `rys sweep --help`.")
    parser.add_argument("--model", required=True, help="GGUF file or rys demo alias")
    parser.add_argument("--llama-server", help="llama-server binary (default: the one rys finds)")
    parser.add_argument("--tmpdir", help="where the layer store keeps its files")
    parser.add_argument("--results", help="results JSONL (rerun to resume)")
    parser.add_argument("--block-sizes", type=int, nargs="+", default=BLOCK_SIZES, help="block lengths, e.g. 3 4 5")
    parser.add_argument("--stride", type=int, default=STRIDE)
    parser.add_argument("--start-min", type=int, default=START_MIN)
    parser.add_argument("--start-max", type=int, help="default: layers - max(block sizes) - 4")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--port", type=int)
    parser.add_argument("--ray", nargs="?", const="auto",
                        help="workers as Ray actors, one per GPU of the cluster: auto (default), HOST:PORT or local")
    parser.add_argument("--server-args", nargs=argparse.REMAINDER, default=[],
                        help="extra llama-server arguments: everything after this flag")
    parser.add_argument("--probe", default="math,eq", help="rys probe sets (default: math,eq as llm-circuit-finder)")
    return parser


def _server_args(values: list[str]) -> str:
    if len(values) == 1:
        return values[0]  # one quoted string, rys style: "-ngl 99 -t 8"
    return shlex.join(values)


def translate(argv: list[str], n_layers: int | None = None) -> list[str]:
    """llm-circuit-finder's command line -> the `rys sweep` one. `n_layers` fills in their start-max default."""
    known, rest = _parser().parse_known_args(argv)
    start_max = known.start_max
    if start_max is None and n_layers is not None:
        start_max = n_layers - max(known.block_sizes) - LATE_MARGIN
    out = ["sweep", known.model, "--probe", known.probe]
    for flag in ("llama_server", "tmpdir", "results", "stride", "start_min", "port", "ray"):
        value = getattr(known, flag)
        if value is not None:
            out += [f"--{flag.replace('_', '-')}", str(value)]
    if start_max is not None:
        out += ["--start-max", str(start_max)]
    out += ["--block-sizes", " ".join(str(b) for b in known.block_sizes)]
    if known.server_args:
        out += ["--server-args", _server_args(known.server_args)]
    if known.skip_baseline:
        out.append("--skip-baseline")
    return out + rest


def _n_layers(argv: list[str]) -> int | None:
    """The model's layer count, or None to let `rys sweep` report what is wrong with the model."""
    from rys.errors import RysError
    from rys.gguf.source import open_source
    from rys.models import resolve_model

    known, _ = _parser().parse_known_args(argv)
    try:
        return open_source(resolve_model(known.model)).n_layers
    except (RysError, OSError):
        return None


if __name__ == "__main__":
    from rys.cli import main

    args = sys.argv[1:]
    main(translate(args, _n_layers(args)), prog_name="sweep.py")
