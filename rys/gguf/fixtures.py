"""Tiny random-weight GGUFs of any architecture, for verifying layer paths without real weights.

llama.cpp's own loader is the specification: the builder starts from the hyperparameters every decoder
needs (n_embd 64, 6 layers, 4 heads, 4 experts of which 2 are used, ...) and no tensors, asks a real
llama-server to load the file, and reads the loader's one-line refusal: a missing key is added (a
default by its name), a missing tensor is added to its layer (and guessed for the following layers), a
wrong shape is replaced by the expected one, and tensors the loader did not ask for are dropped. It
repeats until the model loads (about 20-60 loads of a few hundred ms each), so the result has exactly
the tensors and shapes llama.cpp b11434 expects. The tokenizer is the demo model's (SmolLM2, a GPT-2
BPE of 49152 tokens), copied byte for byte, so prompts tokenize like a real model.

Weights are float32, normal(0, 0.05) (norm weights 1), drawn from a fixed seed: the same spec gives the
same file. Built files are cached under rys.config.cache_dir()/tiny-models/<arch>-<spec hash>.gguf.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType

from rys.errors import RysError
from rys.gguf.source import MetaValue, TensorRef, open_source
from rys.gguf.writer import OutTensor, atomic_file, encode_header, encode_kv

BUILDER_VERSION = 1
MAX_ROUNDS = 400


class FixtureError(RysError):
    pass


@dataclass(frozen=True)
class TinySpec:
    arch: str
    n_layers: int = 6
    n_embd: int = 64
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    n_expert: int = 4
    n_expert_used: int = 2
    seed: int = 0
    init_std: float = 0.05  # of the random weights; some deeper stacks overflow to NaN with more (nemotron, dots1)
    # tensors the loader takes when present but never asks for (TENSOR_NOT_REQUIRED alternatives the
    # graph needs): (name, ne in ggml order)
    tensors: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # extra or replaced metadata, keys relative to `{arch}.` unless they contain a '.' prefix of their own
    # ("general." / "tokenizer."); values: int, float, bool, str or a list of one of those
    keys: tuple[tuple[str, object], ...] = ()

    def key_hash(self) -> str:
        fields = asdict(self)
        for name, default in (("init_std", 0.05), ("tensors", ())):
            if fields[name] == default:
                del fields[name]  # added later: files built before keep their names
        text = json.dumps([BUILDER_VERSION, fields], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


_U32, _F32, _BOOL, _STR, _I32 = (GGUFValueType.UINT32, GGUFValueType.FLOAT32, GGUFValueType.BOOL,
                                 GGUFValueType.STRING, GGUFValueType.INT32)
_TYPE_NAMES = {"u32": _U32, "i32": _I32, "f32": _F32, "bool": _BOOL, "str": _STR, "u64": GGUFValueType.UINT64,
               "u8": GGUFValueType.UINT8, "i8": GGUFValueType.INT8, "u16": GGUFValueType.UINT16,
               "i16": GGUFValueType.INT16, "f64": GGUFValueType.FLOAT64, "i64": GGUFValueType.INT64}


def _meta(value, vtype: GGUFValueType | None = None) -> MetaValue:
    if isinstance(value, (list, tuple)):
        item = vtype or (_BOOL if all(isinstance(v, bool) for v in value) else
                         _F32 if any(isinstance(v, float) for v in value) else _I32)
        return MetaValue(GGUFValueType.ARRAY, list(value), item)
    if vtype is not None:
        return MetaValue(vtype, value)
    if isinstance(value, bool):
        return MetaValue(_BOOL, value)
    if isinstance(value, int):
        return MetaValue(_U32, value)
    if isinstance(value, float):
        return MetaValue(_F32, value)
    return MetaValue(_STR, str(value))


def _convert(mv: MetaValue, vtype: GGUFValueType) -> MetaValue:
    if mv.type == GGUFValueType.ARRAY:
        return mv
    if vtype in (_F32, GGUFValueType.FLOAT64):
        return MetaValue(vtype, float(mv.value))
    if vtype == _BOOL:
        return MetaValue(vtype, bool(mv.value))
    if vtype == _STR:
        return MetaValue(vtype, str(mv.value))
    return MetaValue(vtype, int(mv.value))


# Defaults for keys the loader asks for, by the end of the key's name (first match wins).
_KEY_DEFAULTS: tuple[tuple[str, object], ...] = (
    ("expert_used_count", "@used"), ("expert_count", "@experts"), ("expert_shared_count", 1),
    ("expert_group_count", 0), ("expert_group_used_count", 0),
    ("expert_feed_forward_length", 32), ("expert_shared_feed_forward_length", 32),
    ("expert_chunk_feed_forward_length", 32), ("expert_weights_scale", 1.0), ("expert_weights_norm", False),
    ("expert_gating_func", 1), ("leading_dense_block_count", 1), ("interleave_moe_layer_step", 2),
    ("moe_every_n_layers", 2), ("nextn_predict_layers", 0), ("n_deepstack_layers", 0),
    ("attention.sliding_window", 16), ("attention.key_length", 16), ("attention.value_length", 16),
    ("attention.key_length_swa", 16), ("attention.value_length_swa", 16),
    ("attention.key_length_mla", 16), ("attention.value_length_mla", 16),
    ("attention.q_lora_rank", 32), ("attention.kv_lora_rank", 16), ("attention.layer_norm_epsilon", 1e-5),
    ("attention.layer_norm_rms_epsilon", 1e-5), ("attention.group_norm_epsilon", 1e-5),
    ("attention.group_norm_groups", 4), ("attention.clamp_kqv", 8.0), ("attention.max_alibi_bias", 8.0),
    ("attention.causal", True), ("attention.shared_kv_layers", 0), ("attention.temperature_length", 8192),
    ("attention.temperature_scale", 0.1), ("attention.decay_lora_rank", 8), ("attention.iclr_lora_rank", 8),
    ("attention.value_residual_mix_lora_rank", 8), ("attention.gate_lora_rank", 8),
    ("attention.head_count", "@heads"), ("attention.head_count_kv", "@heads_kv"),
    ("rope.dimension_count", 16), ("rope.dimension_count_swa", 16), ("rope.freq_base", 10000.0),
    ("rope.freq_base_swa", 10000.0), ("rope.scaling.type", "none"), ("rope.scaling.factor", 1.0),
    ("rope.dimension_sections", [4, 2, 2, 0]),
    ("ssm.conv_kernel", 4), ("ssm.inner_size", 128), ("ssm.state_size", 16), ("ssm.time_step_rank", 4),
    ("ssm.group_count", 1), ("ssm.dt_b_c_rms", False),
    ("wkv.head_size", 16), ("time_mix_extra_dim", 8), ("time_decay_extra_dim", 8), ("rescale_every_n_layers", 0),
    ("token_shift_count", 1), ("shortconv.l_cache", 3), ("full_attention_interval", 3),
    ("embedding_length_per_layer_input", 0), ("embedding_scale", 1.0), ("residual_scale", 1.0),
    ("logit_scale", 1.0), ("attention.scale", 0.125), ("final_logit_softcapping", 30.0),
    ("attn_logit_softcapping", 50.0), ("swin_norm", False), ("use_parallel_residual", False),
    ("tensor_data_layout", "Meta AI original pth"), ("vocab_size", 49152), ("context_length", 256),
    ("feed_forward_length", "@ff"), ("embedding_length", "@embd"),
    ("_scale", 1.0), ("_epsilon", 1e-5), ("_eps", 1e-5), ("_factor", 1.0), ("_length", 16), ("_count", 1),
    ("_size", 16), ("_rank", 8), ("_step", 2), ("_dim", 16),
)


def _key_default(key: str, spec: TinySpec):
    for suffix, value in _KEY_DEFAULTS:
        if key.endswith(suffix):
            return {"@used": spec.n_expert_used, "@experts": spec.n_expert, "@heads": spec.n_head,
                    "@heads_kv": spec.n_head_kv, "@ff": spec.n_ff, "@embd": spec.n_embd}.get(value, value) \
                if isinstance(value, str) and value.startswith("@") else value
    return 1


@dataclass
class _Draft:
    spec: TinySpec
    keys: dict[str, MetaValue]
    globals: dict[str, tuple[int, ...]] = field(default_factory=dict)  # name -> ne (ggml order)
    layers: list[dict[str, tuple[int, ...]]] = field(default_factory=list)  # per block: suffix -> ne
    confirmed: set[str] = field(default_factory=set)  # tensors the loader asked for
    reached: int = -1  # highest layer the loader asked about


def _base_keys(spec: TinySpec, tokenizer: Mapping[str, bytes]) -> dict[str, MetaValue]:
    a = spec.arch
    keys = {
        "general.architecture": _meta(a), "general.name": _meta(f"rys tiny {a}"),
        f"{a}.context_length": _meta(256), f"{a}.embedding_length": _meta(spec.n_embd),
        f"{a}.block_count": _meta(spec.n_layers), f"{a}.feed_forward_length": _meta(spec.n_ff),
        f"{a}.attention.head_count": _meta(spec.n_head), f"{a}.attention.head_count_kv": _meta(spec.n_head_kv),
        f"{a}.attention.layer_norm_rms_epsilon": _meta(1e-5), f"{a}.attention.layer_norm_epsilon": _meta(1e-5),
        f"{a}.rope.freq_base": _meta(10000.0),
    }
    if _has_experts(a):
        keys[f"{a}.expert_count"] = _meta(spec.n_expert)
        keys[f"{a}.expert_used_count"] = _meta(spec.n_expert_used)
    for key, value in spec.keys:
        full = key if key.startswith(("general.", "tokenizer.")) else f"{a}.{key}"
        keys[full] = _meta(value)
    return keys


def _has_experts(arch: str) -> bool:
    """gguf-py's tensor table says whether the architecture has MoE layers."""
    from gguf.constants import MODEL_ARCH_NAMES, MODEL_TENSOR, MODEL_TENSORS

    for model_arch, name in MODEL_ARCH_NAMES.items():
        if name == arch:
            return MODEL_TENSOR.FFN_GATE_INP in MODEL_TENSORS.get(model_arch, ())
    return False


