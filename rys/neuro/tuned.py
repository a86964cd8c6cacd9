"""Tuned lens (Belrose et al. 2023): one affine translator per layer, trained so that the translated state,
put through the model's own final norm and head, predicts the model's final next-token distribution.

What a translator sees: llama-server's /embeddings of a truncated path is RMSNorm(h) x gain, so the gain
divided out leaves u = h / rms(h), the residual direction (rys.neuro.hidden). The translator acts on u:
lens(u) = head(RMSNorm(A u + b) x gain). With A = I, b = 0 this is the logit lens exactly, so training
starts from it (identity initialisation) and only moves where that lowers the KL.

Fit per layer, in float32 numpy (rys calibrate, rys.neuro.calibrate):
1. ridge least squares A_ls, b_ls from u_L to u_final on the fit tokens (cheap: a D x D solve), for
   a light and a strong ridge;
2. from the identity, a line search along each (A_ls - I, b_ls): the step (and ridge) with the lowest
   mean KL(P_final || P_lens) on the selection tokens (training prompts the fit did not use; with few
   prompts a full step overfits the late layers, where the logit lens is already close);
3. Adam steps on the KL over the fit tokens, each kept only if the selection KL goes down. The
   gradient is taken over the tokens that matter on the fit rows (the union of each row's top tokens
   under the final distribution and under the current lens, renormalized), which makes a step ~10-30x
   cheaper than over the whole vocabulary; whether a step is kept is decided on the exact, full
   vocabulary selection KL, so the approximation can slow the fit but never make it worse.
A layer where nothing beats the identity keeps the identity; the last layer always does (it is the
final distribution). The held-out prompts are used by neither step: they give the reported figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rys.neuro import NeuroError
from rys.neuro.head import Head, log_softmax

FORMAT = "rys-tuned-lens/1"
LN2 = float(np.log(2.0))
CHUNK = 256  # rows per full-vocabulary matmul: bounds memory at CHUNK x n_vocab floats


class LensMismatch(NeuroError):
    """A tuned lens file that does not belong to the model it is used with."""


def rms_normalize(x: np.ndarray, eps: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)


def kl_rows_bits(p_log: np.ndarray, q_log: np.ndarray) -> np.ndarray:
    """KL(P || Q) in bits for each row of two [n, V] log-probability arrays."""
    p = np.exp(p_log)
    return np.maximum(0.0, (p * (p_log - q_log)).sum(axis=-1) / LN2)


@dataclass
class Translator:
    weight: np.ndarray  # A, [n_embd, n_embd]
    bias: np.ndarray  # b, [n_embd]

    @classmethod
    def identity(cls, n_embd: int) -> Translator:
        return cls(np.eye(n_embd, dtype=np.float32), np.zeros(n_embd, dtype=np.float32))

    def apply(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(u, dtype=np.float32) @ self.weight.T + self.bias

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.weight, np.eye(len(self.bias), dtype=self.weight.dtype))
                    and not self.bias.any())


def lens_logprobs(head: Head, u: np.ndarray, translator: Translator | None = None) -> np.ndarray:
    """Next-token log-probabilities of states u (gain removed) through the translator and the model's head."""
    x = u if translator is None else translator.apply(u)
    return head.logprobs(rms_normalize(x, head.eps) * head.gain)


def mean_kl(head: Head, u: np.ndarray, final_log: np.ndarray, translator: Translator | None = None) -> float:
    return float(np.concatenate([kl_rows_bits(final_log[i:i + CHUNK], lens_logprobs(head, u[i:i + CHUNK], translator))
                                 for i in range(0, len(u), CHUNK)]).mean()) if len(u) else float("nan")


def final_logprobs(head: Head, u_final: np.ndarray) -> np.ndarray:
    """The model's own distribution at each row (the state after its last layer, gain removed)."""
    return np.concatenate([lens_logprobs(head, u_final[i:i + CHUNK]) for i in range(0, len(u_final), CHUNK)])


def least_squares(u: np.ndarray, target: np.ndarray, ridge: float) -> Translator:
    """argmin ||u A^T + b - target||^2 + ridge * mean(diag(X^T X)) * ||A||^2 (X = u centred)."""
    u64, t64 = np.asarray(u, dtype=np.float64), np.asarray(target, dtype=np.float64)
    mu, mt = u64.mean(axis=0), t64.mean(axis=0)
    x, y = u64 - mu, t64 - mt
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += ridge * max(float(np.trace(gram)) / len(gram), 1e-12)
    a_t = np.linalg.solve(gram, x.T @ y)  # A^T
    weight = a_t.T
    return Translator(weight.astype(np.float32), (mt - mu @ a_t).astype(np.float32))


def _blend(t: float, ls: Translator) -> Translator:
    n = len(ls.bias)
    eye = np.eye(n, dtype=np.float32)
    return Translator((eye + t * (ls.weight - eye)).astype(np.float32), (t * ls.bias).astype(np.float32))


