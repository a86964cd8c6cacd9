"""The one per-architecture table: what a layer path must rewrite or respect, per llama.cpp architecture.

Read off llama.cpp b11434 (src/models/<arch>.cpp, src/llama-model.cpp, src/llama-hparams.cpp). Three
consumers follow it: the rewriter (rys.gguf.metadata, rys.gguf.plan), the choice between the runtime
patch and the rewriter (rys.serve_path), and the runtime patch itself, whose rule data
(`src/rys-arch-rules.h` inside vendor/llama.cpp/layer-path.patch) is generated from this table by
rys.gguf.arch_codegen (a test keeps them equal). Adding an architecture is one entry here.

Generic rules that hold for every architecture live in metadata.py (block_count, every per-layer array
remapped along the path, nextn/MTP blocks kept last, split keys dropped) and in the patch (layers and
every per-layer hparam aliased along the path). An entry says only what differs. An architecture that is
not here is refused (unless forced) with "not in rys's table".

Kinds of per-architecture knowledge, and which method each binds:
- `index_arrays`: per-layer flags llama.cpp derives from the layer index unless the file holds the array
  (sliding-window layers, recurrent layers). The rewriter writes the array, new[p] = flag(path[p]); the
  runtime patch needs nothing (it derives the flags at the physical index, then aliases them).
- `fixed`: behaviour the graph derives from the EXECUTED index, which no key can set (NoPE every 4th
  layer, dense-FFN prefix, MoE every k-th layer). Both methods require every position to keep its source
  layer's flag.
- `count_switches`, `pins`: behaviour llama.cpp chooses from the layer count at load time. The runtime
  patch loads the physical model, so it keeps the right behaviour; a rewritten file changes the count,
  so the rewriter refuses such a path (count_switches) or writes the key that pins the source's value
  (pins).
- `same_length`: the graph uses the executed layer count itself; both methods refuse other lengths.
- `attention_needed`: a hybrid model whose layers are either recurrent or attention: llama.cpp aborts on a
  path without any attention layer (its hybrid memory has no KV layer to index), so both methods refuse it.
- `refuse_when`, `unsupported`, `runtime_unsupported`: no path other than the identity can be right.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

REWRITE = "rewrite"
RUNTIME = "runtime"
BOTH = (REWRITE, RUNTIME)

SWA_KEY = "attention.sliding_window_pattern"
N_LAYERS = "@n_layers"  # a period that is the source model's own layer count


@dataclass(frozen=True)
class IndexPattern:
    """A per-layer property llama.cpp derives from the layer INDEX il.

    `residues`: "last": il % P == P - 1; "all_but_last": il % P < P - 1; "first": il % P == 0;
    "all_but_first": il % P != 0 (llama-hparams.cpp set_swa_pattern, dense_first); "prefix": il < P.
    `period` P is a number, a metadata key (relative to `{arch}.`) that holds it (`default` when the key
    is absent, else 0), or N_LAYERS. `hparam` names the llama_hparams field the runtime patch reads P
    from (None: the number itself)."""

    period: int | str
    residues: str
    when_zero: bool = False  # the flag of every layer when the period is 0
    default: int | None = None
    hparam: str | None = None

    def flags(self, n_layers: int, period: int | None = None) -> list[bool]:
        """Per-layer flags; `period` overrides the default (from the key the file stores it in)."""
        period = self.period if period is None else period
        if not isinstance(period, int) or period <= 0:
            return [self.when_zero] * n_layers
        test = {"last": lambda il: il % period == period - 1,
                "all_but_last": lambda il: il % period < period - 1,
                "first": lambda il: il % period == 0,
                "all_but_first": lambda il: il % period != 0,
                "prefix": lambda il: il < period}[self.residues]
        return [test(il) for il in range(n_layers)]


@dataclass(frozen=True)
class IndexArray:
    """A per-layer flag llama.cpp derives from the index unless `{arch}.<key>` holds a per-layer array.
    The rewriter always writes the array, new[p] = flag(path[p]), so each position keeps its source
    layer's flag. `period_key` (relative to `{arch}.`) is where a file may store the period as a scalar."""

    key: str
    pattern: IndexPattern
    period_key: str


@dataclass(frozen=True)
class Fixed:
    """Index-derived behaviour of the graph that no key can set: every position must keep its source
    layer's flag, under the methods listed."""

    what: str
    pattern: IndexPattern
    methods: tuple[str, ...] = BOTH