def _tokenizer_entries() -> dict[str, bytes]:
    """The demo model's tokenizer.* entries, raw (they are copied verbatim into every tiny model)."""
    from rys.models import resolve_model

    source = open_source(resolve_model("smollm2"))
    return {key: raw for key, (raw, _) in source.fields.items() if key.startswith("tokenizer.")}


def _tensor_order(draft: _Draft) -> list[tuple[str, tuple[int, ...]]]:
    items = list(draft.globals.items())
    for il, tensors in enumerate(draft.layers):
        items += [(f"blk.{il}.{suffix}", ne) for suffix, ne in tensors.items()]
    return items


def _init(name: str, ne: tuple[int, ...], rng: np.random.Generator, std: float) -> np.ndarray:
    shape = tuple(reversed(ne))
    if re.search(r"norm|ln_|layernorm", name) and name.endswith(".weight") and len(ne) == 1:
        return np.ones(shape, dtype=np.float32)
    return rng.standard_normal(size=shape, dtype=np.float32) * np.float32(std)


def write_tiny(draft: _Draft, out: Path, tokenizer: Mapping[str, bytes]) -> Path:
    """Write the draft as a GGUF (float32 tensors, the demo tokenizer)."""
    spec = draft.spec
    rng = np.random.default_rng(spec.seed)
    kv = [encode_kv(k, mv) for k, mv in draft.keys.items()] + [raw for k, raw in tokenizer.items()
                                                               if k not in draft.keys]
    arrays, tensors = [], []
    for name, ne in _tensor_order(draft):
        data = _init(name, ne, rng, spec.init_std)
        arrays.append(data)
        tensors.append(OutTensor(name, TensorRef(name, tuple(ne), int(GGMLQuantizationType.F32), data.nbytes,
                                                 out, 0, None, name)))
    header = encode_header(kv, tensors, 32)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as fd:
        os.write(fd, header)
        for data in arrays:
            raw = data.tobytes()
            os.write(fd, raw + b"\0" * ((32 - len(raw) % 32) % 32))
    return out


