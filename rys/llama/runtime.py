"""Runtime layer paths: a llama-server built with vendor/llama.cpp/layer-path.patch runs any layer path of
an unchanged GGUF, chosen by one `--override-kv rys.layer_path=str:...` argument (docs/runtime.md).

A stock llama-server silently ignores an unknown override key and runs the plain model, so support is
detected from the binary itself (the marker the patch adds to `--help`), never assumed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rys.errors import RysError, ServerNotFound
from rys.llama.features import LAYER_PATHS, has_feature
from rys.llama.locate import BACKENDS, build_dir
from rys.paths import format_path, validate

PATH_KEY = "rys.layer_path"
MARKER = LAYER_PATHS  # printed by the patched server's --help; bump with incompatible patch changes
# llama.cpp stores a string override in char[128]; longer values are rejected by its argument parser.
MAX_VALUE_CHARS = 127
ENV_VAR = "RYS_PATCHED_LLAMA_SERVER"

METHOD_RUNTIME = "runtime"  # the path ran on a patched server, original file unchanged
METHOD_REWRITE = "rewrite"  # the path was materialized as a GGUF (single file or split layout)


class RuntimePathError(RysError):
    pass


def supports_runtime_paths(binary: str | Path) -> bool:
    """True when `binary --help` carries the patch's marker."""
    return has_feature(binary, MARKER)


def path_method(binary: str | Path) -> str:
    """How rys runs a layer path with this server: METHOD_RUNTIME or METHOD_REWRITE."""
    return METHOD_RUNTIME if supports_runtime_paths(binary) else METHOD_REWRITE


def runtime_path_args(path: Sequence[int], binary: str | Path | None = None) -> list[str]:
    """The llama-server arguments that run `path` on the original GGUF. With `binary`, first check that it
    supports runtime paths (a stock server would ignore them and run the plain model)."""
    path = validate(path)
    # ';' between items: llama-server splits --override-kv values on ',' (rys.paths' separator)
    value = format_path(path).replace(",", ";")
    if len(value) > MAX_VALUE_CHARS:
        raise RuntimePathError(
            f"layer path is {len(value)} characters in its shortest form, more than the {MAX_VALUE_CHARS} "
            "llama.cpp accepts in a metadata override",
            "use fewer, longer ranges, or run this path from a rewritten GGUF (the default without --runtime)")
    if binary is not None and not supports_runtime_paths(binary):
        raise RuntimePathError(
            f"{binary} does not support runtime layer paths (it would silently run the plain model)",
            "run: rys setup llama-server --patched   (or use the rewriter, the default)")
    return ["--override-kv", f"{PATH_KEY}=str:{value}"]


def _candidates() -> list[tuple[str, Path]]:
    env = os.environ.get(ENV_VAR)
    found = [(f"${ENV_VAR}", Path(env).expanduser())] if env else []
    found += [(f"the rys cache ({backend})", build_dir(backend, patched=True) / "bin" / "llama-server")
              for backend in BACKENDS]
    return found


def find_patched_server() -> Path:
    """$RYS_PATCHED_LLAMA_SERVER, then the patched builds in the rys cache (cpu first); only a binary that
    really supports runtime paths is returned."""
    env = os.environ.get(ENV_VAR)
    for source, path in _candidates():
        if not path.is_file():
            if source.startswith("$"):
                raise ServerNotFound(f"${ENV_VAR} points to {path}, which does not exist",
                                     "unset it, or point it to a llama-server built with rys's patch")
            continue
        if supports_runtime_paths(path):
            return path
        if env and source.startswith("$"):
            raise ServerNotFound(f"${ENV_VAR} points to {path}, which does not support runtime layer paths",
                                 "point it to a llama-server built with vendor/llama.cpp/*.patch")
    raise ServerNotFound("no llama-server with runtime layer paths found "
                         f"(looked at ${ENV_VAR} and {build_dir('cpu', patched=True)})",
                         "run: rys setup llama-server --patched")


def offload_sides(extra_args, n_layers: int):
    """Under a partial offload (-ngl K with 0 < K <= n_layers), which side each physical layer's weights
    are on: llama.cpp puts layers n_layers + 1 - K .. n_layers - 1 (and the output) on the GPU, and the
    patched server runs an aliased layer where its weights are. Returns layer -> 0 (CPU) or 1 (GPU), or
    None when every layer is on one side or the layout is the user's own (tensor overrides or splits):
    then no path is refused a switch for its devices. Only an ordering hint: the server itself checks
    every switch."""
    from rys.llama.features import flag_value

    given = next((v for v in (flag_value(extra_args, f) for f in ("-ngl", "--gpu-layers", "--n-gpu-layers"))
                  if v is not None), None)
    if given is None or not given.lstrip("-").isdigit():
        return None
    if any(flag_value(extra_args, f) is not None for f in ("-ot", "--override-tensor", "-ts", "--tensor-split")):
        return None
    ngl = int(given)
    if ngl <= 0 or ngl >= n_layers + 1:
        return None
    first_gpu = n_layers + 1 - ngl
    return lambda layer: int(layer >= first_gpu)
