"""Prefix-resume planning (rys.sweep.resume): pure functions, hand-computed values."""

from __future__ import annotations

from collections import Counter

from rys import paths as layer_paths
from rys.prefix import choose_layers, layer_uses, reuse_layer, rows_bytes_per_layer, suffix


def test_resume_layer_is_the_last_layer_shared_with_the_unmodified_model():
    assert reuse_layer(layer_paths.duplicate(3, 6, 10), 10) == 5  # 0..5,3..9: starts from layer 5's rows
    assert suffix(layer_paths.duplicate(3, 6, 10), 5) == [3, 4, 5, 6, 7, 8, 9]
    assert reuse_layer([0, 0, 1, 2], 10) == 0
    assert reuse_layer([1, 2, 3], 10) is None  # shares nothing
    assert reuse_layer(list(range(10)), 10) == 8  # never the last layer: its rows are not all kept
    assert reuse_layer([0, 1, 2], 10) == 1  # a truncated path keeps one layer to run
    assert reuse_layer([*range(10), 9], 10) == 8  # 0..9,9 starts from layer 8 and runs 9, 9


def test_layer_uses_and_the_budget_keep_the_most_used_layers():
    paths = [layer_paths.duplicate(i, j, 10) for i, j in ((1, 3), (2, 3), (4, 6), (0, 5))]
    assert layer_uses(paths, 10) == Counter({2: 2, 5: 1, 4: 1})
    uses = Counter({2: 2, 5: 1, 4: 1})
    assert choose_layers(uses, 100, 250) == [2, 4]  # 2 layers fit; ties go to the lower layer
    assert choose_layers(uses, 100, 99) == []
    assert choose_layers(uses, 100, 10_000) == [2, 4, 5]
    # 2 prompts of 10 characters: (5 + 64) tokens each, 4 bytes per value, 8 values per row
    assert rows_bytes_per_layer(["a" * 10, "b" * 10], 8) == 2 * 69 * 8 * 4
