"""--sparse-first: a coarse pass at the space's stride, then stride 1 around its best configs."""

from __future__ import annotations

from rys.sweep.rank import combined_ranking
from rys.sweep.results import Row
from rys.sweep.space import Config, PairSpace, refine_around


def refine_plan(rows: list[Row], space: PairSpace, refine_top: int) -> tuple[list[tuple[int, int]], list[Config]]:
    """The top `refine_top` (i, j) of the space by combined ranking, and the stride-1 configs around them."""
    in_space = set(space.pairs(stride=1))
    rows = [r for r in rows
            if (r.i, r.j) in in_space and r.times == space.times and r.interleaved == space.interleaved]
    top = [(r.i, r.j) for r in combined_ranking(rows)[:refine_top]]
    return top, refine_around(space, top, radius=space.stride - 1) if top else []


def run_sparse_first(job, space: PairSpace, refine_top: int, skip_baseline: bool = False):
    """Coarse pass at the space's stride, then every stride-1 config around the top `refine_top`."""
    from rys.sweep.runner import model_rows, run_configs  # the runner re-exports this module's names

    stats = run_configs(job, space.configs(), skip_baseline)
    if space.stride == 1:
        return stats
    top, configs = refine_plan(model_rows(job), space, refine_top)
    if configs:
        job.log(f"refining around {', '.join(f'({i},{j})' for i, j in top)} at stride 1")
        stats.add(run_configs(job, configs, skip_baseline=True))
    return stats
