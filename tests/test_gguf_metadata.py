"""Metadata remap and the architecture table: pure functions, hand-computed expectations."""

from gguf import GGUFValueType as T

from rys.gguf.arch_rules import ARCH_RULES, IndexPattern, rule_for
from rys.gguf.metadata import layer_map, path_problems, remap_metadata, source_swa_flags
from rys.gguf.source import MetaValue
from rys.paths import duplicate


def u32(v):
    return MetaValue(T.UINT32, v)


def arr(values, item=T.UINT32):
    return MetaValue(T.ARRAY, list(values), item)


def test_layer_map_keeps_nextn_blocks_last():
    assert layer_map([0, 1, 1, 2], 3, 1) == [0, 1, 1, 2, 3]
    assert layer_map([2, 0], 3) == [2, 0]


def test_per_layer_arrays_follow_the_path():
    meta = {
        "llama.block_count": u32(3),
        "llama.feed_forward_length": arr([10, 20, 30]),
        "llama.attention.head_count": u32(9),
        "llama.rope.dimension_sections": arr([1, 2, 3]),  # not per-layer although its length is 3
        "tokenizer.ggml.token_type": arr([1, 1, 1], T.INT32),  # not under the arch: untouched
        "split.count": MetaValue(T.UINT16, 2),
    }
    changes = remap_metadata(meta, "llama", rule_for("llama"), 3, 3, [0, 2, 2, 1])
    assert changes == {
        "llama.block_count": u32(4),
        "llama.feed_forward_length": arr([10, 30, 30, 20]),
        "split.count": None,
    }


def test_nextn_blocks_stay_last_in_arrays_and_count():
    meta = {"qwen2.block_count": u32(4), "qwen2.nextn_predict_layers": u32(1),
            "qwen2.attention.head_count_kv": arr([1, 2, 3, 4])}
    changes = remap_metadata(meta, "qwen2", rule_for("qwen2"), 4, 3, [0, 0, 1, 2])
    assert changes["qwen2.block_count"] == u32(5)
    assert changes["qwen2.attention.head_count_kv"] == arr([1, 1, 2, 3, 4])


def test_gemma3_duplicated_layers_keep_their_sliding_window_flag():
    # gemma3: layer il is SWA unless il % 6 == 5. Source of 8 layers: T T T T T F T T.
    meta = {"gemma3.block_count": u32(8)}
    path = duplicate(4, 7, 8)  # 0..6, 4..7
    assert path == [0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7]
    changes = remap_metadata(meta, "gemma3", rule_for("gemma3"), 8, 8, path)
    swa = changes["gemma3.attention.sliding_window_pattern"]
    assert swa.item_type == T.BOOL
    # position 8 runs source layer 5 (global); by index it would have been SWA, position 11 absent
    assert swa.value == [True, True, True, True, True, False, True, True, False, True, True]


def test_stored_scalar_pattern_overrides_the_default_period():
    meta = {"gemma2.block_count": u32(6), "gemma2.attention.sliding_window_pattern": u32(3)}
    assert source_swa_flags(rule_for("gemma2"), "gemma2", meta, 6, 6) == [True, True, False, True, True, False]
    meta["gemma2.attention.sliding_window_pattern"] = u32(0)  # 0 = every layer SWA
    assert source_swa_flags(rule_for("gemma2"), "gemma2", meta, 6, 6) == [True] * 6


def test_stored_array_pattern_is_remapped():
    meta = {"cohere2.block_count": u32(4),
            "cohere2.attention.sliding_window_pattern": arr([False, True, True, False], T.BOOL)}
    changes = remap_metadata(meta, "cohere2", rule_for("cohere2"), 4, 4, [3, 1, 0])
    assert changes["cohere2.attention.sliding_window_pattern"].value == [False, True, False]


def test_index_patterns():
    assert IndexPattern(4, "last").flags(8) == [False, False, False, True] * 2
    assert IndexPattern(4, "all_but_first").flags(5) == [False, True, True, True, False]
    assert IndexPattern("step", "last").flags(3, 0) == [False] * 3


def test_problems_for_index_derived_behaviour():
    meta = {}
    ok, bad = duplicate(4, 8, 12), duplicate(4, 7, 12)
    assert path_problems(rule_for("smollm3"), "smollm3", meta, 12, ok) == []
    [problem] = path_problems(rule_for("smollm3"), "smollm3", meta, 12, bad)
    assert "NoPE" in problem and "position 7" in problem
    meta = {"llama4.interleave_moe_layer_step": u32(2)}
    assert path_problems(rule_for("llama4"), "llama4", meta, 12, ok) == []
    assert len(path_problems(rule_for("llama4"), "llama4", meta, 12, duplicate(5, 7, 12))) == 1  # MoE step 2 kept
    assert len(path_problems(rule_for("llama4"), "llama4", meta, 12, duplicate(5, 8, 12))) == 2


def test_problems_dense_prefix_and_layer_counts():
    meta = {"deepseek2.leading_dense_block_count": u32(1)}
    assert path_problems(rule_for("deepseek2"), "deepseek2", meta, 30, [0, 1, 1] + list(range(2, 30))) == []
    assert "dense" in path_problems(rule_for("deepseek2"), "deepseek2", meta, 30, [0, 0] + list(range(1, 30)))[0]
    assert "27B" in path_problems(rule_for("gemma3"), "gemma3", {}, 62, duplicate(10, 12, 62))[0]
    assert path_problems(rule_for("gemma3"), "gemma3", {}, 26, duplicate(10, 12, 26)) == []


def test_unknown_and_unsupported_architectures_allow_only_identity():
    assert path_problems(None, "mystery", {}, 4, [0, 1, 2, 3]) == []
    assert "not in rys's table" in path_problems(None, "mystery", {}, 4, [0, 1, 1, 2, 3])[0]
    assert "gemma3n" in path_problems(rule_for("gemma3n"), "gemma3n", {}, 4, [0, 1, 2])[0]


def test_table_is_data():
    assert {"llama", "qwen2", "gemma2", "gemma3", "cohere2", "olmo2", "gpt-oss", "llama4", "smollm3",
            "gemma3n", "exaone4", "deepseek2"} <= set(ARCH_RULES)


def test_hybrid_recurrent_layers_written_explicitly():
    # qwen35: layer il is recurrent unless (il + 1) % full_attention_interval == 0 (default 4); the nextn
    # block is never recurrent. Source: 4 layers + 1 nextn -> T T T F | F.
    meta = {"qwen35.block_count": u32(5), "qwen35.nextn_predict_layers": u32(1)}
    changes = remap_metadata(meta, "qwen35", rule_for("qwen35"), 5, 4, [0, 3, 3, 1])
    assert changes["qwen35.attention.recurrent_layers"] == arr([True, False, False, True, False], T.BOOL)
    assert changes["qwen35.block_count"] == u32(5)  # 4 path positions + the nextn block
    meta["qwen35.full_attention_interval"] = u32(2)  # -> T F T F | F
    changes = remap_metadata(meta, "qwen35", rule_for("qwen35"), 5, 4, [2, 1])
    assert changes["qwen35.attention.recurrent_layers"].value == [True, False, False]
    assert "qwen35.attention.sliding_window_pattern" not in changes
