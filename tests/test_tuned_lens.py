"""Tuned lens against the real llama-server on real models: calibrate, then lens held-out prompts.

The logit lens figures come from the server's own truncated-path distributions; the tuned lens from the
same run's hidden states through the saved translators and the GGUF's head in numpy.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from rys.neuro.calibrate import calibrate
from rys.neuro.lens import probe_prompts, run_lens
from rys.neuro.tuned import LensMismatch, load_lens, save_lens
from rys.probes import load_probe
from rys.server.manager import ServerConfig


@pytest.fixture(scope="session")
def qwen05():
    from conftest import _real

    from rys.models import resolve_model

    return _real("Qwen2.5-Coder-0.5B demo model", lambda: resolve_model("qwen2.5-coder-0.5b", install=False))


def _prompts(limit: int):
    return [p for name in ("math-logprob", "reasoning") for p in probe_prompts(load_probe(name), limit)]


@pytest.mark.parametrize("which", ["smollm2", "qwen05"])
def test_tuned_lens_beats_the_logit_lens_on_held_out_prompts(which, request, llama_server_bin, tmp_path):
    model = request.getfixturevalue(which)
    config = ServerConfig(binary=llama_server_bin, ctx_size=512, extra_args=("--threads", "1"),
                          log_dir=tmp_path / "logs")
    prompts = _prompts(5)  # 10 prompts: 2 held out, 2 to choose the step, 6 to fit
    lens, info = calibrate(model, prompts, config, adam_steps=0, workers=2)
    held = info["held_out"]
    # calibrate's own held-out figures, every token of the held-out prompts
    for layer, logit, tuned in zip(held["layers"][:-1], held["logit_kl_bits"], held["tuned_kl_bits"]):
        assert tuned < logit, (layer, logit, tuned)
    assert held["logit_kl_bits"][-1] < 1e-3 and held["tuned_kl_bits"][-1] < 1e-3

    path = save_lens(lens, tmp_path / "lens.safetensors")
    back = load_lens(path)
    assert back.model_sha256 == lens.model_sha256 and back.info["held_out"] == held
    for layer in range(lens.n_layers):
        assert np.array_equal(back.translator(layer).weight, lens.translator(layer).weight)
        assert np.array_equal(back.translator(layer).bias, lens.translator(layer).bias)

    # rys lens --tuned on the held-out prompts: logit lens from the server, tuned lens from the file
    held_prompts = [prompts[i] for i in info["split"]["held_out"]]
    result = run_lens(model, held_prompts, config, tuned=path, workers=2)
    assert result.head_check_kl_bits < 0.01  # the numpy head reproduces the server's final distribution
    n = len(result.prompts[0].layers)
    logit = [statistics.fmean(p.layers[k].kl_bits for p in result.prompts) for k in range(n)]
    tuned = [statistics.fmean(p.tuned[k].kl_bits for p in result.prompts) for k in range(n)]
    assert all(t < g for t, g in zip(tuned[:-1], logit[:-1])), list(zip(logit, tuned))
    assert logit[-1] < 1e-3 and tuned[-1] < 0.01


def test_a_lens_for_another_model_is_refused(smollm2, llama_server_bin, tmp_path):
    from click.testing import CliRunner

    from rys.cli import main
    from rys.neuro.tuned import Translator, TunedLens

    other = save_lens(TunedLens("0" * 64, "other.gguf", 30, 576, {0: Translator.identity(576)}),
                      tmp_path / "other.safetensors")
    with pytest.raises(LensMismatch, match="another model"):
        run_lens(smollm2, _prompts(1)[:1], ServerConfig(binary=llama_server_bin), tuned=other)
    done = CliRunner().invoke(main, ["lens", str(smollm2), "--prompt", "The capital of France is", "--answer", "Paris",
                                     "--tuned", str(other), "--out", str(tmp_path / "out"),
                                     "--llama-server", str(llama_server_bin)])
    assert done.exit_code != 0 and "another model" in done.output and "Traceback" not in done.output
