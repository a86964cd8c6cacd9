"""The tiny generated models tests/test_arch_paths.py verifies, one per accepted architecture, with the
keys that give each its per-layer differences (dense prefix, MoE interleave, recurrent / attention layers)."""

from __future__ import annotations

from rys.gguf.fixtures import TinySpec

DENSE_LEAD = (("leading_dense_block_count", 1),)
# olmoe and dots1 size K and V (and olmoe's K norm) by n_head in their loaders: no grouped-query attention
NO_GQA = 4
# multi-head latent attention as converted GGUFs store it: one KV head (MQA) of 16 latent + 8 rotary dims,
# decompressed per head into 16 non-rotary + 8 rotary key dims and 16 value dims
MLA = (("attention.key_length", 24), ("attention.value_length", 16), ("rope.dimension_count", 8),
       ("attention.q_lora_rank", 32), ("attention.kv_lora_rank", 16), ("attention.key_length_mla", 24),
       ("attention.value_length_mla", 16))

SPECS: dict[str, TinySpec] = {spec.arch: spec for spec in (
    # the architectures issue 17 names
    TinySpec("qwen3moe"), TinySpec("qwen2moe"), TinySpec("glm4"), TinySpec("glm4moe", keys=DENSE_LEAD),
    TinySpec("command-r"),
    TinySpec("gemma4", keys=(("embedding_length_per_layer_input", 0), ("attention.shared_kv_layers", 0))),
    TinySpec("mistral4", n_head_kv=1, keys=DENSE_LEAD + MLA), TinySpec("phi2"), TinySpec("starcoder2"), TinySpec("olmo"),
    TinySpec("olmoe", n_head_kv=NO_GQA), TinySpec("granitemoe"), TinySpec("nemotron", init_std=0.02), TinySpec("internlm2"), TinySpec("minicpm"),
    TinySpec("deepseek", keys=DENSE_LEAD), TinySpec("falcon"), TinySpec("ernie4_5"),
    TinySpec("ernie4_5-moe", keys=DENSE_LEAD + (("interleave_moe_layer_step", 2),)),
    TinySpec("hunyuan-moe"), TinySpec("seed_oss"), TinySpec("apertus"),
    TinySpec("lfm2", keys=(("attention.head_count_kv", [0, 0, 2, 0, 0, 2]),)),
    TinySpec("bailingmoe"),
    TinySpec("dots1", n_head_kv=NO_GQA, init_std=0.01, keys=DENSE_LEAD + (("expert_gating_func", 2),)),
    TinySpec("qwen3vl"), TinySpec("qwen3vlmoe"),
    # what the runtime patch accepted before, and the index-pattern families
    TinySpec("llama"), TinySpec("qwen2"), TinySpec("qwen3"), TinySpec("gemma2"), TinySpec("gemma3"),
    TinySpec("smollm3", n_layers=8), TinySpec("cohere2"), TinySpec("olmo2"), TinySpec("gpt-oss"),
    TinySpec("exaone4"),
    # gated-delta-net layers (all but every 4th): their fused QKV and gate projections are optional in the
    # loader; key and value heads of 32 dims (1 key head, 4 value heads). 8 layers: attention on 3 and 7, so
    # a skip keeps one (llama.cpp aborts on a hybrid model without attention layers)
    TinySpec("qwen35", n_layers=8, keys=(("ssm.state_size", 32),),
             tensors=tuple((f"blk.{il}.{name}", ne) for il in (0, 1, 2, 4, 5, 6)
                           for name, ne in (("attn_qkv.weight", (64, 192)), ("attn_gate.weight", (64, 128))))),
)}