def top_vocab(logprobs: np.ndarray, k: int) -> np.ndarray:
    """Sorted union of every row's k most probable token ids."""
    k = min(k, logprobs.shape[-1])
    return np.unique(np.argpartition(-logprobs, k - 1, axis=-1)[:, :k])


def restricted_head(head: Head, ids: np.ndarray) -> Head:
    return Head(head.weight[ids], head.gain, head.eps, head.softcap)


def kl_gradient(head: Head, u: np.ndarray, final_log: np.ndarray, tr: Translator) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean KL(P_final || P_lens) in bits over the rows of u and its gradient wrt A and b (final_log and the
    head over the same vocabulary)."""
    grad_w = np.zeros_like(tr.weight)
    grad_b = np.zeros_like(tr.bias)
    total, n = 0.0, len(u)
    for i in range(0, n, CHUNK):
        uc = np.asarray(u[i:i + CHUNK], dtype=np.float32)
        x = tr.apply(uc)
        r = np.sqrt((x * x).mean(axis=-1, keepdims=True) + head.eps)
        normed = x / r
        z = (normed * head.gain) @ head.weight.T
        if head.softcap:
            capped = np.tanh(z / head.softcap)
            z = head.softcap * capped
        q_log = log_softmax(z)
        p_log = final_log[i:i + CHUNK]
        total += float(kl_rows_bits(p_log, q_log).sum())
        dz = (np.exp(q_log) - np.exp(p_log)) / (n * LN2)  # d(mean KL bits)/dz
        if head.softcap:
            dz = dz * (1.0 - capped * capped)
        dn = (dz @ head.weight) * head.gain
        dx = (dn - normed * (dn * normed).mean(axis=-1, keepdims=True)) / r
        grad_w += dx.T @ uc
        grad_b += dx.sum(axis=0)
    return total / n, grad_w, grad_b


@dataclass
class LayerFit:
    layer: int
    translator: Translator
    step: float  # the line-search step along the least-squares direction (0: identity)
    adam_steps: int  # accepted gradient steps
    selection_kl: float  # mean KL on the selection tokens, bits
    identity_selection_kl: float


def fit_layer(layer: int, head: Head, u_fit: np.ndarray, u_final_fit: np.ndarray, fit_log: np.ndarray,
              u_sel: np.ndarray, sel_log: np.ndarray, *, ridges: Sequence[float] = (0.1, 1.0),
              steps_grid: Sequence[float] = (0.25, 0.5, 0.75, 1.0), adam_steps: int = 8,
              lr: float = 5e-4, top_k: int = 32) -> LayerFit:
    """One layer's translator (see the module docstring); fit_log / sel_log are the final distributions
    of the fit rows (a subsample of u_fit's rows: the first len(fit_log)) and of the selection rows."""
    identity = Translator.identity(head.n_embd)
    best, best_kl, best_t = identity, mean_kl(head, u_sel, sel_log, identity), 0.0
    identity_kl = best_kl
    for ridge in ridges:
        ls = least_squares(u_fit, u_final_fit, ridge)
        for t in steps_grid:
            candidate = _blend(t, ls)
            kl = mean_kl(head, u_sel, sel_log, candidate)
            if kl < best_kl:
                best, best_kl, best_t = candidate, kl, t
    accepted = 0
    if adam_steps:
        tr = Translator(best.weight.copy(), best.bias.copy())
        m = [np.zeros_like(tr.weight), np.zeros_like(tr.bias)]
        v = [np.zeros_like(tr.weight), np.zeros_like(tr.bias)]
        u_sub = u_fit[:len(fit_log)]
        ids = np.union1d(top_vocab(fit_log, top_k), top_vocab(
            np.concatenate([lens_logprobs(head, u_sub[i:i + CHUNK], tr) for i in range(0, len(u_sub), CHUNK)]), top_k))
        small = restricted_head(head, ids)
        sub_log = log_softmax(fit_log[:, ids])
        for k in range(1, adam_steps + 1):
            _, gw, gb = kl_gradient(small, u_sub, sub_log, tr)
            for j, g in enumerate((gw, gb)):
                m[j] = 0.9 * m[j] + 0.1 * g
                v[j] = 0.999 * v[j] + 0.001 * g * g
            for j, p in enumerate((tr.weight, tr.bias)):
                p -= lr * (m[j] / (1 - 0.9 ** k)) / (np.sqrt(v[j] / (1 - 0.999 ** k)) + 1e-8)
            kl = mean_kl(head, u_sel, sel_log, tr)
            if kl < best_kl:
                best, best_kl, accepted = Translator(tr.weight.copy(), tr.bias.copy()), kl, k
    return LayerFit(layer, best, best_t, accepted, best_kl, identity_kl)


@dataclass
class TunedLens:
    """Translators by layer (a layer missing from `translators` is the identity) plus where they came from."""

    model_sha256: str
    model_name: str
    n_layers: int
    n_embd: int
    translators: dict[int, Translator]
    info: dict = field(default_factory=dict)  # calibration data, split, held-out figures

    def translator(self, layer: int) -> Translator:
        return self.translators.get(layer) or Translator.identity(self.n_embd)

    def check_model(self, model: str | Path, sha256: str | None = None) -> None:
        from rys.gguf.provenance import file_sha256

        actual = sha256 or file_sha256(model)
        if actual != self.model_sha256:
            raise LensMismatch(f"this tuned lens was calibrated on another model ({self.model_name}, sha256 "
                               f"{self.model_sha256[:12]}...), not on {Path(model).name} (sha256 {actual[:12]}...)",
                               f"calibrate one for this model: rys calibrate {model} --probe reasoning --out LENS")


def save_lens(lens: TunedLens, out: Path) -> Path:
    """safetensors: layers.<L>.weight / layers.<L>.bias, the model's sha256 and the rest in the metadata."""
    from safetensors.numpy import save

    from rys.outputs import save_bytes

    tensors = {}
    for layer, tr in sorted(lens.translators.items()):
        tensors[f"layers.{layer}.weight"] = np.ascontiguousarray(tr.weight, dtype=np.float32)
        tensors[f"layers.{layer}.bias"] = np.ascontiguousarray(tr.bias, dtype=np.float32)
    meta = {"format": FORMAT, "model_sha256": lens.model_sha256, "model_name": lens.model_name,
            "n_layers": str(lens.n_layers), "n_embd": str(lens.n_embd), "info": json.dumps(lens.info)}
    return save_bytes(save(tensors, metadata=meta), Path(out))


def load_lens(path: str | Path) -> TunedLens:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise NeuroError(f"tuned lens file not found: {path}", "make one with: rys calibrate MODEL --probe P --out LENS")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - a safetensors handle, not a dict
    except (SafetensorError, OSError, ValueError) as err:
        raise NeuroError(f"{path} is not a tuned lens file ({err})",
                         "pass a file written by rys calibrate") from None
    if meta.get("format") != FORMAT:
        raise NeuroError(f"{path} is not a tuned lens file (format {meta.get('format')!r}, expected {FORMAT!r})",
                         "pass a file written by rys calibrate")
    layers = sorted({int(k.split(".")[1]) for k in arrays})
    translators = {layer: Translator(arrays[f"layers.{layer}.weight"], arrays[f"layers.{layer}.bias"])
                   for layer in layers}
    return TunedLens(meta["model_sha256"], meta.get("model_name", ""), int(meta["n_layers"]), int(meta["n_embd"]),
                     translators, json.loads(meta.get("info", "{}")))


def fit_lens(head: Head, states: dict[int, Sequence[np.ndarray]], split: dict[str, list[int]], *,
             max_fit_rows: int = 384, max_sel_rows: int = 192, adam_steps: int = 8,
             seed: int = 0, on_layer: Callable[[int, int], None] | None = None) -> tuple[dict[int, LayerFit], dict]:
    """Fit every layer but the last from per-prompt states (layer -> [prompt] -> [tokens, n_embd], gain
    removed, first position dropped by the caller); `split` lists prompt indexes for "fit", "select" and
    "held_out". Returns the fits and the held-out figures (mean KL per layer, logit vs tuned lens)."""
    last = max(states)
    rng = np.random.default_rng(seed)

    def rows(layer: int, part: str) -> np.ndarray:
        return np.concatenate([states[layer][i] for i in split[part]]).astype(np.float32)

    def pick(n: int, limit: int) -> np.ndarray:
        return np.sort(rng.choice(n, size=limit, replace=False)) if n > limit else np.arange(n)

    final_fit_all, final_sel_all = rows(last, "fit"), rows(last, "select")
    fit_idx, sel_idx = pick(len(final_fit_all), max_fit_rows), pick(len(final_sel_all), max_sel_rows)
    fit_log = final_logprobs(head, final_fit_all[fit_idx])
    sel_log = final_logprobs(head, final_sel_all[sel_idx])
    held_final = rows(last, "held_out")
    held_log = final_logprobs(head, held_final)
    fits: dict[int, LayerFit] = {}
    held: dict[str, list] = {"layers": [], "logit_kl_bits": [], "tuned_kl_bits": []}
    layers = sorted(states)
    for done, layer in enumerate(layers, 1):
        u_fit_all = rows(layer, "fit")
        if layer == last:
            fit = LayerFit(layer, Translator.identity(head.n_embd), 0.0, 0, 0.0, 0.0)
        else:
            # the subsample first, so its rows line up with fit_log; least squares uses every fit row
            order = np.concatenate([fit_idx, np.setdiff1d(np.arange(len(u_fit_all)), fit_idx)])
            fit = fit_layer(layer, head, u_fit_all[order], final_fit_all[order], fit_log,
                            rows(layer, "select")[sel_idx], sel_log, adam_steps=adam_steps)
        fits[layer] = fit
        u_held = rows(layer, "held_out")
        held["layers"].append(layer)
        held["logit_kl_bits"].append(mean_kl(head, u_held, held_log))
        held["tuned_kl_bits"].append(mean_kl(head, u_held, held_log, fit.translator))
        if on_layer:
            on_layer(done, len(layers))
    held["tokens"] = len(held_final)
    return fits, held
