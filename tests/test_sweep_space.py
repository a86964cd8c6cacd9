"""Config spaces: hand-counted (i, j) sets, ordering for layer reuse, paths files, refinement."""

import pytest

from rys.sweep import SweepError
from rys.sweep.space import (
    Config,
    PairSpace,
    baseline,
    block_config,
    check_space,
    order_for_reuse,
    read_paths_file,
    refine_around,
)


def test_all_pairs_of_a_4_layer_model():
    # every 0 <= i < j <= 4: 4 + 3 + 2 + 1 = 10 blocks
    pairs = PairSpace(4).pairs()
    assert sorted(pairs) == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]


def test_block_sizes_stride_and_start_range():
    space = PairSpace(10, block_sizes=(2, 3), stride=2, start_min=1, start_max=6)
    assert space.pairs() == [(1, 3), (3, 5), (5, 7), (1, 4), (3, 6), (5, 8)]


def test_min_max_block_and_skip_early_late():
    space = PairSpace(8, min_block=2, max_block=3, skip_early=2, skip_late=2)
    # i >= 2 and j <= 6
    assert space.pairs() == [(2, 4), (3, 5), (4, 6), (2, 5), (3, 6)]


def test_block_config_paths():
    c = block_config(2, 4, 6)
    assert c.path == (0, 1, 2, 3, 2, 3, 4, 5) and c.label == "(2,4)" and c.key == "0..3,2..5"
    assert block_config(2, 4, 6, times=3).path == (0, 1, 2, 3, 2, 3, 2, 3, 4, 5)
    assert block_config(2, 4, 6, times=2, interleaved=True).path == (0, 1, 2, 2, 3, 3, 4, 5)
    assert baseline(6).path == tuple(range(6)) and baseline(6).is_baseline and baseline(6).label == "baseline"


def test_bad_spaces_are_refused_with_a_hint():
    with pytest.raises(SweepError, match="stride"):
        check_space(PairSpace(10, stride=0))
    with pytest.raises(SweepError, match="start-max"):
        check_space(PairSpace(10, start_min=5, start_max=2))
    with pytest.raises(SweepError, match="block sizes"):
        check_space(PairSpace(10, block_sizes=(11,)))
    with pytest.raises(SweepError, match="empty") as err:
        check_space(PairSpace(10, block_sizes=(5,), skip_early=4, skip_late=4))
    assert err.value.hint


def test_refine_fills_the_stride_gaps_around_the_top():
    space = PairSpace(12, block_sizes=(3,), stride=4)
    assert space.pairs() == [(0, 3), (4, 7), (8, 11)]
    refined = refine_around(space, [(4, 7)], radius=3)
    assert [(c.i, c.j) for c in refined] == [(1, 4), (2, 5), (3, 6), (4, 7), (5, 8), (6, 9), (7, 10)]


def test_order_groups_by_block_length_baseline_first_and_dedups():
    n = 8
    configs = [block_config(0, 3, n), block_config(1, 2, n), Config((0, 0, 1)), baseline(n),
               block_config(3, 4, n), block_config(1, 2, n)]
    ordered = order_for_reuse(configs)
    assert [c.label for c in ordered] == ["baseline", "(1,2)", "(3,4)", "(0,3)", "0,0,1"]


def test_paths_file(tmp_path):
    f = tmp_path / "paths.txt"
    f.write_text("# two configs\n0..5,3..9\n\n0..9  # baseline\n")
    configs = read_paths_file(f, 10)
    assert [c.key for c in configs] == ["0..5,3..9", "0..9"]
    assert configs[0].i is None
    f.write_text("0..5\n0..12\n")
    with pytest.raises(SweepError, match=r"paths.txt:2"):
        read_paths_file(f, 10)
    with pytest.raises(SweepError, match="cannot read"):
        read_paths_file(tmp_path / "missing.txt", 10)


def test_order_for_switching_runs_the_longest_path_first():
    from rys.sweep.space import order_for_switching

    configs = [block_config(0, 1, 10), block_config(2, 5, 10), baseline(10), block_config(4, 6, 10),
               block_config(1, 3, 10)]
    ordered = order_for_switching(configs)
    assert ordered[0].is_baseline
    assert [c.label for c in ordered[1:]] == ["(2,5)", "(1,3)", "(4,6)", "(0,1)"]  # 13, 12, 12, 11 layers


def test_under_a_partial_offload_each_fresh_server_is_followed_by_the_paths_that_fit_it():
    from rys.llama.runtime import offload_sides
    from rys.sweep.space import Config, order_for_switching

    side = offload_sides(("-ngl", "4"), 10)  # llama.cpp: layers 10 + 1 - 4 = 7.. on the GPU
    assert [side(layer) for layer in range(10)] == [0] * 7 + [1] * 3
    a, b, c, e = block_config(4, 8, 10), block_config(2, 4, 10), block_config(5, 7, 10), block_config(8, 10, 10)
    d = Config((0, 1, 2, 4, 5, 6, 7, 8, 9))  # skip layer 3
    # sides: a 0000000 1 000 111 (14), b and c 000000000 111 (12), e 0000000 11111 (12), d 000000 111 (9)
    ordered = order_for_switching([d, e, a, c, b, baseline(10)], side)
    assert ordered[0].is_baseline
    # a fits nothing after it; c's sides equal b's (both run 0..6 on the CPU at positions 0..8); e and d differ
    assert [x.label for x in ordered[1:]] == [a.label, b.label, c.label, e.label, d.label]
    assert order_for_switching([d, e, a, c, b], None)[0] == a  # one device: longest first, as before


def test_offload_sides_only_for_a_partial_offload_rys_can_read():
    from rys.llama.runtime import offload_sides

    assert offload_sides((), 30) is None  # the build's default: every layer that fits
    assert offload_sides(("-ngl", "99"), 30) is None and offload_sides(("-ngl", "31"), 30) is None
    assert offload_sides(("-ngl", "0"), 30) is None and offload_sides(("--n-gpu-layers", "all"), 30) is None
    assert offload_sides(("-ngl", "10", "-ts", "1,1"), 30) is None  # several devices: the user's own split
    side = offload_sides(("--gpu-layers=30",), 30)
    assert side(0) == 0 and side(1) == 1  # 30 of 31 offloadable (29 layers + the output): layer 0 stays