@dataclass(frozen=True)
class CountSwitch:
    """Behaviour llama.cpp switches on at some layer counts (at load time): a rewritten file may not move
    the model into or out of them. The runtime patch keeps the physical count's behaviour."""

    what: str
    counts: tuple[int, ...] = ()
    at_least: int | None = None

    def hits(self, n: int) -> bool:
        return n in self.counts or (self.at_least is not None and n >= self.at_least)


@dataclass(frozen=True)
class Pin:
    """A value llama.cpp derives from the layer count when `{arch}.<key>` is absent: a rewritten file
    writes `value(meta, n_layers)` (a (GGUFValueType name, value) pair) so it keeps the source's value."""

    key: str
    value: Callable[[Mapping, int], tuple[str, object]]


@dataclass(frozen=True)
class RefuseWhen:
    """No path but the identity is right when `{arch}.<key>` is a number > 0 (`hparam`: the same test on
    llama_hparams in the runtime patch)."""

    key: str
    reason: str
    hparam: str | None = None


@dataclass(frozen=True)
class ArchRule:
    index_arrays: tuple[IndexArray, ...] = ()
    fixed: tuple[Fixed, ...] = ()
    count_switches: tuple[CountSwitch, ...] = ()
    pins: tuple[Pin, ...] = ()
    same_length: str | None = None
    attention_needed: bool = False
    refuse_when: tuple[RefuseWhen, ...] = ()
    # Set when no path other than the identity can be right (both methods).
    unsupported: str | None = None
    # Set when the runtime patch cannot run a path the rewriter can.
    runtime_unsupported: str | None = None
    # Where the verdict comes from, for the coverage table (docs/surgery.md).
    note: str = field(default="", compare=False)


def _f32_residual_scale(n_layers: int) -> float:
    """1.4f / sqrtf(float(n)) as llama.cpp computes it in float (minicpm.cpp), bit for bit."""
    import numpy as np

    return float(np.float32(1.4) / np.sqrt(np.float32(n_layers)))


# ---- building blocks -------------------------------------------------------------------------------

_PLAIN = ArchRule()


def _swa(period: int, dense_first: bool = False) -> tuple[IndexArray, ...]:
    """period - 1 sliding-window layers, then one global (llama-model.cpp load_swa_pattern), or with
    dense_first one global then period - 1 sliding-window layers; a scalar under the same key overrides
    the period."""
    residues = "all_but_first" if dense_first else "all_but_last"
    return (IndexArray(SWA_KEY, IndexPattern(period, residues, when_zero=True), SWA_KEY),)


# Hybrid models: recurrent (linear-attention) layers except every full_attention_interval-th one.
_RECURRENT = (IndexArray("attention.recurrent_layers", IndexPattern(4, "all_but_last"), "full_attention_interval"),)
RECURRENT_KEY = "attention.recurrent_layers"
_RECURRENT_8 = (IndexArray("attention.recurrent_layers", IndexPattern(8, "all_but_last"), "full_attention_interval"),)
_SWA_3_OF_4 = _swa(4)

_DENSE_LEAD = Fixed("a dense (non-MoE) feed-forward on the first leading_dense_block_count layers",
                    IndexPattern("leading_dense_block_count", "prefix", hparam="n_layer_dense_lead"))
_NOPE_EVERY_4TH = Fixed("NoPE (no rotary embedding) on every 4th layer",
                        IndexPattern(4, "last", hparam="n_no_rope_layer_step"))
_FIRST_LAYER = Fixed("the first executed layer's value stream (v_first), which layer 0's own value "
                     "tensors are shaped for", IndexPattern(1, "prefix"))


def _deepstack(arch_note: str) -> Fixed:
    return Fixed(f"{arch_note}: the first n_deepstack_layers positions add the vision encoder's deepstack features",
                 IndexPattern("n_deepstack_layers", "prefix", hparam="n_deepstack_layers"))


# Refusal reasons, grouped (docs/surgery.md lists them per architecture).
NOT_DECODER = "{arch} is an encoder / embedding model (non-causal, no next-token logprobs to score)"
NOT_TEXT = "{arch} is not a text language model (audio / speech / vision head)"
DIFFUSION = "{arch} is a diffusion language model: llama-server does not generate with it (no KV cache, llama-diffusion-cli)"
DRAFT = "{arch} is a speculative-decoding draft head that reads a target model's hidden states; it has no layer stack of its own to reorder"
ENC_DEC = "{arch} is an encoder-decoder model; rys paths run decoder-only layer stacks"


def _refused(template: str) -> ArchRule:
    return ArchRule(unsupported=template)


# ---- the table ---------------------------------------------------------------------------------------

