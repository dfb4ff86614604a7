"""Validation of client request bodies: malformed bodies name the offending parameter, and no
input whatsoever makes the validators fail with anything but ``InvalidRequest``."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llm_router.proxy.config import RouterConfig
from llm_router.proxy.conversation import chat_turns, prompt_turns
from llm_router.proxy.errors import InvalidRequest
from llm_router.proxy.request_body import parse_json_object, validate_chat, validate_completion
from llm_router.proxy.routing import select_target

MAX_MESSAGES = 3
NIM = "nim-llm-router"
USER = {"role": "user", "content": "hi"}


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [USER], **fields}


def with_message(message: Any) -> dict[str, Any]:
    return {"messages": [message]}


# body -> (param, code); code None means the generic invalid_request (no code).
INVALID_CHAT = [
    pytest.param({}, "messages", "missing_required_parameter", id="no-messages"),
    pytest.param({"messages": None}, "messages", "missing_required_parameter", id="null-messages"),
    pytest.param({"messages": "hi"}, "messages", None, id="messages-string"),
    pytest.param({"messages": {"role": "user"}}, "messages", None, id="messages-object"),
    pytest.param({"messages": []}, "messages", None, id="messages-empty"),
    pytest.param({"messages": [USER] * (MAX_MESSAGES + 1)}, "messages", None, id="too-many-messages"),
    pytest.param(with_message("hi"), "messages[0]", None, id="message-string"),
    pytest.param(with_message(None), "messages[0]", None, id="message-null"),
    pytest.param(with_message([USER]), "messages[0]", None, id="message-list"),
    pytest.param(with_message({"content": "hi"}), "messages[0].role", None, id="no-role"),
    pytest.param(with_message({"role": "robot", "content": "hi"}), "messages[0].role", None, id="unknown-role"),
    pytest.param(with_message({"role": "User", "content": "hi"}), "messages[0].role", None, id="role-case"),
    pytest.param(with_message({"role": 1, "content": "hi"}), "messages[0].role", None, id="role-number"),
    pytest.param(with_message({"role": ["user"], "content": "hi"}), "messages[0].role", None, id="role-list"),
    pytest.param(with_message({"role": "user"}), "messages[0].content", None, id="user-no-content"),
    pytest.param(with_message({"role": "user", "content": None}), "messages[0].content", None,
                 id="user-null-content"),
    pytest.param(with_message({"role": "system"}), "messages[0].content", None, id="system-no-content"),
    pytest.param(with_message({"role": "tool", "tool_call_id": "c"}), "messages[0].content", None,
                 id="tool-no-content"),
    pytest.param(with_message({"role": "user", "content": 5}), "messages[0].content", None, id="content-number"),
    pytest.param(with_message({"role": "user", "content": True}), "messages[0].content", None, id="content-bool"),
    pytest.param(with_message({"role": "user", "content": {"type": "text", "text": "x"}}), "messages[0].content",
                 None, id="content-object"),
    pytest.param(with_message({"role": "user", "content": [1]}), "messages[0].content[0]", None,
                 id="content-part-number"),
    pytest.param(with_message({"role": "user", "content": ["a", {"type": "text", "text": "b"}, None]}),
                 "messages[0].content[2]", None, id="content-part-null"),
    pytest.param(with_message({"role": "user", "content": [["a"]]}), "messages[0].content[0]", None,
                 id="content-part-list"),
    pytest.param(with_message({"role": "assistant", "content": None, "tool_calls": {"id": "c"}}),
                 "messages[0].tool_calls", None, id="tool-calls-object"),
    pytest.param(with_message({"role": "assistant", "content": "x", "tool_calls": "c"}),
                 "messages[0].tool_calls", None, id="tool-calls-string"),
    pytest.param({"messages": [USER, {"role": "user", "content": 1}]}, "messages[1].content", None,
                 id="second-message"),
    pytest.param({"messages": [USER, USER, {"role": "x"}]}, "messages[2].role", None, id="third-message"),
    pytest.param(chat(model=5), "model", None, id="model-number"),
    pytest.param(chat(model=["m"]), "model", None, id="model-list"),
    pytest.param(chat(stream="true"), "stream", None, id="stream-string"),
    pytest.param(chat(stream=1), "stream", None, id="stream-int"),
    pytest.param(chat(stream_options=[]), "stream_options", None, id="stream-options-list"),
    pytest.param(chat(stream_options="include_usage"), "stream_options", None, id="stream-options-string"),
    pytest.param(chat(**{NIM: "tasks"}), NIM, None, id="nim-string"),
    pytest.param(chat(**{NIM: ["tasks"]}), NIM, None, id="nim-list"),
    pytest.param(chat(**{NIM: {"policy": 1}}), f"{NIM}.policy", None, id="nim-policy-number"),
    pytest.param(chat(**{NIM: {"model": {"x": 1}}}), f"{NIM}.model", None, id="nim-model-object"),
    pytest.param(chat(**{NIM: {"routing_strategy": False}}), f"{NIM}.routing_strategy", None,
                 id="nim-strategy-bool"),
    pytest.param(chat(**{NIM: {"routing_strategy": "auto"}}), f"{NIM}.routing_strategy", None,
                 id="nim-strategy-unknown"),
    pytest.param(chat(**{NIM: {"routing_strategy": "Manual"}}), f"{NIM}.routing_strategy", None,
                 id="nim-strategy-case"),
]


@pytest.mark.parametrize(("body", "param", "code"), INVALID_CHAT)
def test_invalid_chat(body: dict[str, Any], param: str, code: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_chat(body, MAX_MESSAGES)
    error = caught.value
    assert (error.param, error.code, error.status, error.error_type) == (param, code, 400, "invalid_request_error")
    assert error.body()["error"]["param"] == param


VALID_CHAT = [
    pytest.param({"messages": [USER]}, id="minimal"),
    pytest.param({"messages": [USER] * MAX_MESSAGES}, id="at-message-limit"),
    pytest.param(chat(stream=True, stream_options={"include_usage": True}, temperature=0.2, extra={"any": [1]}),
                 id="other-fields-pass-through"),
    pytest.param(chat(model=None, stream=None, stream_options=None), id="nulls-mean-absent"),
    pytest.param({"messages": [{"role": role, "content": "x"} for role in
                               ("system", "developer", "user")]}, id="roles-1"),
    pytest.param({"messages": [{"role": role, "content": "x"} for role in
                               ("assistant", "tool", "function")]}, id="roles-2"),
    pytest.param(with_message({"role": "assistant", "content": None}), id="assistant-null-content"),
    pytest.param(with_message({"role": "assistant"}), id="assistant-no-content"),
    pytest.param(with_message({"role": "function", "name": "f"}), id="function-no-content"),
    pytest.param(with_message({"role": "user", "tool_calls": []}), id="tool-calls-instead-of-content"),
    pytest.param(with_message({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}), id="tool-calls"),
    pytest.param(with_message({"role": "user", "content": []}), id="empty-parts"),
    pytest.param(with_message({"role": "user", "content": ["a", {"type": "image_url", "image_url": {"url": "x"}}]}),
                 id="parts"),
    pytest.param(with_message({"role": "user", "content": "x", "name": 5, "whatever": None}),
                 id="other-message-fields"),
    pytest.param(chat(**{NIM: {}}), id="nim-empty"),
    pytest.param(chat(**{NIM: None}), id="nim-null"),
    pytest.param(chat(**{NIM: {"policy": "p", "routing_strategy": "manual", "model": "c"}}), id="nim-manual"),
    pytest.param(chat(**{NIM: {"policy": "p", "routing_strategy": "triton", "threshold": 0.5}}), id="nim-triton"),
    pytest.param(chat(**{NIM: {"policy": None, "routing_strategy": "", "model": None}}), id="nim-nulls"),
]


@pytest.mark.parametrize("body", VALID_CHAT)
def test_valid_chat(body: dict[str, Any]) -> None:
    validate_chat(body, MAX_MESSAGES)


INVALID_COMPLETION = [
    pytest.param({}, "prompt", "missing_required_parameter", id="no-prompt"),
    pytest.param({"prompt": None}, "prompt", "missing_required_parameter", id="null-prompt"),
    pytest.param({"prompt": 5}, "prompt", None, id="number"),
    pytest.param({"prompt": {"text": "x"}}, "prompt", None, id="object"),
    pytest.param({"prompt": []}, "prompt", None, id="empty-list"),
    pytest.param({"prompt": ["a", 1]}, "prompt", None, id="mixed-list"),
    pytest.param({"prompt": [True, False]}, "prompt", None, id="bools-are-not-tokens"),
    pytest.param({"prompt": [1.5]}, "prompt", None, id="float-token"),
    pytest.param({"prompt": [[1], []]}, "prompt", None, id="empty-token-array"),
    pytest.param({"prompt": [[1], ["a"]]}, "prompt", None, id="string-in-token-array"),
    pytest.param({"prompt": [[1], 2]}, "prompt", None, id="token-and-token-array"),
    pytest.param({"prompt": [None]}, "prompt", None, id="null-item"),
    pytest.param({"prompt": "x", "model": 1}, "model", None, id="model-number"),
    pytest.param({"prompt": "x", "stream": "yes"}, "stream", None, id="stream-string"),
    pytest.param({"prompt": "x", "stream_options": 1}, "stream_options", None, id="stream-options-number"),
    pytest.param({"prompt": "x", NIM: {"routing_strategy": "random"}}, f"{NIM}.routing_strategy", None,
                 id="nim-strategy"),
]


@pytest.mark.parametrize(("body", "param", "code"), INVALID_COMPLETION)
def test_invalid_completion(body: dict[str, Any], param: str, code: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_completion(body)
    assert (caught.value.param, caught.value.code) == (param, code)


@pytest.mark.parametrize("prompt", [
    pytest.param("", id="empty-string"),
    pytest.param("hi", id="string"),
    pytest.param(["a", ""], id="strings"),
    pytest.param([1, 2, 3], id="tokens"),
    pytest.param([[1, 2], [3]], id="token-arrays"),
])
def test_valid_completion(prompt: Any) -> None:
    validate_completion({"prompt": prompt, "model": "m", "stream": False})


# raw body -> message
INVALID_JSON = [
    pytest.param(b"", "the request body is empty; expected a JSON object", id="empty"),
    pytest.param(b"{", "the request body is not valid JSON: Expecting property name enclosed in double quotes",
                 id="truncated"),
    pytest.param(b"{'a': 1}", "the request body is not valid JSON: Expecting property name enclosed in double quotes",
                 id="single-quotes"),
    pytest.param(b'{"a": 1} x', "the request body is not valid JSON: Extra data", id="trailing-data"),
    pytest.param(b"\xff\xfe{}", "the request body is not valid JSON: Expecting value", id="bad-utf16"),
    pytest.param(b'{"a": "\xff"}', "the request body is not valid JSON: cannot be decoded", id="bad-utf8"),
    pytest.param(b'{"a": ' + b"1" * 5000 + b"}", "the request body is not valid JSON: cannot be decoded",
                 id="huge-integer"),
    pytest.param(b"[]", "the request body must be a JSON object", id="array"),
    pytest.param(b"null", "the request body must be a JSON object", id="null"),
    pytest.param(b'"{}"', "the request body must be a JSON object", id="string"),
    pytest.param(b"42", "the request body must be a JSON object", id="number"),
]


@pytest.mark.parametrize(("raw", "message"), INVALID_JSON)
def test_invalid_json(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_json_object(raw)
    error = caught.value
    assert (error.message, error.code, error.param) == (message, "invalid_json", None)


@pytest.mark.parametrize("raw", [
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep-lists"),
    pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="deep-objects"),
    pytest.param(b'{"messages": [{"role": "user", "content": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}",
                 id="deep-content"),
    pytest.param(b'{"messages": [{"role": "user", "content": [{"type": "text", "text": ' + b"[" * 5000
                 + b"]" * 5000 + b"}]}]}", id="deep-text-part"),
])
def test_deeply_nested_json(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_json_object(raw)
    assert (caught.value.code, caught.value.param) == ("invalid_json", None)


@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param(b"{}", {}, id="empty-object"),
    pytest.param(b' \n{"a": [1, {"b": null}]}\n ', {"a": [1, {"b": None}]}, id="whitespace"),
    pytest.param(b'\xef\xbb\xbf{"a": 1}', {"a": 1}, id="utf8-bom"),
    pytest.param('{"a": "é"}'.encode("utf-16"), {"a": "é"}, id="utf16"),
    pytest.param(b'{"a": 1, "a": 2}', {"a": 2}, id="duplicate-key-last-wins"),
])
def test_parse_json_object(raw: bytes, expected: dict[str, Any]) -> None:
    assert parse_json_object(raw) == expected


# ---------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
# Values shaped like the fields the validators look at, so the deeper checks are reached too.
field_names = st.sampled_from(["role", "content", "tool_calls", "type", "text", "model", "stream", "messages",
                               "prompt", "stream_options", NIM, "policy", "routing_strategy", "name"])
field_values = st.sampled_from(["user", "assistant", "tool", "system", "manual", "triton", "tasks", "code",
                                "router:tasks", "fast", "", "text"])
shaped_values = st.recursive(
    json_values | field_values,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(field_names | st.text(max_size=4), children,
                                                                       max_size=5),
    max_leaves=30,
)
any_value = json_values | shaped_values

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CONFIG = RouterConfig.model_validate({
    "router": {"default_policy": "tasks"},
    "llms": [{"name": "fast", "api_base": "http://fast.local/v1", "model": "f"}],
    "policies": [{"name": "tasks", "classifier": {"type": "rules", "rules": [{"category": "code",
                                                                             "keywords": ["python"]}]},
                  "routes": {"code": ["fast"]}, "default_route": ["fast"]}],
})


def check_body(body: Any) -> None:
    """Everything the router does with a body before forwarding: only ``InvalidRequest`` may escape."""
    if not isinstance(body, dict):
        with pytest.raises(InvalidRequest):
            parse_json_object(json.dumps(body).encode())
        return
    assert parse_json_object(json.dumps(body).encode()) == body
    for validate, turns in ((lambda b: validate_chat(b, MAX_MESSAGES), lambda b: chat_turns(b["messages"])),
                            (validate_completion, lambda b: prompt_turns(b["prompt"]))):
        try:
            validate(body)
        except InvalidRequest:
            continue
        assert all(isinstance(turn.text, str) and isinstance(turn.role, str) for turn in turns(body))
        with contextlib.suppress(InvalidRequest):
            select_target(body, CONFIG)


@PROPERTY
@given(any_value)
def test_any_body(body: Any) -> None:
    check_body(body)


@PROPERTY
@given(any_value, any_value)
def test_any_messages(messages: Any, model: Any) -> None:
    check_body({"messages": messages, "model": model})
    check_body({"prompt": messages})


@PROPERTY
@given(st.lists(any_value, min_size=1, max_size=3), any_value)
def test_any_message(messages: list[Any], extension: Any) -> None:
    check_body({"messages": [*messages, USER]})
    check_body({"messages": [USER, *messages], NIM: extension})


@PROPERTY
@given(field_values, any_value, any_value)
def test_any_message_fields(role: str, content: Any, tool_calls: Any) -> None:
    check_body({"messages": [{"role": role, "content": content, "tool_calls": tool_calls}]})
    check_body({"messages": [{"role": role, "content": [content, {"type": "text", "text": content}]}]})


@PROPERTY
@given(st.binary(max_size=200))
def test_any_bytes(raw: bytes) -> None:
    try:
        body = parse_json_object(raw)
    except InvalidRequest:
        return
    assert isinstance(body, dict)


@PROPERTY
@given(st.text(alphabet='{}[]",:0123456789.eE+-tfnrulase \\', max_size=60))
def test_json_like_text(text: str) -> None:
    with contextlib.suppress(InvalidRequest):
        parse_json_object(text.encode())


def deepest_accepted(wrap: bytes, inner: bytes, close: bytes) -> tuple[int, bytes]:
    """The deepest nesting of ``wrap``/``close`` around a text part that ``parse_json_object`` accepts here."""
    def body(depth: int) -> bytes:
        return (b'{"model": "fast", "messages": [{"role": "user", "content": [{"type": "text", "text": '
                + wrap * depth + inner + close * depth + b"}]}]}")

    low, high = 1, 5000
    while low < high:
        middle = (low + high + 1) // 2
        try:
            parse_json_object(body(middle))
            low = middle
        except InvalidRequest:
            high = middle - 1
    return low, body(low)


def _deeper(frames: int, call: Any) -> Any:
    return _deeper(frames - 1, call) if frames else call()


@pytest.mark.parametrize(("wrap", "inner", "close"), [
    pytest.param(b"[", b"", b"]", id="lists"),
    pytest.param(b'{"a":', b"1", b"}", id="objects"),
])
def test_accepted_body_can_be_processed_deeper(wrap: bytes, inner: bytes, close: bytes) -> None:
    _, raw = deepest_accepted(wrap, inner, close)
    body = parse_json_object(raw)
    validate_chat(body, MAX_MESSAGES)
    _deeper(20, lambda: chat_turns(body["messages"]))
    _deeper(20, lambda: json.dumps(body))
