"""lm-eval model "rys-llama": lm-eval's three request types answered exactly by a llama-server.

llama-server returns no prompt-token logprobs and ignores `echo`, so lm-eval's stock gguf and
local-completions models cannot score multiple-choice tasks against it. Here each continuation token
is scored by forcing it as the next token (the client's logit-bias trick): the reported logprob is
the unbiased full-vocabulary value, and the top-1 token of the same answer says whether it was the
greedy choice. With cache_prompt the shared context is evaluated once; every further request costs
one token. Tokenization follows lm-eval's causal-LM convention (TemplateLM._encode_pair): context
tokens, then the tokens of context+continuation after them, trailing context spaces moved over.

Use from Python with a started server: `RysLlamaLM(client=server.client)`, or, once this module is
imported, by name: `simple_evaluate(model="rys-llama", model_args="base_url=http://127.0.0.1:PORT")`.
"""

from __future__ import annotations

from functools import lru_cache

from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm import tqdm

from rys.errors import RysError
from rys.server.client import LlamaClient

DEFAULT_MAX_GEN_TOKS = 256


class BackendError(RysError):
    pass


@register_model("rys-llama")
class RysLlamaLM(TemplateLM):
    def __init__(self, base_url: str | None = None, client: LlamaClient | None = None,
                 max_gen_toks: int = DEFAULT_MAX_GEN_TOKS, **_ignored):
        super().__init__()
        if client is None and not base_url:
            raise BackendError("rys-llama needs a running llama-server",
                               hint="pass model_args base_url=http://127.0.0.1:PORT, or use `rys eval`")
        self.client = client or LlamaClient(base_url)
        props = self.client.props()
        self.max_length = props.n_ctx
        self.max_gen_toks = int(max_gen_toks)
        self._eos = self._special_id(props.raw.get("eos_token"))
        # Models that add a BOS token get it as the prefix of an empty context (as lm-eval's HF model).
        with_bos = self.client.tokenize("a", add_special=True)
        self._bos = with_bos[0] if len(with_bos) > len(self.client.tokenize("a")) else None
        self._tokenize = lru_cache(maxsize=4096)(self._tokenize_uncached)

    def _special_id(self, text: str | None) -> int | None:
        ids = self.client.tokenize(text) if text else []
        return ids[0] if len(ids) == 1 else None

    # -- tokens -----------------------------------------------------------------------------------

    @property
    def eot_token_id(self) -> int:
        if self._eos is None:
            raise BackendError("the model has no end-of-text token that tokenizes to one id",
                               hint="use a model with an eos_token, or tasks with a non-empty context")
        return self._eos

    @property
    def prefix_token_id(self) -> int:
        return self._bos if self._bos is not None else self.eot_token_id

    def _tokenize_uncached(self, text: str, add_special: bool) -> tuple[int, ...]:
        return tuple(self.client.tokenize(text, add_special=add_special))

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        return list(self._tokenize(string, add_special_tokens is not False))

    @property
    def tokenizer_name(self) -> str:
        return "rys-llama:" + self.client.props().model_path

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        # The server's own template (the model's, from its GGUF), so rys and llama-server agree.
        return self.client._request("POST", "/apply-template", {"messages": chat_history})["prompt"]

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.client.props().chat_template if chat_template else None

    # -- scoring ----------------------------------------------------------------------------------

    def _score(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        if not continuation:
            return 0.0, True
        if len(continuation) >= self.max_length - 1:
            raise BackendError(f"a continuation of {len(continuation)} tokens does not fit the "
                               f"{self.max_length}-token context",
                               hint="raise --ctx-size")
        # Left-truncate the context as lm-eval's HF model does. The longest prompt the server sees is
        # context + continuation (scored in one pass) or context + continuation[:-1] plus one forced
        # token: either way it must leave room for one sampled token.
        context = context[max(0, len(context) + len(continuation) - (self.max_length - 1)):]
        scored = self.client.score_continuation(context, continuation)
        return sum(scored.logprobs), all(scored.greedy)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        def score(request):
            key, context, continuation = request
            result = self._score(list(context), list(continuation))
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, result)
            return result

        # Requests arrive grouped by document, so the server's prompt cache keeps the shared context.
        return _map_with_progress(self.client, score, requests, "rys-llama loglikelihood", disable_tqdm)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        results = []
        for (text,) in tqdm([r.args for r in requests], desc="rys-llama rolling", disable=disable_tqdm):
            windows = [make_disjoint_window(w) for w in get_rolling_token_windows(
                token_list=self.tok_encode(text, add_special_tokens=False), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length - 1, context_len=1)]
            scores = self._loglikelihood_tokens([(None, c, t) for c, t in windows], disable_tqdm=True)
            total = sum(s for s, _ in scores)
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
            results.append(total)
        return results

    # -- generation -------------------------------------------------------------------------------

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        def generate(request):
            context, kwargs = request.args
            kwargs = dict(kwargs or {})
            if kwargs.get("do_sample") and float(kwargs.get("temperature", 1.0)) > 0:
                raise BackendError("rys-llama generates greedily only (a comparison must be reproducible)",
                                   hint="use a task with do_sample: false, or --gen_kwargs do_sample=false")
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_gen = int(kwargs.get("max_gen_toks", self.max_gen_toks))
            n_prompt = len(self.tok_encode(context))
            if n_prompt + max_gen > self.max_length:
                raise BackendError(f"a prompt of {n_prompt} tokens plus {max_gen} generated tokens does not fit "
                                   f"the {self.max_length}-token context", hint="raise --ctx-size")
            text = self.client.generate(context, max_tokens=max_gen, stop=until).text
            for stop in until:  # the server cuts at the stop string; keep lm-eval's own rule too
                text = text.split(stop)[0] if stop else text
            self.cache_hook.add_partial("generate_until", (context, request.args[1]), text)
            return text

        return _map_with_progress(self.client, generate, requests, "rys-llama generate", disable_tqdm)


def _map_with_progress(client: LlamaClient, fn, items, desc: str, disable: bool) -> list:
    with tqdm(total=len(items), desc=desc, disable=disable) as bar:
        def step(item):
            result = fn(item)
            bar.update()
            return result

        return client.map(step, items)
