"""A llama-server client that answers tokenization and chat templating from a cache shared per sweep."""

from __future__ import annotations


def caching_client(server, cache: dict, fields: dict | None = None):
    """A client of `server` reading tokens and templated prompts through `cache`, adding `fields` (e.g.
    rys_resume_layer) to its completion requests."""
    from rys.server import LlamaClient

    class TokenCachingClient(LlamaClient):
        """Tokens and the chat template come from the model's metadata, which every config of a sweep
        shares: the first server answers, later configs read the answer from memory (3 of a continuation
        item's ~12 requests)."""

        def tokenize(self, text: str, add_special: bool = False) -> list[int]:
            key = ("tokenize", text, bool(add_special))
            if key not in cache:
                cache[key] = tuple(super().tokenize(text, add_special))
            return list(cache[key])

        def detokenize(self, ids) -> str:
            key = ("detokenize", tuple(int(i) for i in ids))
            if key not in cache:
                cache[key] = super().detokenize(ids)
            return cache[key]

        def format_prompt(self, text: str, chat: bool) -> str:
            key = ("format_prompt", text, bool(chat))
            if key not in cache:
                cache[key] = super().format_prompt(text, chat)
            return cache[key]

    client = TokenCachingClient(server.url, server=server)
    client.request_fields = dict(fields or {})
    return client