_MISSING_KEY = re.compile(r"(?:array )?key not found in model: (\S+)")
_WRONG_TYPE = re.compile(r"key (\S+) has wrong type (\S+) but expected type (\S+)")
_WRONG_LEN = re.compile(r"key (\S+) has wrong array length; expected (\d+), got (\d+)")
_SCALAR_NOT_ARRAY = re.compile(r"expected scalar, found array for key: (\S+)")
_MISSING_TENSOR = re.compile(r"(?:missing tensor|tensor) '([^']+)'(?: not found)?$")
_WRONG_SHAPE = re.compile(r"tensor '([^']+)' has wrong shape; expected ([\d ,]+), got")
_COUNT = re.compile(r"wrong number of tensors; expected (\d+), got (\d+)")


def _load_error(binary: Path, model: Path) -> str | None:
    """The loader's reason for refusing `model` (None: it loaded)."""
    # --check-tensors is not used: shapes are what matter, values are random
    proc = subprocess.Popen([str(binary), "-m", str(model), "--port", "0", "-c", "64", "-np", "1", "-t", "1",
                             "--no-warmup", "-fit", "off", "-fa", "off", "--host", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    log = []
    try:
        for line in proc.stderr:
            log.append(line)
            if "llama_server: model loaded" in line or "listening on http" in line:
                return None
            if "error loading model" in line or "GGML_ASSERT" in line:
                return line.strip()
    finally:
        proc.kill()
        proc.wait()
    tail = "".join(log[-6:]).strip()
    return tail or f"llama-server exited with {proc.returncode}"


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.replace(" ", "").split(",") if x)


def _guess(name: str, spec: TinySpec) -> tuple[int, ...]:
    """A first shape for a tensor the loader asked for; a wrong guess costs one more load (the loader
    then names the expected shape)."""
    e, hd, v = spec.n_embd, spec.n_embd // spec.n_head, 49152
    kind = name.split(".")[-2] if name.count(".") >= 1 else name
    table = {
        "token_embd": (e, v), "output": (e, v), "attn_q": (e, spec.n_head * hd), "attn_k": (e, spec.n_head_kv * hd),
        "attn_v": (e, spec.n_head_kv * hd), "attn_output": (spec.n_head * hd, e), "attn_qkv": (e, e + 2 * spec.n_head_kv * hd),
        "ffn_gate": (e, spec.n_ff), "ffn_up": (e, spec.n_ff), "ffn_down": (spec.n_ff, e),
        "ffn_gate_inp": (e, spec.n_expert), "ffn_gate_exps": (e, 32, spec.n_expert), "ffn_up_exps": (e, 32, spec.n_expert),
        "ffn_down_exps": (32, e, spec.n_expert), "attn_q_norm": (hd,), "attn_k_norm": (hd,),
    }
    if name.endswith(".bias"):
        base = table.get(kind)
        return (base[-1],) if base else (e,)
    return table.get(kind, (e,))


def _apply(draft: _Draft, error: str) -> bool:
    """Change the draft as the loader's error says; False when the error is not one the builder knows."""
    spec = draft.spec
    if m := _WRONG_TYPE.search(error):
        key, want = m.group(1), _TYPE_NAMES.get(m.group(3))
        if want is None or key not in draft.keys:
            return False
        draft.keys[key] = _convert(draft.keys[key], want)
        return True
    if m := _WRONG_LEN.search(error):
        key, n = m.group(1), int(m.group(2))
        old = draft.keys[key]
        fill = old.value[0] if old.value else 0
        draft.keys[key] = MetaValue(GGUFValueType.ARRAY, [fill] * n, old.item_type)
        return True
    if m := _SCALAR_NOT_ARRAY.search(error):
        key = m.group(1)
        draft.keys[key] = _meta(draft.keys[key].value[0])
        return True
    if m := _MISSING_KEY.search(error):
        key = m.group(1)
        if key in draft.keys:
            return False
        value = _key_default(key, spec)
        if "array key" in error and not isinstance(value, list):
            value = [value] * spec.n_layers if not key.endswith("sliding_window_pattern") else \
                [il % 2 == 0 for il in range(spec.n_layers)]
        draft.keys[key] = _meta(value)
        return True
    if m := _WRONG_SHAPE.search(error):
        name, ne = m.group(1), _shape(m.group(2))
        _set(draft, name, ne)
        draft.confirmed.add(name)
        return True
    if m := _MISSING_TENSOR.search(error):
        name = m.group(1)
        if name in draft.confirmed and _get(draft, name) is not None:
            return False
        _set(draft, name, _guess(name, spec))
        draft.confirmed.add(name)
        layer = _layer_of(name)
        if layer is not None and layer > draft.reached:
            # a new layer: guess it holds what the previous one ended with
            if layer > 0:
                for suffix, ne in draft.layers[layer - 1].items():
                    draft.layers[layer].setdefault(suffix, ne)
            draft.reached = layer
        return True
    if m := _COUNT.search(error):
        return _drop_unrequested(draft)
    return False


def _layer_of(name: str) -> int | None:
    m = re.match(r"blk\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def _get(draft: _Draft, name: str):
    layer = _layer_of(name)
    if layer is None:
        return draft.globals.get(name)
    return draft.layers[layer].get(name.split(".", 2)[2])


def _set(draft: _Draft, name: str, ne: tuple[int, ...]) -> None:
    layer = _layer_of(name)
    if layer is None:
        draft.globals[name] = ne
    else:
        draft.layers[layer][name.split(".", 2)[2]] = ne


def _drop_unrequested(draft: _Draft) -> bool:
    """Extra tensors came from guesses for a new layer: drop every guess the loader never asked for, and
    let it ask again (a wrong drop comes back as a missing tensor, which then counts as asked for)."""
    dropped = False
    for il, tensors in enumerate(draft.layers):
        for suffix in list(tensors):
            if f"blk.{il}.{suffix}" not in draft.confirmed:
                del tensors[suffix]
                dropped = True
    return dropped


def header_only(spec: TinySpec, out: Path) -> Path:
    """A GGUF with the spec's metadata and the demo tokenizer but no tensors: enough for everything that
    reads metadata only (rys's method choice, refusals), not for llama-server."""
    tokenizer = _tokenizer_entries()
    return write_tiny(_Draft(spec, _base_keys(spec, tokenizer), layers=[{} for _ in range(spec.n_layers)]),
                      out, tokenizer)


def build_tiny(spec: TinySpec, out: Path, binary: Path, log=None) -> Path:
    """Write a tiny model of `spec.arch` that `binary` loads, to `out` (FixtureError: it never did)."""
    tokenizer = _tokenizer_entries()
    draft = _Draft(spec, _base_keys(spec, tokenizer), layers=[{} for _ in range(spec.n_layers)])
    for name, ne in spec.tensors:
        _set(draft, name, tuple(ne))
        draft.confirmed.add(name)
    seen: dict[str, int] = {}
    work = out.with_name(f"{out.stem}.{os.getpid()}.building.gguf")
    try:
        return _rounds(draft, out, work, binary, tokenizer, seen, log)
    finally:
        work.unlink(missing_ok=True)


def _rounds(draft: _Draft, out: Path, work: Path, binary: Path, tokenizer, seen: dict, log) -> Path:
    spec = draft.spec
    for _ in range(MAX_ROUNDS):
        write_tiny(draft, work, tokenizer)
        error = _load_error(binary, work)
        if error is None:
            os.replace(work, out)
            return out
        if log:
            log(error)
        seen[error] = seen.get(error, 0) + 1
        if seen[error] > 3 or not _apply(draft, error):
            raise FixtureError(f"cannot build a tiny {spec.arch} model: llama-server says: {error}",
                               "add the key to TinySpec.keys, or extend rys/gguf/fixtures.py for this case")
    raise FixtureError(f"cannot build a tiny {spec.arch} model in {MAX_ROUNDS} loads", "see rys/gguf/fixtures.py")


def tiny_model(spec: TinySpec, binary: Path, cache: Path | None = None) -> Path:
    """The cached tiny model of `spec`, built on first use."""
    if cache is None:
        from rys.config import cache_dir

        cache = cache_dir() / "tiny-models"
    out = cache / f"{spec.arch}-{spec.key_hash()}.gguf"
    if out.exists():
        return out
    return build_tiny(spec, out, binary)
