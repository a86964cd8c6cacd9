"""LlamaClient against one real llama-server (SmolLM2, 2 slots, embeddings on), shared by this module."""

from __future__ import annotations

import numpy as np
import pytest

from rys.server import LlamaClient, LlamaServer, RequestFailed, ServerConfig, ServerCrashed
from rys.server.ports import free_port

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def client(llama_server_bin, smollm2, tmp_path_factory):
    config = ServerConfig(llama_server_bin, ctx_size=256, slots=2, embeddings=True,
                          log_dir=tmp_path_factory.mktemp("client-logs"))
    with LlamaServer(smollm2, config, name="client-tests") as server:
        yield server.client


@pytest.fixture(scope="module")
def full(client):
    return client.next_token(PROMPT)


def test_props(client):
    props = client.props()
    assert (props.n_vocab, props.n_embd, props.total_slots, props.n_ctx) == (49152, 576, 2, 256)
    assert "<|im_start|>" in props.chat_template


def test_full_vocabulary_sums_to_one(full):
    assert full.full and len(full.ids) == 49152 and len(set(full.ids.tolist())) == 49152
    assert full.mass() == pytest.approx(1.0, abs=2e-3)
    assert np.all(np.diff(full.logprobs) <= 0)  # best first
    assert full.tokens[0] == " Paris"


def test_top_k_is_the_head_of_the_full_distribution(client, full):
    top = client.next_token(PROMPT, top_k=10)
    assert not top.full and top.ids.tolist() == full.ids[:10].tolist()
    np.testing.assert_allclose(top.logprobs, full.logprobs[:10], atol=1e-5)


def test_token_id_prompt_equals_string_prompt(client, full):
    ids = client.tokenize(PROMPT, add_special=True)
    same = client.next_token(ids, top_k=5)
    np.testing.assert_allclose(same.logprobs, full.logprobs[:5], atol=1e-4)


def test_token_logprobs_exact_inside_and_outside_top_k(client, full):
    # ranks 1, 40, 5000 and 45000: the last two need the forced-token method
    wanted = [int(full.ids[r]) for r in (0, 39, 4999, 44999)]
    got = client.token_logprobs(PROMPT, wanted)
    assert list(got) == wanted
    for t in wanted:
        assert got[t] == pytest.approx(full.logprob_of(t), abs=1e-3)


def test_continuation_equals_sum_of_full_distributions(client):
    prefix = client.tokenize(PROMPT, add_special=True)
    cont = client.tokenize(" Paris, and")
    per_token = client.continuation_logprobs(prefix, cont)
    reference = [client.next_token(prefix + cont[:i]).logprob_of(t) for i, t in enumerate(cont)]
    np.testing.assert_allclose(per_token, reference, atol=1e-3)
    assert sum(per_token) == pytest.approx(sum(reference), abs=4e-3)
    assert all(lp < 0 for lp in per_token)
    # strings give the same tokens, so the same values
    np.testing.assert_allclose(client.continuation_logprobs(PROMPT, " Paris, and"), per_token, atol=1e-3)


def test_chat_template(client):
    chat = client.format_prompt("What is the capital of France?", chat=True)
    assert chat.startswith("<|im_start|>system") and chat.endswith("<|im_start|>assistant\n")
    assert client.format_prompt("x", chat=False) == "x"
    assert client.tokenize("<|im_start|>")[0] == client.tokenize(chat)[0]  # special tokens parsed
    assert client.next_token(chat, top_k=1).ids[0] != client.next_token("What is the capital of France?", 1).ids[0]


def test_tokenize_roundtrip(client):
    ids = client.tokenize("Hello world, 123!")
    assert ids and all(isinstance(i, int) for i in ids)
    assert client.detokenize(ids) == "Hello world, 123!"


def test_generate_greedy_with_stop_and_limit(client):
    prompt = client.format_prompt("Count from 1 to 20, separated by commas.", chat=True)
    long = client.generate(prompt, max_tokens=12)
    assert long.stop_type == "limit" and long.n_tokens == 12
    assert client.generate(prompt, max_tokens=12) == long  # greedy: deterministic
    stop_at = long.text[len(long.text) // 2:][:2]
    short = client.generate(prompt, max_tokens=12, stop=[stop_at])
    assert short.stop_type == "word" and stop_at not in short.text and long.text.startswith(short.text)


def test_embeddings_per_token(client):
    hidden = client.embeddings("Hello world")
    assert hidden.shape == (len(client.tokenize("Hello world", add_special=True)), 576)
    assert np.isfinite(hidden).all() and not np.allclose(hidden[0], hidden[-1])


def test_map_parallel_in_input_order(client):
    prompts = [f"{n} plus {n} equals" for n in range(1, 7)]
    parallel = client.map(lambda p: client.next_token(p, top_k=3), prompts)
    serial = [client.next_token(p, top_k=3) for p in prompts]
    for a, b in zip(parallel, serial):
        assert a.ids.tolist() == b.ids.tolist()
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-3)


def test_map_raises_the_first_failure(client):
    def fn(n):
        return client.token_logprobs(PROMPT, [n])

    with pytest.raises(RequestFailed, match="outside the vocabulary"):
        client.map(fn, [1, 2, 10**9, 3])


def test_bad_requests_raise_never_score(client):
    with pytest.raises(RequestFailed, match="outside the vocabulary"):
        client.token_logprobs(PROMPT, [49152])
    with pytest.raises(RequestFailed):
        client.next_token("word " * 400, top_k=1)  # longer than the 256-token slot context
    with pytest.raises(RequestFailed):
        client.next_token("", top_k=1)


def test_no_server_at_url():
    lone = LlamaClient(f"http://127.0.0.1:{free_port()}", retries=1)
    with pytest.raises(ServerCrashed, match="no llama-server answers"):
        lone.tokenize("x")
