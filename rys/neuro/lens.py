"""Logit lens through layer paths: the truncated model 0..L, served by the stock llama-server, gives
the residual after layer L through the model's real final norm and head.

One server per layer (N starts for N layers): the original model first (the final distribution every
layer is compared with), then path 0..L for every L. The last truncated path runs every layer, so its
KL to the original must be ~0: the built-in self-test of the rewriter and the lens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rys import paths as layer_paths
from rys.neuro import NeuroError, hidden
from rys.neuro.lens_math import LayerStats, layer_stats, normalize, summary_layers
from rys.neuro.pipeline import in_order
from rys.probes import open_target
from rys.serve_path import switches_in_place

SELF_TEST_KL_BITS = 1e-3  # at the last layer the lens must reproduce the model: KL below this passes


@dataclass
class LensPrompt:
    id: str
    text: str
    answer: str | None = None  # gold answer; the lens follows its first token
    chat: bool = False  # put the text in the model's chat template first
    suffix: str = ""  # appended after the (templated) text, e.g. a probe's answer prefix


def probe_prompts(probe, limit: int | None = None) -> list[LensPrompt]:
    """A probe's items as lens prompts, exactly as its scorer builds them; items whose gold answer is
    not a single string or number (ratings, JSON) are lensed without an answer."""
    def answer(value) -> str | None:
        return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None

    return [LensPrompt(item.id, item.prompt, answer(item.answer), chat=probe.chat, suffix=probe.answer_prefix)
            for item in list(probe.items)[:limit]]


@dataclass
class PromptLens:
    id: str
    text: str
    answer: str | None
    answer_token: int | None
    answer_piece: str | None  # the answer token as text
    prompt_ids: list[int]
    layers: list[LayerStats] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    block_influence: list[float | None] | None = None  # per lensed layer (None: layer before not read)
    cosine_to_final: list[float] | None = None
    control_margin: list[float] | None = None  # control prompt only: p(own answer) - p(main answer)
    tuned: list[LayerStats] | None = None  # the tuned lens at each lensed layer (rys lens --tuned)
    tuned_summary: dict | None = None

    def to_dict(self, pieces: dict[int, str]) -> dict:
        def stats(rows):
            return [dict(dataclasses.asdict(s), top=[[i, pieces.get(i, ""), p] for i, p in s.top],
                         top_mass=s.top_mass) for s in rows]

        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("layers", "tuned")}
        out["layers"] = stats(self.layers)
        out["tuned"] = None if self.tuned is None else stats(self.tuned)
        return out


@dataclass
class LensResult:
    model: str
    n_layers: int
    n_vocab: int
    prompts: list[PromptLens]
    control: PromptLens | None
    self_test_kl_bits: float  # max over prompts of KL(last layer || original model)
    seconds: float
    pieces: dict[int, str] = field(default_factory=dict)  # token id -> text, for every top-k token shown
    tuned_lens: str | None = None  # the tuned lens file used (rys lens --tuned)
    head_check_kl_bits: float | None = None  # max KL(server's final distribution || numpy head of its state)

    @property
    def self_test_passed(self) -> bool:
        return self.self_test_kl_bits < SELF_TEST_KL_BITS

    def to_dict(self) -> dict:
        return {"model": self.model, "n_layers": self.n_layers, "n_vocab": self.n_vocab,
                "self_test": {"kl_bits_last_layer": self.self_test_kl_bits, "passed": self.self_test_passed,
                              "threshold_bits": SELF_TEST_KL_BITS},
                "seconds": self.seconds, "tuned_lens": self.tuned_lens, "head_check_kl_bits": self.head_check_kl_bits,
                "prompts": [p.to_dict(self.pieces) for p in self.prompts],
                "control": None if self.control is None else self.control.to_dict(self.pieces)}


def dense_logprobs(dist, n_vocab: int) -> np.ndarray:
    """A full-vocabulary TokenDist as a vector indexed by token id."""
    if len(dist.ids) != n_vocab:
        raise NeuroError(f"the server listed {len(dist.ids)} of {n_vocab} tokens",
                         "the lens needs the full vocabulary (next_token with top_k=None)")
    out = np.full(n_vocab, -np.inf)
    out[dist.ids] = dist.logprobs
    return normalize(out)


def answer_token(client, text: str, answer: str) -> int:
    """First token of the answer as it would follow the prompt: a word after a non-space gets its space."""
    spaced = answer if not text or text[-1].isspace() or answer[:1].isspace() else " " + answer
    ids = client.tokenize(spaced)
    if not ids:
        raise NeuroError(f"the answer {answer!r} is empty once tokenized", "give a non-empty --answer")
    return ids[0]


def run_lens(model: Path, prompts: Sequence[LensPrompt], config, *, control: LensPrompt | None = None,
             with_hidden: bool = False, top_k: int = 5, layers: Sequence[int] | None = None,
             save_hidden: Path | None = None, store=None, workers: int = 2,
             on_layer: Callable[[int, int], None] | None = None, switch: bool = True,
             tuned: Path | None = None) -> LensResult:
    """Lens every prompt at every layer in `layers` (default all; the last layer is always read).

    Without hidden states, on a build that switches paths in place (and `switch`), one server reads every
    layer (_one_server): the original model's requests keep the residual stream, and the lens at layer L
    runs only layer L from the rows kept after L-1. Otherwise each truncated path gets its own server,
    `workers` at a time.

    with_hidden also reads /embeddings of every truncated model: block influence of each layer whose
    input state was read too (the token embedding for layer 0), and cosine to the original model's
    final state. save_hidden writes them per prompt as .npy [1 + len(layers), tokens, n_embd]: row 0 =
    token embedding, then the state after each lensed layer, final-norm gain divided out.

    tuned (a file of rys calibrate for this same model) adds the tuned lens next to the logit lens: the
    hidden state of each layer at the prompt's last token, through that layer's translator and the
    model's head (rys.neuro.tuned); it implies with_hidden.
    """
    from rys.gguf.source import open_source

    start = time.monotonic()
    if not prompts:
        raise NeuroError("no prompts to lens", "pass --prompt/--answer or --probe")
    if control is not None and not (control.answer and prompts[0].answer):
        raise NeuroError("a control prompt compares two answers, but one of them is missing",
                         "give --answer with --prompt and --control-answer with --control-prompt")
    source = open_source(model)
    n_layers = source.n_layers
    tuned_lens = None
    if tuned is not None:
        from rys.neuro.tuned import load_lens

        tuned_lens = load_lens(tuned)
        tuned_lens.check_model(model)
        with_hidden = True
    wanted = sorted(set(range(n_layers) if layers is None else layers) | {n_layers - 1})
    outside = [layer for layer in wanted if not 0 <= layer < n_layers]
    if outside:
        raise NeuroError(f"lens layers {outside} are outside this model's layers 0..{n_layers - 1}",
                         f"pick layers from 0 to {n_layers - 1}, e.g. --layers 0..{n_layers - 1}")
    with_hidden = with_hidden or save_hidden is not None
    if with_hidden:
        config = dataclasses.replace(config, embeddings=True)
    everything = list(prompts) + ([control] if control else [])
    with contextlib.ExitStack() as stack:
        session = None
        if switch and not with_hidden and switches_in_place(config.binary, model):
            session = stack.enter_context(_one_server(model, config, n_layers, wanted, [p.text for p in everything]))
        result = _lens(model, config, source, n_layers, wanted, everything, control, with_hidden, save_hidden,
                       top_k, store, workers, on_layer, session, start)
    if tuned_lens is not None:
        _add_tuned(result, tuned_lens, model, wanted, top_k)
        result.tuned_lens = str(tuned)
    return result


@contextlib.contextmanager
def _one_server(model: Path, config, n_layers: int, wanted: Sequence[int], texts: Sequence[str]):
    """A PathSession on the original model that keeps the rows each lensed layer starts from (where the
    build can: rys.prefix.available)."""
    from rys import prefix
    from rys.serve_path import PathSession, serve_path

    with serve_path(Path(model), range(n_layers), config, name="lens", start=True) as served:
        paths = [layer_paths.truncate(layer + 1, n_layers) for layer in wanted]
        capture = prefix.plan_capture(paths, n_layers, texts, served.server.client.props().n_embd) \
            if prefix.available(config) else ()
        yield PathSession(served, n_layers, capture)


def _lens(model, config, source, n_layers, wanted, everything, control, with_hidden, save_hidden, top_k, store,
          workers, on_layer, session, start) -> LensResult:
    # The original model: tokens, answer tokens and the final distribution every layer is compared with.
    with contextlib.nullcontext(session.server) if session else open_target(model, config, name="lens-final") as server:
        client = session.client(session.capture_fields()) if session else server.client
        n_vocab = client.props().n_vocab
        lenses, finals, states, final_states = [], [], [], []
        for p in everything:
            text = client.format_prompt(p.text, p.chat) + p.suffix
            ids = client.tokenize(text, add_special=True)
            token = answer_token(client, text, p.answer) if p.answer else None
            lenses.append(PromptLens(p.id, text, p.answer, token, None if token is None else
                                     client.detokenize([token]), ids))
            finals.append(dense_logprobs(client.next_token(ids), n_vocab))
            states.append([hidden.embedding_rows(source, ids)] if with_hidden else None)
            final_states.append(client.embeddings(ids) if with_hidden else None)
        if session:
            session.mark_captured()

    gain = hidden.read_gain(source) if with_hidden else None
    pieces: dict[int, str] = {}

    def read_layer(layer: int) -> list[tuple[LayerStats, float | None, np.ndarray | None]]:
        path = layer_paths.truncate(layer + 1, n_layers)
        if session:  # one server: switched to this layer's path, or to its last layer from the kept rows
            reuse = session.switch(path)
            return read(layer, session.client({} if reuse is None else {"rys_resume_layer": reuse}))
        with open_target(model, config, path=path, store=store, name=f"lens-{layer}") as server:
            return read(layer, server.client)

    def read(layer: int, client) -> list[tuple[LayerStats, float | None, np.ndarray | None]]:
        out = []
        for lens, final in zip(lenses, finals):
            reply = client.next_token(lens.prompt_ids)
            dist = dense_logprobs(reply, n_vocab)
            stats = layer_stats(layer, dist, final, lens.prompt_ids, lens.answer_token, top_k)
            _remember_pieces(pieces, reply, stats)
            margin = None
            if control is not None and lens is lenses[-1] and lenses[0].answer_token is not None:
                margin = float(np.exp(dist[lens.answer_token]) - np.exp(dist[lenses[0].answer_token]))
            state = hidden.remove_gain(client.embeddings(lens.prompt_ids), gain) if with_hidden else None
            out.append((stats, margin, state))
        return out

    layers_read = ((layer, read_layer(layer)) for layer in wanted) if session else in_order(read_layer, wanted, workers)
    for done, (_, rows) in enumerate(layers_read, 1):
        for lens, state, (stats, margin, h) in zip(lenses, states, rows):
            lens.layers.append(stats)
            if margin is not None:
                lens.control_margin = (lens.control_margin or []) + [margin]
            if h is not None:
                state.append(h)
        if on_layer:
            on_layer(done, len(wanted))

    for lens, state, final_state, final in zip(lenses, states, final_states, finals):
        lens.summary = summary_layers(lens.layers)
        if with_hidden:
            lens._states = (state, hidden.remove_gain(final_state, gain), final)  # for _add_tuned, not saved
        if lens.control_margin is not None:
            # "from which it stays positive": early layers give both answers ~1e-12, whose sign is noise
            lens.summary["control_margin_positive_from"] = _positive_from(lens.layers, lens.control_margin)
        if with_hidden:
            by_layer = dict(zip([-1, *wanted], state))
            lens.block_influence = [hidden.block_influence(by_layer[layer - 1], by_layer[layer])
                                    if layer - 1 in by_layer else None for layer in wanted]
            final_state = hidden.remove_gain(final_state, gain)
            lens.cosine_to_final = [hidden.mean_cosine(by_layer[layer], final_state) for layer in wanted]
        if save_hidden is not None:
            save_hidden.mkdir(parents=True, exist_ok=True)
            _save_npy(save_hidden / f"hidden_{_safe(lens.id)}.npy", np.stack(state).astype(np.float32))

    return LensResult(model=str(model), n_layers=n_layers, n_vocab=n_vocab,
                      prompts=lenses[:len(lenses) - bool(control)], control=lenses[-1] if control else None,
                      self_test_kl_bits=max(lens.layers[-1].kl_bits for lens in lenses),
                      seconds=time.monotonic() - start, pieces=pieces)


def _positive_from(layers: Sequence[LayerStats], margins: Sequence[float]) -> int | None:
    """First lensed layer from which every margin up to the last layer is > 0 (None: not even the last)."""
    start = None
    for s, m in zip(layers, margins):
        start = (s.layer if start is None else start) if m > 0 else None
    return start


def _remember_pieces(pieces: dict[int, str], dist, stats: LayerStats) -> None:
    wanted = [i for i, _ in stats.top if i not in pieces]
    hit = np.isin(dist.ids, wanted)
    pieces.update({int(i): t for i, t in zip(dist.ids[hit], np.asarray(dist.tokens, dtype=object)[hit])})


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _save_npy(out: Path, array: np.ndarray) -> None:
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def _add_tuned(result: LensResult, lens, model: Path, wanted: Sequence[int], top_k: int) -> None:
    """The tuned lens at every lensed layer, from the states the logit lens read (last token of each prompt).
    Also checks the numpy head: the original model's own final state through it must give the server's
    final distribution (head_check_kl_bits; quantized matmuls differ by ~1e-3 bits)."""
    from rys.neuro.head import read_head
    from rys.neuro.lens_math import kl_bits
    from rys.neuro.tuned import lens_logprobs

    head = read_head(model)
    checks = []
    for p in result.prompts + ([result.control] if result.control else []):
        states, final_state, final = p.__dict__.pop("_states")
        checks.append(kl_bits(final, lens_logprobs(head, final_state[-1:])[0]))
        p.tuned = []
        for k, layer in enumerate(wanted):
            lp = lens_logprobs(head, states[k + 1][-1:], lens.translator(layer))[0]
            p.tuned.append(layer_stats(layer, lp, final, p.prompt_ids, p.answer_token, top_k))
        p.tuned_summary = summary_layers(p.tuned)
        for s in p.tuned:
            result.pieces.update({i: "" for i, _ in s.top if i not in result.pieces})
    result.head_check_kl_bits = max(checks)
