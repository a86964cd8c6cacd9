#!/usr/bin/env python3
"""llm-circuit-finder's command line, on rys's rewriter: `layer_path.py MODEL OUT -p PATH [-v]`.

Writes MODEL run along PATH (e.g. "0..14,12,13,14,15..39", inclusive ranges) as one GGUF at OUT, with
per-layer metadata remapped and provenance recorded; see `rys build` for the full command.
"""

from __future__ import annotations

import argparse
import sys
import time

from rys.errors import RysError
from rys.gguf import build_single, model_info
from rys.models import resolve_model
from rys.paths import format_path, parse_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="source GGUF (path or rys alias)")
    parser.add_argument("out", help="output GGUF")
    parser.add_argument("-p", "--path", required=True, help='layer path, e.g. "0..14,12,13,14,15..39"')
    parser.add_argument("-v", "--verbose", action="store_true", help="print what is built")
    parser.add_argument("--force", action="store_true", help="build a path rys knows is wrong (recorded)")
    args = parser.parse_args(argv)
    try:
        src = resolve_model(args.model)
        info = model_info(src)
        path = parse_path(args.path, info.n_layers)
        if args.verbose:
            print(f"{src}: {info.arch}, {info.n_layers} layers -> {len(path)} layers: {format_path(path)}")
        started = time.monotonic()
        build_single(src, args.out, path, force=args.force)
    except RysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.verbose:
        print(f"wrote {args.out} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