ARCH_RULES: dict[str, ArchRule] = {
    # Generic: the graph reads a layer only through model.layers[il] and per-layer hparams, so
    # block_count + per-layer arrays + renaming (rewriter) or aliasing (runtime) is exactly right.
    **{arch: _PLAIN for arch in (
        "llama", "maincoder", "talkie", "deci", "falcon", "grok", "gpt2", "gptneox", "mpt", "starcoder",
        "refact", "bloom", "stablelm", "qwen", "qwen2", "qwen2moe", "qwen2vl", "qwen3", "qwen3moe", "phi2",
        "phi3", "phimoe", "plamo", "codeshell", "orion", "internlm2", "gemma", "starcoder2", "mamba",
        "mamba2", "maple", "falcon-h1", "xverse", "dbrx", "olmo", "olmoe", "openelm", "arctic",
        "chatglm", "glm4", "bitnet", "jais", "jais2", "nemotron", "exaone",
        "rwkv6qwen2", "granite", "granitemoe", "granite_swa", "chameleon", "plm",
        "bailingmoe", "arcee", "ernie4_5", "paddleocr", "hunyuan-moe", "hunyuan-dense", "hunyuan_vl",
        "hy_v3", "seed_oss", "grovemoe", "apertus", "minimax-m2", "cogvlm",
        "mistral3", "mimo2", "step35", "spark2_5", "pangu-embedded",
    )},

    # Sliding-window layers by index: the rewriter writes the per-layer array.
    "gemma2": ArchRule(index_arrays=_swa(2), count_switches=(
        CountSwitch("the 27B attention scale applies only at exactly 46 layers", (46,)),)),
    "gemma3": ArchRule(index_arrays=_swa(6), count_switches=(
        CountSwitch("the 27B attention scale applies only at exactly 62 layers", (62,)),)),
    "cohere2": ArchRule(index_arrays=_SWA_3_OF_4),
    "olmo2": ArchRule(index_arrays=_SWA_3_OF_4),
    "gpt-oss": ArchRule(index_arrays=_swa(2)),
    "mellum": ArchRule(index_arrays=_SWA_3_OF_4),
    "muse-glimmer": ArchRule(index_arrays=_SWA_3_OF_4),
    "plamo3": ArchRule(index_arrays=_swa(8)),
    "exaone4": ArchRule(index_arrays=_SWA_3_OF_4, count_switches=(
        CountSwitch("sliding-window attention is enabled only at exactly 64 layers (32B)", (64,)),)),
    "exaone-moe": ArchRule(index_arrays=_SWA_3_OF_4, fixed=(_DENSE_LEAD,)),
    "laguna": ArchRule(index_arrays=_swa(4, dense_first=True), fixed=(_DENSE_LEAD,)),
    "cohere2moe": ArchRule(index_arrays=_swa(4, dense_first=True), fixed=(
        Fixed("a dense feed-forward and forced RoPE on the first leading_dense_block_count layers",
              IndexPattern("leading_dense_block_count", "prefix", hparam="n_layer_dense_lead")),)),

    # Recurrent layers by index (hybrid models).
    "qwen3next": ArchRule(index_arrays=_RECURRENT, attention_needed=True),
    "qwen35": ArchRule(index_arrays=_RECURRENT, attention_needed=True),
    "qwen35moe": ArchRule(index_arrays=_RECURRENT, attention_needed=True),
    # Recurrent where head_count_kv is 0 (the per-layer array the generic rule remaps).
    **{arch: ArchRule(attention_needed=True) for arch in (
        "jamba", "plamo2", "granitehybrid", "nemotron_h", "nemotron_h_moe")},

    # Behaviour tied to the executed index.
    "smollm3": ArchRule(fixed=(_NOPE_EVERY_4TH,)),
    "llama4": ArchRule(index_arrays=_SWA_3_OF_4, fixed=(
        _NOPE_EVERY_4TH,
        Fixed("MoE on every interleave_moe_layer_step-th layer",
              IndexPattern("interleave_moe_layer_step", "last", hparam="n_moe_layer_step")))),
    "afmoe": ArchRule(index_arrays=_SWA_3_OF_4, fixed=(_NOPE_EVERY_4TH, _DENSE_LEAD)),
    "smallthinker": ArchRule(
        index_arrays=_swa(4, dense_first=True),
        fixed=(Fixed("NoPE on every 4th layer from layer 0", IndexPattern(4, "first", hparam="n_no_rope_layer_step")),),
        same_length="without sliding-window layers RoPE is on only while n_no_rope_layer_step equals the "
                    "executed layer count"),
    "ernie4_5-moe": ArchRule(fixed=(
        _DENSE_LEAD,
        Fixed("MoE on every interleave_moe_layer_step-th layer",
              IndexPattern("interleave_moe_layer_step", "last", hparam="n_moe_layer_step")))),
    "rwkv6": ArchRule(fixed=(
        Fixed("the activations are halved after every rescale_every_n_layers-th layer",
              IndexPattern("rescale_every_n_layers", "last", hparam="rescale_every_n_layers")),)),
    "rwkv7": ArchRule(fixed=(_FIRST_LAYER,)),
    "arwkv7": ArchRule(fixed=(_FIRST_LAYER,)),
    "qwen3vl": ArchRule(fixed=(_deepstack("qwen3vl"),)),
    "qwen3vlmoe": ArchRule(fixed=(_deepstack("qwen3vlmoe"),)),
    "deepseek": ArchRule(fixed=(_DENSE_LEAD,)),
    "dots1": ArchRule(fixed=(_DENSE_LEAD,)),
    "glm4moe": ArchRule(fixed=(_DENSE_LEAD,)),
    "bailingmoe2": ArchRule(fixed=(_DENSE_LEAD,)),
    "lfm2moe": ArchRule(fixed=(_DENSE_LEAD,), attention_needed=True),
    "kimi-linear": ArchRule(fixed=(_DENSE_LEAD,), attention_needed=True),
    "minimax-m3": ArchRule(fixed=(
        Fixed("dense layers without the sparse-attention indexer cache on the first leading_dense_block_count layers",
              IndexPattern("leading_dense_block_count", "prefix", hparam="n_layer_dense_lead")),)),
    "deepseek2-ocr": ArchRule(fixed=(_DENSE_LEAD,)),
    "lfm2": ArchRule(attention_needed=True, fixed=(
        Fixed("MoE from n_layer_dense_lead on, which lfm2 sets to the physical layer count at load time",
              IndexPattern(N_LAYERS, "prefix", hparam="n_layer_dense_lead"), methods=(RUNTIME,)),)),
    "deepseek2": ArchRule(fixed=(_DENSE_LEAD,), count_switches=(
        CountSwitch("the V2-Lite attention layout (no q_lora_rank) is chosen by a layer count of 26, 27 or 48", (26, 27, 48)),
        CountSwitch("without expert_gating_func, GLM-4.7-Lite's sigmoid gating is chosen by a layer count of 47 or 48", (47, 48)))),
    "mistral4": ArchRule(fixed=(_DENSE_LEAD,), count_switches=(
        CountSwitch("the V2-Lite attention layout (no q_lora_rank) is chosen by a layer count of 26, 27 or 48", (26, 27, 48)),)),

    # Count-derived values.
    "minicpm": ArchRule(pins=(Pin("residual_scale", lambda meta, n: ("FLOAT32", _f32_residual_scale(n))),),
                        note="without residual_scale llama.cpp uses 1.4/sqrt(n_layer); a rewritten file pins the source's value"),
    "minicpm3": ArchRule(same_length="its graph scales every residual by 1.4/sqrt(n_layer) of the executed count"),
    "baichuan": ArchRule(count_switches=(
        CountSwitch("RoPE (7B, 32 layers) versus ALiBi (13B, 40 layers) is chosen by the layer count", (32, 40)),)),
    "command-r": ArchRule(count_switches=(
        CountSwitch("Q/K-norm tensors are loaded only from 64 layers on (Command R+)", at_least=64),)),
    "gemma4": ArchRule(
        refuse_when=(
            RefuseWhen("embedding_length_per_layer_input",
                       "gemma4 per-layer-embedding tensors are sized by the layer count and sliced by position",
                       hparam="n_embd_per_layer"),
            RefuseWhen("attention.shared_kv_layers",
                       "the last attention.shared_kv_layers gemma4 layers reuse the KV cache of earlier layers by index")),
        fixed=(Fixed("a KV cache only on positions below n_layer_kv_from_start, which gemma4 sets from the "
                     "physical layer count at load time",
                     IndexPattern(N_LAYERS, "prefix", hparam="n_layer_all"), methods=(RUNTIME,)),),
        note="the 26B/31B models (no per-layer embeddings, no KV sharing) take any path with the rewriter and "
             "any path no longer than the model at run time; E2B/E4B are refused"),

    # Refused: a path cannot be run correctly.
    "gemma3n": _refused("gemma3n has per-layer-embedding tensors sized by the layer count and shares KV caches "
                        "from layer 20 on; no metadata can describe another path"),
    "qwen4exp": _refused("qwen4exp marks per-layer-embedding layers by index (ple_layers) and keeps hash and "
                         "compressed-attention state per layer; no metadata can describe another path"),
    "minimax-01": _refused("minimax-01's lightning attention derives each layer's decay slope from its position "
                           "(1 - il / (n_layer - 1)), so a moved or added layer changes its slope"),
    "kimi-k3": _refused("kimi-k3 banks the residual stream for its cross-layer residual attention on every "
                        "attn_res.block_size-th executed layer and reads it back by position"),
    "nanbeige": _refused("nanbeige repeats its own layers (num_loops) and marks loop boundaries by index"),
    "hrm_text": _refused("hrm_text aliases its layer slots itself (hierarchical H/L cycles) by index"),
    "graniteswitch": _refused("graniteswitch keeps its adapter-router KV layer after the real layers at a fixed index "
                              "(router_layer), outside nextn_predict_layers"),
    "deepseek32": _refused("deepseek32's sparse-attention indexer types (attention.indexer_types) are sized by the "
                           "trunk layer count, not block_count, and its DSA cache is filtered by index"),
    "glm-dsa": _refused("glm-dsa's sparse-attention indexer types (attention.indexer_types) are sized by the trunk "
                        "layer count, not block_count, and its DSA cache is filtered by index"),
    "glm5-next": _refused("glm5-next's sparse-attention indexer types are sized by the trunk layer count and its "
                          "hybrid cache is filtered by index"),
    "deepseek4": _refused("deepseek4 routes the first dsv4_hash_layer_count layers by token hash and sizes its "
                          "compression ratios by the trunk count"),
    "hy_v4": _refused("hy_v4's indexer types are sized by the trunk layer count and its hyper-connection streams "
                      "are checked against the index"),
    "dots3note": _refused("dots3note's indexer types and sliding-window arrays are read with the trunk count and "
                          "its MTP cache is filtered by index"),
    "bailingmoe3": _refused("bailingmoe3 derives recurrent layers and its MTP probe from the trunk index"),
    **{arch: _refused(NOT_DECODER) for arch in (
        "bert", "modern-bert", "nomic-bert", "nomic-bert-moe", "neo-bert", "jina-bert-v2", "jina-bert-v3", "eurobert",
        "gemma-embedding", "llama-embed", "t5encoder", "clef")},
    "t5": _refused(ENC_DEC),
    **{arch: _refused(DIFFUSION) for arch in ("dream", "llada", "llada-moe", "rnd1")},
    **{arch: _refused(DRAFT) for arch in ("eagle3", "dflash", "gemma4-assistant")},
    **{arch: _refused(NOT_TEXT) for arch in ("wavtokenizer-dec", "qwen3tts", "pockettts", "clip")},
}


