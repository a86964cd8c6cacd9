"""Logit lens and hidden states on the real llama-server with the real demo models."""

from __future__ import annotations

import numpy as np
import pytest

from rys.neuro import NeuroError, hidden
from rys.neuro.lens import LensPrompt, dense_logprobs, run_lens
from rys.neuro.lens_math import entropy_bits, kl_bits


@pytest.fixture
def config(llama_server_bin, tmp_path):
    from rys.server import ServerConfig

    return ServerConfig(binary=llama_server_bin, ctx_size=128, log_dir=tmp_path / "logs")


@pytest.fixture
def store(tmp_path):
    from rys.gguf import LayerStore

    return LayerStore(tmp_path / "store")


PARIS = LensPrompt("paris", "The capital of France is", "Paris")


def _check_last_layer_is_the_model(result, serve, model):
    """The last truncated path runs every layer: its distribution must be the original model's."""
    assert result.self_test_passed and result.self_test_kl_bits < 1e-3
    lens = result.prompts[0]
    last = lens.layers[-1]
    final = dense_logprobs(serve(model).client.next_token(lens.prompt_ids), result.n_vocab)
    assert last.entropy_bits == pytest.approx(entropy_bits(final), abs=1e-3)
    assert last.top[0][0] == int(np.argmax(final))
    assert last.answer_prob == pytest.approx(float(np.exp(final[lens.answer_token])), rel=1e-3)


def test_lens_smollm2_last_layer_reproduces_model_and_early_layers_differ(smollm2, config, store, serve):
    control = LensPrompt("control", "The capital of Germany is", "Berlin")
    result = run_lens(smollm2, [PARIS], config, control=control, layers=[3], store=store)
    lens = result.prompts[0]
    assert [s.layer for s in lens.layers] == [3, 29]  # the last layer is always read
    assert result.n_vocab == 49152 and lens.answer_piece == " Paris"
    _check_last_layer_is_the_model(result, serve, smollm2)
    early = lens.layers[0]
    assert early.kl_bits > 1.0 and early.answer_rank > 10  # a 4-layer model is far from the full one
    assert lens.layers[-1].answer_rank == 1 and lens.summary["semantic_collapse"] == 29
    assert lens.summary["first_kl_below_0.5"] == 29
    assert len(result.control.control_margin) == 2 and result.control.control_margin[-1] > 0  # Berlin wins there


def test_lens_gemma3_last_layer_reproduces_model(gemma3, config, store, serve):
    result = run_lens(gemma3, [PARIS], config, layers=[], store=store)  # last layer only: 262144 tokens
    assert result.n_vocab == 262144
    _check_last_layer_is_the_model(result, serve, gemma3)


def test_hidden_states_block_influence_matches_numpy(smollm2, config, store, serve, tmp_path):
    prompt = LensPrompt("two", "One plus one equals", "two")
    result = run_lens(smollm2, [prompt], config, layers=[0, 1, 2], store=store, save_hidden=tmp_path / "hidden")
    saved = np.load(tmp_path / "hidden" / "hidden_two.npy")
    lens = result.prompts[0]
    assert saved.shape == (5, len(lens.prompt_ids), 576)  # token embedding, layers 0, 1, 2 and 29
    # block influence straight from the saved states, in plain numpy: layers 0..2 have their input state
    a, b = saved[:3].astype(np.float64), saved[1:4].astype(np.float64)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    assert lens.block_influence[:3] == pytest.approx(list(1 - cos.mean(axis=1)), abs=1e-6)
    assert lens.block_influence[3] is None  # layer 28 was not read
    assert all(0 < v < 2 for v in lens.block_influence[:3])
    assert lens.cosine_to_final[-1] == pytest.approx(1.0) and lens.cosine_to_final[0] < 0.9
    # the last saved state, times the final-norm gain, is what the full model's /embeddings returns
    from rys.gguf.source import open_source

    gain = hidden.read_gain(open_source(smollm2))
    full = serve(smollm2, embeddings=True).client.embeddings(lens.prompt_ids)
    assert saved[-1] * gain == pytest.approx(full, abs=1e-4)
    assert result.self_test_kl_bits < 1e-3


def test_lens_refuses_bad_requests(smollm2, config):
    with pytest.raises(NeuroError, match="no prompts"):
        run_lens(smollm2, [], config)
    with pytest.raises(NeuroError, match="outside"):
        run_lens(smollm2, [PARIS], config, layers=[30])


def test_kl_of_real_distributions_is_consistent(smollm2, serve):
    """KL computed from two real server answers: zero to itself, positive to another prompt's."""
    client = serve(smollm2).client
    p = dense_logprobs(client.next_token("The capital of France is"), 49152)
    q = dense_logprobs(client.next_token("The capital of Italy is"), 49152)
    assert kl_bits(p, p) == 0.0 and kl_bits(p, q) > 0.01
    assert 0 < entropy_bits(p) < np.log2(49152)


def test_lens_command_on_a_probe(smollm2, llama_server_bin, tmp_path, monkeypatch):
    monkeypatch.setenv("RYS_STORE_DIR", str(tmp_path / "store"))  # never the shared default store
    import json

    from click.testing import CliRunner

    from rys.cli import main

    probe = tmp_path / "one.json"
    probe.write_text(json.dumps({"name": "one", "description": "one item", "scorer": "continuation", "chat": True,
                                 "answer_prefix": "The answer is",
                                 "items": [{"id": "fr", "prompt": "Name the capital of France.", "answer": "Paris"}]}))
    out = tmp_path / "lens"
    done = CliRunner().invoke(main, ["lens", str(smollm2), "--probe", str(probe), "--layers", "20",
                                     "--llama-server", str(llama_server_bin), "--ctx-size", "128", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "self-test" in done.output and "passed" in done.output
    data = json.loads((out / "lens.json").read_text())
    (item,) = data["prompts"]
    assert item["text"].endswith("<|im_start|>assistant\nThe answer is")  # chat template, then the prefix
    assert item["answer_piece"] == " Paris" and [layer["layer"] for layer in item["layers"]] == [20, 29]
    assert (out / "lens.csv").read_text().count("\n") == 3 and (out / "lens_heatmap.png").exists()
