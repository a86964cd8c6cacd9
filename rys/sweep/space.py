"""Config spaces: which layer paths a sweep measures, and in which order.

A config is a layer path. RYS configs (i, j) run layers 0..j-1 and then i..N-1, so the block i..j-1
runs twice (`times` = 2; more passes with --repeat). Explicit paths from a file have no (i, j).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rys import paths as layer_paths
from rys.sweep import SweepError


@dataclass(frozen=True)
class Config:
    path: tuple[int, ...]
    i: int | None = None  # the repeated block i..j-1 (j exclusive), when the config is one
    j: int | None = None
    times: int = 1  # how often the block runs: 1 = baseline, 2 = RYS duplication, 3+ = --repeat
    interleaved: bool = False  # each block layer repeated in place (i,i,i+1,i+1,...) instead of the block

    @property
    def key(self) -> str:
        """The path string: what the results store and resume match on."""
        return layer_paths.format_path(list(self.path))

    @property
    def label(self) -> str:
        if self.i is None:
            return self.key
        if self.times == 1:
            return "baseline"
        suffix = "" if self.times == 2 else f"x{self.times}"
        return f"({self.i},{self.j}){suffix}{'~' if self.interleaved else ''}"

    @property
    def is_baseline(self) -> bool:
        return self.times == 1 and self.i is not None


def baseline(n_layers: int) -> Config:
    return Config(tuple(range(n_layers)), i=0, j=0, times=1)


def block_config(i: int, j: int, n_layers: int, times: int = 2, interleaved: bool = False) -> Config:
    if interleaved:
        path = layer_paths.interleave(i, j, times, n_layers)
    else:
        path = layer_paths.repeat(i, j, times, n_layers)
    return Config(tuple(path), i=i, j=j, times=times, interleaved=interleaved)


@dataclass(frozen=True)
class PairSpace:
    """All (i, j) with the given limits. Block length b = j - i; i steps by `stride` from start_min."""

    n_layers: int
    block_sizes: tuple[int, ...] | None = None  # explicit sizes; else min_block..max_block
    min_block: int = 1
    max_block: int | None = None
    stride: int = 1
    start_min: int = 0
    start_max: int | None = None
    skip_early: int = 0  # the block never touches the first `skip_early` layers
    skip_late: int = 0  # ... nor the last `skip_late`
    times: int = 2
    interleaved: bool = False

    def sizes(self) -> list[int]:
        if self.block_sizes:
            return sorted(set(self.block_sizes))
        top = self.n_layers if self.max_block is None else self.max_block
        return list(range(self.min_block, top + 1))

    def allows(self, i: int, j: int) -> bool:
        """(i, j) within every limit except the stride (refinement fills in the stride gaps)."""
        last_start = self.n_layers - 1 if self.start_max is None else self.start_max
        return (j - i in self.sizes() and max(self.start_min, self.skip_early) <= i <= last_start
                and j <= self.n_layers - self.skip_late)

    def pairs(self, stride: int | None = None) -> list[tuple[int, int]]:
        step = self.stride if stride is None else stride
        return [(i, i + b) for b in self.sizes() for i in range(self.start_min, self.n_layers, step)
                if self.allows(i, i + b)]

    def configs(self, stride: int | None = None) -> list[Config]:
        return [block_config(i, j, self.n_layers, self.times, self.interleaved) for i, j in self.pairs(stride)]


def check_space(space: PairSpace) -> None:
    """Refuse limits that make no sense, naming the flag to change."""
    n = space.n_layers
    if space.stride < 1:
        raise SweepError(f"--stride must be at least 1, got {space.stride}", "use --stride 1 for every start layer")
    if space.times < 2:
        raise SweepError(f"--repeat must be at least 2 (the block runs that many times), got {space.times}",
                         "use --repeat 2 for plain RYS duplication")
    bad = [b for b in space.sizes() if not 1 <= b <= n]
    if bad or space.min_block < 1:
        raise SweepError(f"block sizes must be between 1 and {n} (the model's layer count), got {bad or space.min_block}",
                         f"pick sizes in 1..{n}")
    if space.start_max is not None and space.start_max < space.start_min:
        raise SweepError(f"--start-max {space.start_max} is below --start-min {space.start_min}",
                         "swap them or widen the range")
    if not space.pairs():
        raise SweepError(f"the config space is empty for a {n}-layer model "
                         f"(block sizes {space.sizes()[:8]}, starts {space.start_min}..{space.start_max}, "
                         f"skip early {space.skip_early}, late {space.skip_late})",
                         "widen --start-min/--start-max, lower --skip-early/--skip-late or use smaller blocks")


def refine_around(space: PairSpace, top: list[tuple[int, int]], radius: int) -> list[Config]:
    """Every stride-1 config within `radius` of a top (i, j) in both i and j, inside the space's limits.

    Sparse-first: a coarse pass at stride S leaves gaps of S-1 starts; radius S-1 fills exactly those.
    """
    near = [(i, j) for i, j in space.pairs(stride=1)
            if any(abs(i - ti) <= radius and abs(j - tj) <= radius for ti, tj in top)]
    return [block_config(i, j, space.n_layers, space.times, space.interleaved) for i, j in near]


def read_paths_file(file: Path, n_layers: int) -> list[Config]:
    """One layer path per line ("0..9,5..29"); blank lines and '#' comments are ignored."""
    try:
        lines = Path(file).read_text().splitlines()
    except OSError as err:
        raise SweepError(f"cannot read the paths file {file}: {err.strerror}", "pass an existing text file") from err
    configs = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            path = layer_paths.parse_path(text, n_layers)
        except layer_paths.PathError as err:
            raise SweepError(f"{file}:{number}: {err.message}", err.hint) from err
        configs.append(Config(tuple(path)))
    if not configs:
        raise SweepError(f"the paths file {file} holds no layer paths", "write one path per line, e.g. 0..9,5..29")
    return configs


def order_for_reuse(configs: list[Config]) -> list[Config]:
    """Baseline first, then blocks grouped by length so the layer store reuses prefix and suffix files.

    Duplicates (the same path from two spaces) are dropped; explicit paths keep their file order.
    """
    seen: set[tuple[int, ...]] = set()
    unique = [c for c in configs if not (c.path in seen or seen.add(c.path))]

    def rank(item: tuple[int, Config]):
        index, c = item
        if c.is_baseline:
            return (0,)
        if c.i is not None:
            return (1, c.times, c.interleaved, c.j - c.i, c.i)
        return (2, index)

    return [c for _, c in sorted(enumerate(unique), key=rank)]


def order_for_switching(configs: list[Config], side_of=None) -> list[Config]:
    """order_for_reuse, then longest path first. A server that switches paths in place keeps the KV cache
    it made for its first path, so every later (shorter or equal) path of a uniform model fits in it.

    Under a partial offload (side_of: layer -> device side, rys.llama.runtime.offload_sides) a path fits
    only where each position keeps the side it had in the start path: its sequence of sides must begin
    the start path's. Then the longest path left starts a server and every path that fits it follows, so
    each refusal (a fresh server) starts a run of paths that all switch."""
    ordered = sorted(order_for_reuse(configs), key=lambda c: (not c.is_baseline, -len(c.path)))
    if side_of is None:
        return ordered
    sides = {c.path: tuple(side_of(layer) for layer in c.path) for c in ordered}
    out = [c for c in ordered if c.is_baseline]
    left = [c for c in ordered if not c.is_baseline]
    while left:
        head, left = left[0], left[1:]
        start = sides[head.path]
        fits = [c for c in left if sides[c.path] == start[:len(c.path)]]
        out += [head, *fits]
        left = [c for c in left if c not in fits]
    return out
