"""The conversation as text, for classifiers.

Classifiers see every message, not only the last one, and non-string content
too: text parts verbatim, tool calls as their function name and arguments,
other parts (images, audio, files) as a short marker so a classifier can tell
they were there. ``classifier_text`` fits a whole conversation into the one
short text a sentence encoder reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    text: str


def chat_turns(messages: list[dict[str, Any]]) -> list[Turn]:
    """Turns of a (validated) chat request's ``messages``."""
    return [Turn(str(message.get("role", "")), message_text(message)) for message in messages]


def prompt_turns(prompt: Any) -> list[Turn]:
    """Turns of a (validated) legacy completions request's ``prompt``."""
    if isinstance(prompt, str):
        return [Turn("user", prompt)]
    if isinstance(prompt, list) and all(isinstance(item, str) for item in prompt):
        return [Turn("user", item) for item in prompt]
    return [Turn("user", "")]  # token ids: nothing a text classifier can read


def message_text(message: dict[str, Any]) -> str:
    parts: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        parts.extend(_part_text(part) for part in content)
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            function = call.get("function") or {}
            if isinstance(function, dict):
                parts.append(f"[tool call {function.get('name', '')}] {_as_text(function.get('arguments', ''))}")
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        parts.append(refusal)
    return "\n".join(part for part in parts if part)


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return ""
    kind = part.get("type")
    if kind == "text" or (kind is None and "text" in part):
        return _as_text(part.get("text", ""))
    if kind == "refusal":
        return _as_text(part.get("refusal", ""))
    return f"[{kind or 'content'}]"


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# ------------------------------------------------- text for model classifiers

CLASSIFIER_TOKEN_HINT = 224
"""Default budget of ``classifier_text``, in words and punctuation marks. The
encoder reads 256 WordPiece tokens ([CLS] and [SEP] included); English runs
about 1.1-1.2 pieces per word, so 224 words usually just fit."""
CONTEXT_FLOOR = 32
"""Context words allowed even after a very short latest turn ("and in Python?")."""
MIN_CONTEXT_PIECE = 8
MAX_CHARS_PER_WORD = 24
"""Characters per budgeted word at most, so a pasted blob with no spaces (base64, minified code) is
cut too: WordPiece turns any word over 100 characters into one unknown token anyway."""
SYSTEM_ROLES = frozenset({"system", "developer"})

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
"""What BERT's pre-tokenizer splits on: runs of word characters, each punctuation
mark, each CJK character. WordPiece splits words further, so a count of these is
a slight underestimate of tokens."""


def classifier_text(turns: Sequence[Turn], max_tokens_hint: int = CLASSIFIER_TOKEN_HINT) -> str:
    """The whole conversation as one text that fits a small encoder, most important part first.

    The rule, in a budget of ``max_tokens_hint`` words (words and punctuation
    marks, about one WordPiece token each):

    1. The latest user turn (the last turn when no turn is a user's) comes
       first and whole. If it alone exceeds the budget, its beginning (two
       thirds of the budget: usually the instruction) and its end (one third:
       often the question after a pasted document) are kept, joined by `` ... ``.
    2. Then context, as ``role: text`` lines: the system prompt (all system and
       developer turns), then the other turns, most recent first. Context gets
       what the latest turn left of the budget, but never more words than the
       latest turn itself has (at least ``CONTEXT_FLOOR``): a sentence encoder
       averages over all tokens, so a long system prompt shared by every request
       would otherwise drown out what this request asks. Each context piece
       keeps its beginning, at most half of the context budget still left, so
       the nearest turns get the most; pieces are dropped once fewer than
       ``MIN_CONTEXT_PIECE`` words are left.

    The word count only approximates tokens; when the text still runs past 256
    tokens the encoder cuts its end, which by construction is the least
    important context.
    """
    if not turns:
        return ""
    latest_index = next((index for index in range(len(turns) - 1, -1, -1) if turns[index].role == "user"),
                        len(turns) - 1)
    latest, used = _fit_latest(turns[latest_index].text, max_tokens_hint)
    remaining = min(max_tokens_hint - used, max(CONTEXT_FLOOR, used))
    system = "\n".join(turn.text for turn in turns if turn.role in SYSTEM_ROLES and _has_text(turn.text))
    context = [("system", system)] if system else []
    for index in range(len(turns) - 1, -1, -1):
        turn = turns[index]
        if index != latest_index and turn.role not in SYSTEM_ROLES and _has_text(turn.text):
            context.append((turn.role, turn.text))
        if len(context) * MIN_CONTEXT_PIECE > remaining:  # enough candidates: never walk a huge history
            break
    lines: list[str] = []
    for role, text in context:
        if remaining < MIN_CONTEXT_PIECE:
            break
        piece, words, _ = _head(text, max(MIN_CONTEXT_PIECE, remaining // 2))
        lines.append(f"{role}: {piece}")
        remaining -= words
    return latest + ("\n\n" + "\n".join(lines) if lines else "")


def _has_text(text: str) -> bool:
    return bool(text) and not text.isspace()


def _fit_latest(text: str, budget: int) -> tuple[str, int]:
    head, words, cut = _head(text, budget)
    if not cut or budget < 8:
        return head, words
    head_words = budget * 2 // 3
    tail_words = budget - head_words - 3  # the " ... " between them counts three
    return f"{_head(text, head_words)[0]} ... {_tail(text, tail_words)}", budget


def _head(text: str, limit: int) -> tuple[str, int, bool]:
    """The beginning of ``text`` up to ``limit`` words (and ``MAX_CHARS_PER_WORD`` characters per word),
    how many words that is, and whether it was cut. Reads no further than that many characters."""
    max_chars = limit * MAX_CHARS_PER_WORD
    end = 0
    count = 0
    for count, match in enumerate(_WORD.finditer(text, 0, max_chars), start=1):
        if count > limit:
            return text[:end].strip(), limit, True
        end = match.end()
    if len(text) > max_chars:
        return text[:max_chars].strip(), count, True
    return text.strip(), count, False


def _tail(text: str, limit: int) -> str:
    """The end of ``text``: its last ``limit`` words, scanning only the last ``limit * MAX_CHARS_PER_WORD``
    characters."""
    start = max(0, len(text) - limit * MAX_CHARS_PER_WORD)
    starts = [match.start() for match in _WORD.finditer(text, start)]
    if len(starts) > limit:  # one spare: the window may begin inside a word
        return text[starts[-limit]:].strip()
    return text[start:].strip()
