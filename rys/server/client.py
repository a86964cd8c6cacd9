"""HTTP client for one llama-server: next-token distributions, exact token log-probabilities,
greedy generation, tokenization and hidden states.

A request either returns what was asked or raises a ServerError: transient HTTP errors are retried a
bounded number of times, a dead server raises ServerCrashed (with its log tail) at once. A failure is
never turned into a number.

Exact log P(token | prefix) for a token outside the top-k: stock llama-server reports no prompt-token
logprobs, so the token is forced as the next token with a huge logit bias; the logprob it reports for
the sampled token is the unbiased pre-sampling value. With cache_prompt only the last token is
re-evaluated, so each forced token costs one token of compute and one request.

A multi-token continuation on a server built with vendor/llama.cpp/prompt-logprobs.patch is scored in
one request instead: the continuation goes in the prompt and the server returns each of its tokens'
log P from the prompt's own forward pass (the same softmax as a sampled token's logprob).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests

from rys.server.failures import PathSwitchRefused, RequestFailed, ServerCrashed
from rys.server.thinking import split_thinking

Prompt = str | Sequence[int]

TRANSIENT_STATUS = {502, 503, 504}
FORCE_BIAS = 1e9
TOP_K_FIRST = 64  # token_logprobs asks for this many top tokens before forcing the rest


@dataclass(frozen=True)
class TokenDist:
    """A next-token distribution (top-k or the full vocabulary), sorted by logprob, best first."""

    ids: np.ndarray  # int64 [k]
    logprobs: np.ndarray  # float64 [k], natural log; -inf where the server reported no value
    tokens: list[str]
    n_vocab: int
    timings: dict = field(default_factory=dict, repr=False, compare=False)  # llama-server's, for this request

    @property
    def full(self) -> bool:
        return len(self.ids) == self.n_vocab

    @property
    def probs(self) -> np.ndarray:
        return np.exp(self.logprobs)

    def logprob_of(self, token_id: int) -> float | None:
        """The token's logprob, or None when it is not among the listed tokens (use token_logprobs)."""
        hit = np.flatnonzero(self.ids == token_id)
        return float(self.logprobs[hit[0]]) if hit.size else None

    def top(self, k: int) -> list[tuple[int, str, float]]:
        return [(int(i), t, float(lp)) for i, t, lp in zip(self.ids[:k], self.tokens[:k], self.logprobs[:k])]

    def mass(self, token_ids: Iterable[int] | None = None) -> float:
        """Probability mass of the given tokens that are listed (all listed tokens when None)."""
        if token_ids is None:
            return float(self.probs.sum())
        return float(self.probs[np.isin(self.ids, np.fromiter(token_ids, dtype=np.int64))].sum())


@dataclass(frozen=True)
class ContinuationScore:
    """log P of each continuation token given everything before it, and whether it was the most likely
    token there (greedy decoding would have produced it)."""

    logprobs: list[float]
    greedy: list[bool]
    requests: int = 0  # how many completion requests the scoring took


@dataclass(frozen=True)
class Generation:
    text: str  # everything the model produced (stop string excluded)
    answer: str  # text without the thinking block(s)
    thinking: str  # "" when the model did not think aloud
    stop_type: str = ""  # "eos", "word" (a stop string), "limit" (max_tokens)
    n_tokens: int = 0


@dataclass(frozen=True)
class ServerProps:
    model_path: str
    n_ctx: int  # per slot
    n_ctx_train: int
    n_vocab: int
    n_embd: int
    total_slots: int
    chat_template: str
    build_info: str
    raw: dict = field(repr=False, compare=False)


