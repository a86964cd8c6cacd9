"""The tiny generated models tests/test_arch_paths.py verifies, one per accepted architecture, with the
keys that give each its per-layer differences (dense prefix, MoE interleave, recurrent / attention layers)."""

from __future__ import annotations

from rys.gguf.fixtures import TinySpec

DENSE_LEAD = (("leading_dense_block_count", 1),)
# olmoe and dots1 size K and V (and olmoe's K norm) by n_head in their loaders: no grouped-query attention
NO_GQA = 4
# multi-head latent attention: a K head of 16 non-rotary + 8 rotary dims over a 16-dim latent
MLA = (("attention.key_length", 24), ("attention.value_length", 16), ("rope.dimension_count", 8),
       ("attention.q_lora_rank", 32), ("attention.kv_lora_rank", 16), ("attention.key_length_mla", 24),
       ("attention.value_length_mla", 16))

SPECS: dict[str, TinySpec] = {spec.arch: spec for spec in (
    # the architectures issue 17 names
    TinySpec("qwen3moe"), TinySpec("qwen2moe"), TinySpec("glm4"), TinySpec("glm4moe", keys=DENSE_LEAD),
    TinySpec("command-r"),
    TinySpec("gemma4", keys=(("embedding_length_per_layer_input", 0), ("attention.shared_kv_layers", 0))),
    TinySpec("mistral4", keys=DENSE_LEAD + MLA), TinySpec("phi2"), TinySpec("starcoder2"), TinySpec("olmo"),
    TinySpec("olmoe", n_head_kv=NO_GQA), TinySpec("granitemoe"), TinySpec("nemotron", init_std=0.02), TinySpec("internlm2"), TinySpec("minicpm"),
    TinySpec("deepseek", keys=DENSE_LEAD), TinySpec("falcon"), TinySpec("ernie4_5"),
    TinySpec("ernie4_5-moe", keys=DENSE_LEAD + (("interleave_moe_layer_step", 2),)),
    TinySpec("hunyuan-moe"), TinySpec("seed_oss"), TinySpec("apertus"),
    TinySpec("lfm2", keys=(("attention.head_count_kv", [0, 0, 2, 0, 0, 2]),)),
    TinySpec("bailingmoe"), TinySpec("dots1", n_head_kv=NO_GQA, keys=DENSE_LEAD), TinySpec("qwen3vl"), TinySpec("qwen3vlmoe"),
    # what the runtime patch accepted before, and the index-pattern families
    TinySpec("llama"), TinySpec("qwen2"), TinySpec("qwen3"), TinySpec("gemma2"), TinySpec("gemma3"),
    TinySpec("smollm3", n_layers=8), TinySpec("cohere2"), TinySpec("olmo2"), TinySpec("gpt-oss"),
    TinySpec("exaone4"), TinySpec("qwen35"),
)}
