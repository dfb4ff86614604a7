"""Validation of client request bodies, before anything is routed.

Only what the router itself relies on is checked; every other field is the
downstream LLM's business and passes through untouched. Failures raise
``InvalidRequest`` naming the offending parameter.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidRequest

ROUTER_FIELD = "nim-llm-router"
"""The NVIDIA blueprint's request extension, kept compatible."""

MAX_DEPTH = 128
"""Deeper request bodies are refused: serializing them again (to forward them)
would exhaust the interpreter's recursion limit. Real requests, tool schemas
included, stay far below."""

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("the request body is empty; expected a JSON object", code="invalid_json")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "cannot be decoded"
        raise InvalidRequest(f"the request body is not valid JSON: {reason}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    # Nesting deeper than MAX_DEPTH needs more brackets than that: count them (fast, in C) first.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth_exceeds(body, MAX_DEPTH):
        raise InvalidRequest(f"the request body nests deeper than {MAX_DEPTH} levels", code="invalid_json")
    return body


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit``; iterative, so any depth
    ``json.loads`` accepted is safe to check."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values() if isinstance(child, dict | list))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item if isinstance(child, dict | list))
    return False


def validate_chat(body: dict[str, Any], max_messages: int) -> None:
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("'messages' is required", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array of message objects", param="messages")
    if len(messages) > max_messages:
        raise InvalidRequest(f"'messages' has {len(messages)} entries; at most {max_messages} are accepted",
                             param="messages")
    for index, message in enumerate(messages):
        _validate_message(message, f"messages[{index}]")
    _validate_common(body)


def validate_completion(body: dict[str, Any]) -> None:
    prompt = body.get("prompt")
    if prompt is None:
        raise InvalidRequest("'prompt' is required", param="prompt", code="missing_required_parameter")
    if not _is_prompt(prompt):
        raise InvalidRequest("'prompt' must be a string, an array of strings, or token arrays", param="prompt")
    _validate_common(body)


def _validate_message(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise InvalidRequest(f"'{where}' must be an object with 'role' and 'content'", param=where)
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidRequest(f"'{where}.role' must be one of {sorted(ROLES)}", param=f"{where}.role")
    content = message.get("content")
    if content is None:
        if role not in ("assistant", "function") and "tool_calls" not in message:
            raise InvalidRequest(f"'{where}.content' is required", param=f"{where}.content")
    elif isinstance(content, list):
        for position, part in enumerate(content):
            if not isinstance(part, dict | str):
                raise InvalidRequest(f"'{where}.content[{position}]' must be a content part object",
                                     param=f"{where}.content[{position}]")
    elif not isinstance(content, str):
        raise InvalidRequest(f"'{where}.content' must be a string or an array of content parts",
                             param=f"{where}.content")
    tool_calls = message.get("tool_calls")
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise InvalidRequest(f"'{where}.tool_calls' must be an array", param=f"{where}.tool_calls")


def _validate_common(body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("'model' must be a string", param="model")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise InvalidRequest("'stream_options' must be an object", param="stream_options")
    extension = body.get(ROUTER_FIELD)
    if extension is not None:
        if not isinstance(extension, dict):
            raise InvalidRequest(f"'{ROUTER_FIELD}' must be an object", param=ROUTER_FIELD)
        for key in ("policy", "routing_strategy", "model"):
            value = extension.get(key)
            if value is not None and not isinstance(value, str):
                raise InvalidRequest(f"'{ROUTER_FIELD}.{key}' must be a string", param=f"{ROUTER_FIELD}.{key}")
        strategy = extension.get("routing_strategy")
        if strategy not in (None, "", "triton", "manual"):
            raise InvalidRequest(f"'{ROUTER_FIELD}.routing_strategy' must be 'triton' or 'manual'",
                                 param=f"{ROUTER_FIELD}.routing_strategy")


def _is_prompt(prompt: Any) -> bool:
    if isinstance(prompt, str):
        return True
    if not isinstance(prompt, list) or not prompt:
        return False
    if all(isinstance(item, str) for item in prompt):
        return True
    if all(_is_int(item) for item in prompt):
        return True
    return all(isinstance(item, list) and item and all(_is_int(token) for token in item) for item in prompt)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
