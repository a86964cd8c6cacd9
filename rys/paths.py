"""Layer paths: the list of source layer indices a model executes, in order.

Text form (llm-circuit-finder's): comma-separated items, each a single index or an inclusive range `a..b`;
whitespace is ignored. "0..14,12,13,14,15..39" runs layers 12-14 twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rys.errors import RysError

MAX_LAYERS = 512  # llama.cpp's LLAMA_MAX_LAYERS: a longer path cannot load

_ITEM = re.compile(r"^(\d+)(?:\.\.(\d+))?$")


class PathError(RysError):
    pass


def _range_hint(n_layers: int | None) -> str:
    if n_layers is None:
        return "layer indices are whole numbers >= 0; ranges are inclusive, e.g. 0..14,12..14,15..39"
    return f"valid layers are 0..{n_layers - 1}; ranges are inclusive, e.g. 0..{n_layers - 1}"


def parse_path(text: str, n_layers: int | None = None) -> list[int]:
    """'0..2,1,3' -> [0, 1, 2, 1, 3]; checked against n_layers when given."""
    compact = re.sub(r"\s+", "", text or "")
    if not compact:
        raise PathError("empty layer path", _range_hint(n_layers))
    path: list[int] = []
    for item in compact.split(","):
        match = _ITEM.match(item)
        if not match:
            raise PathError(f"malformed layer path item {item!r} in {text!r}",
                            "each item is an index like 7 or an inclusive range like 3..9")
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        if end < start:
            raise PathError(f"reversed range {item!r} in layer path (start {start} > end {end})",
                            f"write it as {end}..{start}; to run layers backwards list them one by one")
        if n_layers is not None and end >= n_layers:
            raise PathError(f"layer path item {item!r} is out of range: the model has no layer {end}",
                            _range_hint(n_layers))
        if end - start + 1 + len(path) > MAX_LAYERS:
            raise PathError(f"layer path is longer than {MAX_LAYERS} layers (at item {item!r})",
                            f"llama.cpp runs at most {MAX_LAYERS} layers; shorten the path")
        path.extend(range(start, end + 1))
    validate(path, n_layers)
    return path


def validate(path: Sequence[int], n_layers: int | None = None) -> list[int]:
    """The path as a list of ints, or a PathError naming the first bad entry."""
    path = [int(i) for i in path]
    if not path:
        raise PathError("empty layer path", _range_hint(n_layers))
    if len(path) > MAX_LAYERS:
        raise PathError(f"layer path has {len(path)} layers, more than {MAX_LAYERS}",
                        f"llama.cpp runs at most {MAX_LAYERS} layers; shorten the path")
    for pos, layer in enumerate(path):
        if layer < 0 or (n_layers is not None and layer >= n_layers):
            raise PathError(f"layer {layer} at path position {pos} is out of range", _range_hint(n_layers))
    return path


def format_path(path: Iterable[int]) -> str:
    """Shortest text form: runs of 3+ consecutive ascending layers become `a..b`."""
    path = list(path)
    items: list[str] = []
    i = 0
    while i < len(path):
        j = i
        while j + 1 < len(path) and path[j + 1] == path[j] + 1:
            j += 1
        if j - i >= 2:
            items.append(f"{path[i]}..{path[j]}")
        else:
            items.extend(str(x) for x in path[i:j + 1])
        i = j + 1
    return ",".join(items)


def _check_block(i: int, j: int, n_layers: int) -> None:
    if not 0 <= i < j <= n_layers:
        raise PathError(f"block ({i}, {j}) is not a valid layer block for a {n_layers}-layer model",
                        f"need 0 <= i < j <= {n_layers}; layers i..j-1 form the block (j exclusive)")


def duplicate(i: int, j: int, n_layers: int) -> list[int]:
    """RYS config (i, j): layers 0..j-1, then i..N-1, so the block i..j-1 runs twice."""
    _check_block(i, j, n_layers)
    return validate(list(range(j)) + list(range(i, n_layers)), n_layers)


def repeat(i: int, j: int, times: int, n_layers: int) -> list[int]:
    """Block i..j-1 (j exclusive) run `times` times in a row; repeat(i, j, 2, N) == duplicate(i, j, N)."""
    _check_block(i, j, n_layers)
    if times < 1:
        raise PathError(f"repeat count {times} is less than 1", "run a block at least once (1 = baseline)")
    block = list(range(i, j))
    return validate(list(range(i)) + block * times + list(range(j, n_layers)), n_layers)


def interleave(i: int, j: int, times: int, n_layers: int) -> list[int]:
    """Each layer of block i..j-1 run `times` times in place: i,i,i+1,i+1,... (multi-pass per layer)."""
    _check_block(i, j, n_layers)
    if times < 1:
        raise PathError(f"interleave count {times} is less than 1", "run each layer at least once")
    inner = [layer for layer in range(i, j) for _ in range(times)]
    return validate(list(range(i)) + inner + list(range(j, n_layers)), n_layers)


def skip(layers: Iterable[int], n_layers: int) -> list[int]:
    """All layers except `layers` (ablation: a skipped layer acts as the identity)."""
    drop = set(validate(list(layers), n_layers))
    if len(drop) == n_layers:
        raise PathError("skipping every layer leaves an empty path", "keep at least one layer")
    return [layer for layer in range(n_layers) if layer not in drop]


def truncate(k: int, n_layers: int | None = None) -> list[int]:
    """Layers 0..k-1: the model stopped after k layers (the logit lens reads its output)."""
    if k < 1 or (n_layers is not None and k > n_layers):
        upper = "" if n_layers is None else f" and at most {n_layers}"
        raise PathError(f"cannot truncate to {k} layers", f"keep at least 1 layer{upper}")
    return validate(list(range(k)), n_layers)
