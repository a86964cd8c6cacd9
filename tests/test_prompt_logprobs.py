"""Prompt logprobs (vendor/llama.cpp/prompt-logprobs.patch): the REAL patched llama-server scores a
multi-token continuation in the prompt's own forward pass. It must give exactly what evaluating every
prefix from scratch gives, and what one forced request per token gives when both evaluate one position at
a time (-ub 1). (With default batching the forced method evaluates each token alone, which rounds
differently from a batch by up to ~0.2 nats on this CPU: docs/server.md.)

Where real parts are required (CI=true or RYS_REQUIRE_REAL=1) a missing one fails the run; otherwise it skips.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rys.llama.features import PROMPT_LOGPROBS, has_feature
from rys.server import RequestFailed
from rys.server.manager import DEFAULT_PROMPT_WINDOW, LlamaServer, ServerConfig

pytestmark = pytest.mark.server

CASES = [("The capital of France is", " Paris, and the capital of Italy is Rome."),
         ("Question: What is 17 + 25?\nAnswer:", " 42"),
         ("def add(a, b):\n", "    return a + b\n")]


@pytest.fixture
def patched(patched_bin, tmp_path):
    """patched(model, **ServerConfig fields) -> a started patched server; all stopped at teardown."""
    if not has_feature(patched_bin, PROMPT_LOGPROBS):
        pytest.fail(f"{patched_bin} predates prompt-logprobs.patch: run rys setup llama-server --patched")
    started = []

    def start(model: Path, **config) -> LlamaServer:
        config = {"ctx_size": 512, "extra_args": ("-t", "1"), "log_dir": tmp_path / "logs", **config}
        server = LlamaServer(model, ServerConfig(binary=patched_bin, **config), name=f"pl{len(started)}")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def _from_scratch(client, ids: list[int], cont: list[int]) -> list[float]:
    """log P of each continuation token, every prefix evaluated from scratch (no cached prompt)."""
    return [client._complete(ids + cont[:i], n_predict=1, n_probs=1, logit_bias=[[t, 1e9]],
                             cache_prompt=False)["completion_probabilities"][0]["logprob"]
            for i, t in enumerate(cont)]


def _forced(client, prefix: str, continuation: str):
    ids = client.tokenize(prefix, add_special=True)
    cont = client.tokenize(continuation)
    return [client._forced_entry(ids + cont[:i], t) for i, t in enumerate(cont)]


@pytest.mark.parametrize("model", ["smollm2", "gemma3"])
def test_one_request_gives_exactly_what_forcing_each_token_gives(patched, model, request):
    # With -ub 1 every position is evaluated alone in both methods, so any difference would be the
    # mechanism's (wrong position, wrong token, a stale cached value), not rounding: they must agree
    # exactly. gemma3 has sliding-window layers, so the server's SWA checkpoint logic runs too.
    client = patched(request.getfixturevalue(model), extra_args=("-t", "1", "-ub", "1")).client
    for prefix, continuation in CASES:
        one_pass = client.score_continuation(prefix, continuation)
        forced = _forced(client, prefix, continuation)
        assert one_pass.requests == 1
        np.testing.assert_allclose(one_pass.logprobs, [lp for lp, _ in forced], rtol=0, atol=1e-5,
                                   err_msg=f"{model}: {prefix!r} + {continuation!r}")
        assert one_pass.greedy == [top for _, top in forced]


def test_a_continuation_longer_than_the_window_takes_one_request_per_window(patched, smollm2):
    client = patched(smollm2, prompt_logprobs=3).client
    prefix, continuation = CASES[0]
    ids, cont = client.tokenize(prefix, add_special=True), client.tokenize(continuation)
    assert len(cont) > 6
    scored = client.score_continuation(ids, cont)
    assert scored.requests == -(-len(cont) // 3) and len(scored.logprobs) == len(cont)
    assert scored.logprobs == _from_scratch(client, ids, cont)


def test_the_scores_are_the_models(patched, smollm2):
    client = patched(smollm2).client
    # the model's own greedy text is greedy at every token, a changed token is not
    prompt = "The capital of France is"
    ids = client.tokenize(client.generate(prompt, max_tokens=6).text)
    assert all(client.score_continuation(prompt, ids).greedy)
    assert not client.score_continuation(prompt, ids[:2] + [ids[2] + 1] + ids[3:]).greedy[2]
    paris = sum(client.continuation_logprobs(prompt, " Paris"))
    assert paris > sum(client.continuation_logprobs(prompt, " Tokyo"))
    assert all(lp < 0 for lp in client.continuation_logprobs(prompt, " Paris, and"))


def test_a_cached_prompt_is_scored_again_not_read_from_the_cache(patched, smollm2):
    # the second request's whole prompt is in the slot's cache from the first: the scored tail must still
    # be evaluated (a value read from nowhere would be an error, never a number)
    client = patched(smollm2).client
    prefix, continuation = CASES[1]
    first = client.score_continuation(prefix, continuation)
    again = client.score_continuation(prefix, continuation)
    assert again.logprobs == first.logprobs
    ids = client.tokenize(prefix, add_special=True) + client.tokenize(continuation)
    shorter = client.score_continuation(ids[:-1], ids[-1:])  # a prefix of what the cache holds
    assert shorter.logprobs == first.logprobs[-1:]


def test_bad_requests_get_clear_errors(patched, smollm2):
    client = patched(smollm2, prompt_logprobs=4).client
    ids = client.tokenize("One two three four five six", add_special=True)
    too_many = (r"more than this server allows \(4\).*--rys-prompt-logprobs 5 or more"
                r" and a batch size \(-b\) of at least 6")
    with pytest.raises(RequestFailed, match=too_many):
        client._complete(ids, n_predict=1, rys_prompt_logprobs=5)
    with pytest.raises(RequestFailed, match="must be less than the number of prompt tokens"):
        client._complete(ids[:3], n_predict=1, rys_prompt_logprobs=3)
    with pytest.raises(RequestFailed, match="prefix is empty"):
        client.score_continuation([], ids)
    # the server is still fine after refusing
    assert len(client.score_continuation(ids[:-2], ids[-2:]).logprobs) == 2


def test_the_window_follows_the_build_and_the_arguments(patched_bin, llama_server_bin, tmp_path):
    def window(binary, **config):
        server = LlamaServer(tmp_path / "m.gguf", ServerConfig(binary=binary, **config))
        flag = "--rys-prompt-logprobs"
        cmd = server.command(1234)
        return server.prompt_window, (cmd[cmd.index(flag) + 1] if flag in cmd else None)

    assert window(patched_bin) == (DEFAULT_PROMPT_WINDOW, str(DEFAULT_PROMPT_WINDOW))
    assert window(patched_bin, prompt_logprobs=0) == (0, None)
    assert window(patched_bin, prompt_logprobs=8) == (8, "8")
    assert window(patched_bin, extra_args="--rys-prompt-logprobs=5") == (5, None)  # the user's own, once
    assert window(patched_bin, embeddings=True) == (0, None)  # one output row per sequence there
    assert window(patched_bin, extra_args="-b 16") == (15, "15")  # at most one batch of output rows
    assert window(patched_bin, ctx_size=20) == (19, "19")
    assert not has_feature(llama_server_bin, PROMPT_LOGPROBS)
    assert window(llama_server_bin) == (0, None)  # stock: the client forces one token per request


def test_with_rys_cpu_defaults_a_score_does_not_depend_on_what_was_cached(patched, patched_bin, smollm2):
    # With llama-server's default flash attention the CPU kernel makes a token's logprob depend on how the
    # prompt was split into batches: the same continuation moved by up to 1.9 nats on this duplicated path
    # depending on the cached prefix (docs/server.md). rys starts CPU-only servers with -fa off, and then
    # the one-pass score equals evaluating every prefix from scratch, bit for bit.
    from rys.llama.features import cpu_only
    from rys.llama.runtime import runtime_path_args

    # on a GPU build rys leaves flash attention to the user: this test asks for it off itself
    gpu_args = () if cpu_only(patched_bin) else ("-fa", "off")
    server = patched(smollm2, extra_args=("-t", "1", *gpu_args, *runtime_path_args([0, 1, 2, *range(30)])))
    cmd = server.command(0)
    assert cmd[cmd.index("-fa") + 1] == "off"
    client = server.client
    for prefix, continuation in CASES:  # each after the previous case's prompt sat in the cache
        ids, cont = client.tokenize(prefix, add_special=True), client.tokenize(continuation)
        scored = client.score_continuation(ids, cont).logprobs
        assert scored == _from_scratch(client, ids, cont), f"{prefix!r} + {continuation!r}"


def test_slots_scoring_at_once_share_a_batch_without_mixing_their_outputs(patched, smollm2):
    # -b 8: a prompt takes several batches (and a request scores at most 7 tokens). llama-server takes new
    # tasks only between tasks, so: a long prompt keeps slot 0 busy while a short one for slot 1 and a
    # long one for slot 0 queue up; both start together when it ends and share every batch, and each
    # slot must read its own output rows. -ub 1 makes every position's value independent of who shared
    # its batch.
    server = patched(smollm2, slots=2, extra_args=("-t", "1", "-b", "8", "-ub", "1"), keep_logs=True)
    assert server.prompt_window == 7  # one batch of output rows, one of them the sampled token's
    client = server.client
    long_ids = client.tokenize(" ".join(["The capital of France is Paris."] * 10), add_special=True)
    short_ids = client.tokenize(CASES[1][0] + CASES[1][1], add_special=True)

    def score(ids, slot):
        data = client._complete(ids, n_predict=1, rys_prompt_logprobs=6, id_slot=slot, cache_prompt=False)
        return data["rys_prompt_logprobs"]

    alone = [score(short_ids, 1), score(long_ids, 0)]
    with ThreadPoolExecutor(3) as pool:
        busy = pool.submit(score, long_ids, 0)
        time.sleep(0.1)  # the long prompt needs ~10 batches: the server is busy with it
        queued = [pool.submit(score, short_ids, 1), pool.submit(score, long_ids, 0)]
        together = [f.result() for f in queued]
        busy.result()
    assert together == alone
    server.stop()
    # the two slots really did work at the same time: a task started before the other slot's ended
    busy, overlapped = set(), False
    for line in server.log_path.read_text().splitlines():
        slot = line.split("id ", 1)[1].split("|", 1)[0].strip() if " | task " in line else None
        if "processing task" in line:
            overlapped |= bool(busy - {slot})
            busy.add(slot)
        elif "stop processing" in line:
            busy.discard(slot)
    assert overlapped