def describe(rule: ArchRule) -> str:
    """One line of what a layer path must respect for this architecture (docs table, rys inspect)."""
    parts = []
    for spec in rule.index_arrays:
        parts.append(f"writes `{spec.key}` (by index, period {spec.pattern.period})")
    for fixed in rule.fixed:
        where = "" if set(fixed.methods) == set(BOTH) else f" ({', '.join(fixed.methods)} only)"
        parts.append(f"keeps {fixed.what}{where}")
    for switch in rule.count_switches:
        parts.append(f"rewrite keeps the layer count class: {switch.what}")
    for pin in rule.pins:
        parts.append(f"rewrite pins `{pin.key}`")
    if rule.same_length:
        parts.append(f"same length only: {rule.same_length}")
    if rule.attention_needed:
        parts.append("a path keeps at least one attention layer")
    for when in rule.refuse_when:
        parts.append(f"refused when `{when.key}` > 0: {when.reason}")
    if rule.note:
        parts.append(rule.note)
    return "; ".join(parts) or "generic"


def rule_for(arch: str) -> ArchRule | None:
    return ARCH_RULES.get(arch)


def refusal(rule: ArchRule | None, arch: str, method: str = REWRITE) -> str | None:
    """Why no path but the identity runs under `method` for every model of `arch` (None: some do)."""
    if rule is None:
        return (f"architecture {arch!r} is not in rys's table of architectures whose layer paths are known "
                f"to be right (rys/gguf/arch_rules.py)")
    if rule.unsupported:
        return rule.unsupported.format(arch=arch)
    if method == RUNTIME and rule.runtime_unsupported:
        return rule.runtime_unsupported.format(arch=arch)
    return None