class LlamaClient:
    """Talks to the llama-server at base_url. `server` (a LlamaServer) lets a failed request tell a dead
    server (ServerCrashed with its log) from a transient error."""

    def __init__(self, base_url: str, server=None, timeout: float = 600.0, retries: int = 3):
        self.base_url = base_url.rstrip("/")
        self.server = server
        self.timeout = timeout
        self.retries = retries
        self._local = threading.local()
        self._props: ServerProps | None = None
        # added to every /completion request, e.g. rys_capture_layers or rys_resume_layer (prefix-resume.patch)
        self.request_fields: dict = {}

    # -- server info and tokens -------------------------------------------------------------------

    def props(self) -> ServerProps:
        if self._props is None:
            raw = self._request("GET", "/props")
            meta = self._request("GET", "/v1/models")["data"][0]["meta"]
            self._props = ServerProps(
                model_path=raw.get("model_path", ""), n_ctx=int(raw["default_generation_settings"]["n_ctx"]),
                n_ctx_train=int(meta["n_ctx_train"]), n_vocab=int(meta["n_vocab"]), n_embd=int(meta["n_embd"]),
                total_slots=int(raw.get("total_slots", 1)), chat_template=raw.get("chat_template", ""),
                build_info=raw.get("build_info", ""), raw=raw)
        return self._props

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        """Token ids; special-token text such as <|im_start|> is parsed as the special token."""
        return self._request("POST", "/tokenize", {"content": text, "add_special": add_special})["tokens"]

    def detokenize(self, ids: Sequence[int]) -> str:
        return self._request("POST", "/detokenize", {"tokens": [int(i) for i in ids]})["content"]

    def format_prompt(self, text: str, chat: bool) -> str:
        """The text as a single user turn in the model's chat template (with the assistant prefix), or as is."""
        if not chat:
            return text
        return self._request("POST", "/apply-template", {"messages": [{"role": "user", "content": text}]})["prompt"]

    def set_layer_path(self, path: Sequence[int]) -> float:
        """Make a server built with vendor/llama.cpp/path-switch.patch run another layer path from the next
        request on, without reloading the model; every cached prompt is dropped. Returns the milliseconds
        the server took. PathSwitchRefused: the path does not fit the KV cache made for the path the
        server started with (longer, or another KV shape or sliding window at some position); the server
        then still runs its old path."""
        from rys.paths import format_path

        path = [int(p) for p in path]
        try:
            data = self._request("POST", "/rys/layer-path", {"path": format_path(path)})
        except RequestFailed as err:
            if err.status == 400:
                raise PathSwitchRefused(f"llama-server refused to switch to layer path {format_path(path)}: "
                                        f"{err.message.split(': ', 1)[-1]}",
                                        "start a server with this path instead") from None
            raise
        if int(data.get("n_layer", -1)) != len(path):
            raise RequestFailed(f"llama-server reports {data.get('n_layer')} executed layers after switching to "
                                f"a path of {len(path)}", "use a llama-server built with rys's current patches")
        return float(data.get("t_ms", 0.0))

    # -- scoring ----------------------------------------------------------------------------------

    def next_token(self, prompt: Prompt, top_k: int | None = None) -> TokenDist:
        """Distribution of the token after the prompt: the top_k most likely, or all (top_k=None).
        The full vocabulary costs a JSON answer of ~100 bytes per token (Gemma 3: 262144 tokens)."""
        n_vocab = self.props().n_vocab
        n = n_vocab if top_k is None else min(int(top_k), n_vocab)
        if n < 1:
            raise RequestFailed(f"top_k must be at least 1, got {top_k}", "pass top_k >= 1, or None for all")
        data = self._complete(prompt, n_predict=1, n_probs=n)
        top = self._first_token(data)["top_logprobs"]
        if len(top) != n:
            raise RequestFailed(f"asked llama-server for {n} token logprobs and got {len(top)}",
                                "check that the server build supports n_probs")
        return TokenDist(ids=np.fromiter((t["id"] for t in top), dtype=np.int64, count=n),
                         logprobs=np.fromiter((_logprob(t) for t in top), dtype=np.float64, count=n),
                         tokens=[t["token"] for t in top], n_vocab=n_vocab, timings=data.get("timings", {}))

    def token_logprobs(self, prompt: Prompt, token_ids: Iterable[int]) -> dict[int, float]:
        """Exact log P(token | prompt) for each token: read from the top-k answer where it holds the
        token, forced with a logit bias otherwise (one cached one-token evaluation each)."""
        ids = list(dict.fromkeys(int(t) for t in token_ids))
        n_vocab = self.props().n_vocab
        bad = [t for t in ids if not 0 <= t < n_vocab]
        if bad:
            raise RequestFailed(f"token ids {bad} are outside the vocabulary (0..{n_vocab - 1})",
                                "get token ids from tokenize() of this model")
        if not ids:
            return {}
        dist = self.next_token(prompt, top_k=max(TOP_K_FIRST, len(ids)))
        out = {}
        for t in ids:
            lp = dist.logprob_of(t)
            out[t] = lp if lp is not None else self._forced(prompt, t)
        return out

    def continuation_logprobs(self, prefix: Prompt, continuation: str | Sequence[int]) -> list[float]:
        """log P of each continuation token given the prefix and the continuation tokens before it.
        Strings are tokenized separately (the prefix with the model's special tokens, e.g. BOS)."""
        return self.score_continuation(prefix, continuation).logprobs

    def score_continuation(self, prefix: Prompt, continuation: str | Sequence[int]) -> ContinuationScore:
        """continuation_logprobs plus greedy flags: one request per `prompt_window` tokens on a server
        that scores prompt tokens, one forced request per token otherwise."""
        prefix_ids = self._ids(prefix, add_special=True)
        cont_ids = self._ids(continuation, add_special=False)
        if not prefix_ids and cont_ids:
            raise RequestFailed("the prefix is empty, so the first continuation token has no context to be "
                                "scored in", "give a non-empty prefix (or a model that adds a BOS token)")
        window = self.prompt_window
        if window <= 0:
            forced = [self._forced_entry(prefix_ids + cont_ids[:i], t) for i, t in enumerate(cont_ids)]
            return ContinuationScore([lp for lp, _ in forced], [top for _, top in forced], len(forced))
        logprobs, greedy, requests = [], [], 0
        for start in range(0, len(cont_ids), window):
            end = min(start + window, len(cont_ids))
            data = self._complete(prefix_ids + cont_ids[:end], n_predict=1, rys_prompt_logprobs=end - start)
            requests += 1
            lps, tops = data.get("rys_prompt_logprobs"), data.get("rys_prompt_top_logprobs")
            if lps is None or tops is None or len(lps) != end - start or len(tops) != end - start:
                raise RequestFailed(f"asked llama-server for {end - start} prompt logprobs and got "
                                    f"{'none' if lps is None else len(lps)}",
                                    "use a llama-server built with vendor/llama.cpp/prompt-logprobs.patch, "
                                    "or set ServerConfig(prompt_logprobs=0)")
            logprobs += [float(v) for v in lps]
            greedy += [float(top) <= float(v) for v, top in zip(lps, tops)]
        return ContinuationScore(logprobs, greedy, requests)

    @property
    def prompt_window(self) -> int:
        """Prompt tokens one request can score (0: this server cannot; tokens are forced one by one)."""
        return int(getattr(self.server, "prompt_window", 0) or 0)

    def generate(self, prompt: Prompt, max_tokens: int, stop: Sequence[str] = ()) -> Generation:
        """Greedy generation; thinking text (<think>...</think> and similar) is split from the answer."""
        stop = [stop] if isinstance(stop, str) else list(stop)
        data = self._complete(prompt, n_predict=int(max_tokens), stop=stop)
        text = data["content"]
        thinking, answer = split_thinking(text)
        return Generation(text=text, answer=answer, thinking=thinking, stop_type=data.get("stop_type", ""),
                          n_tokens=int(data.get("tokens_predicted", 0)))

    def embeddings(self, text: Prompt) -> np.ndarray:
        """Per-token hidden states after the final norm, [n_tokens, n_embd] (server needs embeddings=True)."""
        data = self._request("POST", "/embeddings", {"content": _payload(text)})
        rows = data[0]["embedding"] if isinstance(data, list) else data["embedding"]
        out = np.asarray(rows, dtype=np.float32)
        if out.ndim != 2:
            raise RequestFailed("llama-server returned pooled embeddings, not one row per token",
                                "start the server with embeddings=True (rys passes --pooling none)")
        return out

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], workers: int | None = None) -> list:
        """fn(item) for every item, `workers` (default: the server's slots) at a time, results in input
        order. The first failure cancels what has not started and is raised."""
        items = list(items)
        workers = workers or self.props().total_slots
        if workers <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rys-client")
        futures = [pool.submit(fn, item) for item in items]
        try:
            results = [f.result() for f in futures]
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return results

    # -- internals --------------------------------------------------------------------------------

    def _ids(self, text: Prompt, add_special: bool) -> list[int]:
        return self.tokenize(text, add_special=add_special) if isinstance(text, str) else [int(t) for t in text]

    def _complete(self, prompt: Prompt, **params) -> dict:
        payload = {"prompt": _payload(prompt), "temperature": 0.0, "cache_prompt": True, **self.request_fields, **params}
        data = self._request("POST", "/completion", payload)
        if data.get("truncated"):
            raise RequestFailed("llama-server truncated the prompt to fit its context",
                                "start the server with a larger ctx_size (it is per slot)")
        return data

    def _forced(self, prompt: Prompt, token_id: int) -> float:
        return self._forced_entry(prompt, token_id)[0]

    def _forced_entry(self, prompt: Prompt, token_id: int) -> tuple[float, bool]:
        """(log P(token | prompt), token is the most likely one) from one forced one-token completion."""
        entry = self._first_token(self._complete(prompt, n_predict=1, n_probs=1,
                                                 logit_bias=[[int(token_id), FORCE_BIAS]]))
        if entry["id"] != token_id:
            raise RequestFailed(f"forcing token {token_id} with a logit bias produced token {entry['id']}",
                                "the server ignored logit_bias; use a llama-server build that supports it")
        logprob = _logprob(entry)
        top = (entry.get("top_logprobs") or [entry])[0]
        return logprob, top["id"] == token_id or _logprob(top) <= logprob

    @staticmethod
    def _first_token(data: dict) -> dict:
        probs = data.get("completion_probabilities") or []
        if not probs:
            raise RequestFailed("llama-server returned no token probabilities",
                                "check the prompt fits the context size and the server supports n_probs")
        return probs[0]

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _raise_if_dead(self) -> None:
        if self.server is not None and not self.server.alive():
            raise self.server.crash_error()

    def _request(self, method: str, path: str, payload: dict | None = None):
        """One HTTP call with bounded retries for transient failures; anything else raises."""
        url = self.base_url + path
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(0.2 * 2 ** (attempt - 1))
            try:
                resp = self._session().request(method, url, json=payload, timeout=self.timeout)
            except requests.Timeout:
                self._raise_if_dead()
                raise RequestFailed(f"{path} got no answer within {self.timeout:.0f} s from {self.base_url}",
                                    "raise the client timeout, or use a smaller prompt / fewer tokens")
            except requests.RequestException as err:  # reset, refused, cut-off answer
                self._raise_if_dead()
                problem = f"connection error: {err}"
                continue
            if resp.status_code == 200:
                try:
                    return resp.json()
                except ValueError:
                    raise RequestFailed(f"{path} answered with invalid JSON: {resp.text[:200]!r}",
                                        "check that base_url points to a llama-server") from None
            if resp.status_code not in TRANSIENT_STATUS:
                err = RequestFailed(f"{path} answered HTTP {resp.status_code}: {_error_text(resp)}",
                                    "check the request; the server log has details")
                err.status = resp.status_code
                raise err
            problem = f"HTTP {resp.status_code}: {_error_text(resp)}"
        self._raise_if_dead()
        if self.server is None and problem.startswith("connection error"):
            raise ServerCrashed(f"no llama-server answers at {self.base_url} ({problem})",
                                "start the server, or check the URL")
        raise RequestFailed(f"{path} failed {self.retries + 1} times: {problem}",
                            "the server is alive but keeps failing; see its log")


def _payload(prompt: Prompt):
    return prompt if isinstance(prompt, str) else [int(t) for t in prompt]


def _logprob(entry: dict) -> float:
    value = entry.get("logprob")
    return float("-inf") if value is None else float(value)


def _error_text(resp: requests.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return resp.text[:300]
