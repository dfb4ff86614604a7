"""Context-window awareness: skip LLMs a request is too long for.

The estimate is deliberately cheap (no tokenizer): about four characters per
token of English text (OpenAI's rule of thumb), plus a few tokens of framing
per message, plus the completion the client reserved (``max_completion_tokens``
or ``max_tokens``). Text in ``tools`` and non-text parts (images) are not
counted. It errs on the small side for code and non-Latin scripts, where a
token is shorter, so an LLM may still refuse a prompt the estimate let
through; that refusal (HTTP 400) is passed on to the client.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .config import LLMConfig
from .errors import InvalidRequest

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
"""Role and separators around each chat message."""


def estimate_tokens(body: dict[str, Any]) -> int:
    """Estimated prompt tokens plus the completion tokens the request reserves."""
    chars = 0
    framing = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        framing = TOKENS_PER_MESSAGE * len(messages)
        for message in messages:
            if isinstance(message, dict):
                chars += _content_chars(message.get("content"))
    else:
        chars = _prompt_chars(body.get("prompt"))
    reserved = body.get("max_completion_tokens")
    if not isinstance(reserved, int):
        reserved = body.get("max_tokens")
    reserved = reserved if isinstance(reserved, int) and reserved > 0 else 0
    return -(-chars // CHARS_PER_TOKEN) + framing + reserved


def fits(llm: LLMConfig, needed: int) -> bool:
    return llm.context_window is None or llm.context_window >= needed


def fitting(candidates: Iterable[LLMConfig], needed: int) -> list[LLMConfig]:
    return [llm for llm in candidates if fits(llm, needed)]


def too_long(needed: int, candidates: Iterable[LLMConfig]) -> InvalidRequest:
    """The 400 when no LLM of the route can take the request."""
    largest = max(llm.context_window or 0 for llm in candidates)
    return InvalidRequest(
        f"this request needs about {needed} tokens (prompt estimated at 4 characters a token, plus the "
        f"completion it reserves), more than any LLM of its route accepts: the largest context window "
        f"is {largest} tokens", param="messages", code="context_length_exceeded")


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(part["text"]) for part in content
                   if isinstance(part, dict) and isinstance(part.get("text"), str))
    return 0


def _prompt_chars(prompt: Any) -> int:
    if isinstance(prompt, str):
        return len(prompt)
    if isinstance(prompt, list):
        return sum(len(item) for item in prompt if isinstance(item, str))
    return 0
