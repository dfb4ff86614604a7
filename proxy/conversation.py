"""The conversation as text, for classifiers.

Classifiers see every message, not only the last one, and non-string content
too: text parts verbatim, tool calls as their function name and arguments,
other parts (images, audio, files) as a short marker so a classifier can tell
they were there.
"""

from __future__ import annotations

import json
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
