"""``StreamRelay``: whole events forwarded as they complete, whatever the chunking; usage taken
from the stream (and taken out again when the router asked for it); ``[DONE]`` and content noticed."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llm_router.proxy.sse import StreamRelay

USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def chunk(choices: str, usage: str = ',"usage":null') -> bytes:
    return b'data: {"id":"c1","object":"chat.completion.chunk","choices":[' + choices.encode() + b"]" + \
        usage.encode() + b"}\n\n"


ROLE = chunk('{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}')
HELLO = chunk('{"index":0,"delta":{"content":"Hello"},"finish_reason":null}')
TRICKY = chunk('{"index":0,"delta":{"content":" \\"usage\\": null, \\"usage\\":{} é"},"finish_reason":null}')
STOP = chunk('{"index":0,"delta":{},"finish_reason":"stop"}')
USAGE_ONLY = chunk("", ',"usage":' + json.dumps(USAGE, separators=(",", ":")))
COMMENT = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"

STREAM = ROLE + HELLO + COMMENT + TRICKY + STOP + USAGE_ONLY + DONE
STRIPPED = b"".join(event.replace(b',"usage":null', b"") for event in (ROLE, HELLO, COMMENT, TRICKY, STOP)) + DONE
"""The stream as the client gets it when the router asked for usage on its behalf."""
EVENTS = 7

assert TRICKY.count(b'"usage"') == 1  # the escaped ones inside the content string do not count


def relay_all(chunks: list[bytes], *, strip_usage: bool) -> tuple[bytes, StreamRelay]:
    relay = StreamRelay(strip_usage=strip_usage)
    out = b"".join(relay.feed(piece) for piece in chunks) + relay.flush()
    return out, relay


def split_at(data: bytes, points: list[int]) -> list[bytes]:
    cuts = [0, *sorted(set(points)), len(data)]
    return [data[start:end] for start, end in itertools.pairwise(cuts)]


# ------------------------------------------------------------ whole streams

STREAMS = [
    pytest.param(STREAM, False, STREAM, id="lf-keep-usage"),
    pytest.param(STREAM, True, STRIPPED, id="lf-strip-usage"),
    pytest.param(STREAM.replace(b"\n\n", b"\r\n\r\n"), False, STREAM.replace(b"\n\n", b"\r\n\r\n"),
                 id="crlf-keep-usage"),
    pytest.param(STREAM.replace(b"\n\n", b"\r\n\r\n"), True, STRIPPED.replace(b"\n\n", b"\r\n\r\n"),
                 id="crlf-strip-usage"),
    pytest.param(STREAM.replace(b"\n\n", b"\n\r\n"), False, STREAM.replace(b"\n\n", b"\n\r\n"), id="mixed-endings"),
]


@pytest.mark.parametrize(("stream", "strip_usage", "expected"), STREAMS)
@pytest.mark.parametrize("chunking", ["whole", "bytewise", "per-event"])
def test_stream(stream: bytes, strip_usage: bool, expected: bytes, chunking: str) -> None:
    if chunking == "whole":
        chunks = [stream]
    elif chunking == "bytewise":
        chunks = [stream[i:i + 1] for i in range(len(stream))]
    else:
        separator = b"\r\n\r\n" if b"\r\n\r\n" in stream else b"\n\r\n" if b"\n\r\n" in stream else b"\n\n"
        chunks = [part + separator for part in stream.split(separator)[:-1]]
    out, relay = relay_all(chunks, strip_usage=strip_usage)
    assert out == expected
    assert (relay.usage, relay.saw_done, relay.saw_content, relay.events) == (USAGE, True, True, EVENTS)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30), st.booleans(), st.booleans())
def test_any_chunking(points: list[int], strip_usage: bool, crlf: bool) -> None:
    stream, expected = STREAM, (STRIPPED if strip_usage else STREAM)
    if crlf:
        stream, expected = stream.replace(b"\n\n", b"\r\n\r\n"), expected.replace(b"\n\n", b"\r\n\r\n")
    relay = StreamRelay(strip_usage=strip_usage)
    out = b""
    for piece in split_at(stream, points):
        sent = relay.feed(piece)
        out += sent
        assert expected.startswith(out)  # never anything but whole events, in order
    out += relay.flush()
    assert out == expected
    assert (relay.usage, relay.saw_done, relay.saw_content, relay.events) == (USAGE, True, True, EVENTS)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_events_released_only_when_complete(points: list[int]) -> None:
    relay = StreamRelay(strip_usage=False)
    received = 0
    out = b""
    for piece in split_at(STREAM, points):
        received += len(piece)
        out += relay.feed(piece)
        complete = STREAM[:received].rfind(b"\n\n")
        assert out == (STREAM[:complete + 2] if complete >= 0 else b"")


# ------------------------------------------------------------ single events

# (event, strip_usage) -> (bytes forwarded, usage captured)
EVENT_CASES = [
    pytest.param(b'data: {"a":1,"usage":null}\n\n', True, (b'data: {"a":1}\n\n', None), id="null-usage-last"),
    pytest.param(b'data: {"usage":null,"a":1}\n\n', True, (b'data: {"a":1}\n\n', None), id="null-usage-first"),
    pytest.param(b'data: {"a":1, "usage" : null , "b":2}\n\n', True, (b'data: {"a":1 , "b":2}\n\n', None),
                 id="null-usage-spaced"),
    pytest.param(b'data: {"a":1,"usage":null}\n\n', False, (b'data: {"a":1,"usage":null}\n\n', None),
                 id="null-usage-kept"),
    pytest.param(b'data: {"a":"\\"usage\\":null,"}\n\n', True, (b'data: {"a":"\\"usage\\":null,"}\n\n', None),
                 id="usage-text-in-string-untouched"),
    pytest.param(b'data: {"choices":[],"usage":{"total_tokens":3}}\n\n', True, (b"", {"total_tokens": 3}),
                 id="usage-only-dropped"),
    pytest.param(b'data: {"choices":[],"usage":{"total_tokens":3}}\n\n', False,
                 (b'data: {"choices":[],"usage":{"total_tokens":3}}\n\n', {"total_tokens": 3}), id="usage-only-kept"),
    pytest.param(b'data: {"usage":{"total_tokens":3}}\n\n', True, (b"", {"total_tokens": 3}),
                 id="usage-without-choices-dropped"),
    pytest.param(b'data: {"id":"x", "choices": [{"index": 0, "text": "\xc3\xa9"}], "usage": {"total_tokens": 3}}\n\n',
                 True, (b'data: {"id":"x","choices":[{"index":0,"text":"\\u00e9"}]}\n\n', {"total_tokens": 3}),
                 id="usage-with-choices-removed"),
    pytest.param(b'data: {"usage": {"total_tokens": 3\n\n', True, (b"", None), id="usage-unparseable-held-back"),
    pytest.param(b'data: {"usage": {"n": 1}, "x": "a"}\n\n', False, (b'data: {"usage": {"n": 1}, "x": "a"}\n\n',
                                                                       {"n": 1}), id="usage-spaced"),
    pytest.param(b"data: [DONE]\n\n", True, (b"data: [DONE]\n\n", None), id="done"),
    pytest.param(b": ping\n\n", True, (b": ping\n\n", None), id="comment"),
    pytest.param(b"event: error\ndata: {\"error\":{\"message\":\"boom\"}}\n\n", True,
                 (b"event: error\ndata: {\"error\":{\"message\":\"boom\"}}\n\n", None), id="error-event"),
]


@pytest.mark.parametrize(("event", "strip_usage", "expected"), EVENT_CASES)
def test_event(event: bytes, strip_usage: bool, expected: tuple[bytes, dict[str, int] | None]) -> None:
    relay = StreamRelay(strip_usage=strip_usage)
    assert (relay.feed(event), relay.flush(), relay.usage) == (expected[0], b"", expected[1])
    assert relay.events == 1


# event -> (saw_content, saw_done)
FLAG_CASES = [
    pytest.param(b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n', (False, False),
                 id="role-only"),
    pytest.param(b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n', (True, False), id="content"),
    pytest.param(b'data: {"choices":[{"delta":{"content": "x"}}]}\n\n', (True, False), id="content-spaced"),
    pytest.param(b'data: {"choices":[{"delta":{"content":null}}]}\n\n', (False, False), id="null-content"),
    pytest.param(b'data: {"choices":[{"text":"x"}]}\n\n', (True, False), id="completion-text"),
    pytest.param(b'data: {"choices":[{"text":""}]}\n\n', (False, False), id="empty-completion-text"),
    pytest.param(b'data: {"choices":[{"delta":{"reasoning_content":"hmm"}}]}\n\n', (True, False), id="reasoning"),
    pytest.param(b'data: {"choices":[{"delta":{"refusal":"no"}}]}\n\n', (True, False), id="refusal"),
    pytest.param(b'data: {"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}\n\n', (True, False),
                 id="tool-call"),
    pytest.param(b'data: {"choices":[{"delta":{"tool_calls":[]}}]}\n\n', (False, False), id="empty-tool-calls"),
    pytest.param(b"data: [DONE]\n\n", (False, True), id="done"),
    pytest.param(b"data:[DONE]\r\n\r\n", (False, True), id="done-crlf-no-space"),
    pytest.param(b'data: {"x":"[DONE]"}\n\n', (False, False), id="done-in-json"),
    pytest.param(b": [DONE]\n\n", (False, False), id="done-in-comment"),
]


@pytest.mark.parametrize(("event", "expected"), FLAG_CASES)
def test_flags(event: bytes, expected: tuple[bool, bool]) -> None:
    relay = StreamRelay(strip_usage=False)
    assert relay.feed(event) == event
    assert (relay.saw_content, relay.saw_done) == expected
    assert relay.malformed is None


# A data event that is neither a JSON object nor [DONE] breaks the stream: it and what follows are held back.
MALFORMED_CASES = [
    pytest.param(b"data: [DONE] later\n\n", id="not-done"),
    pytest.param(b"data: hello world\n\n", id="plain-text"),
    pytest.param(b'data: {"choices":[{"delta":{"content":"x"}}]\n\n', id="truncated-json"),
    pytest.param(b"data: \n\n", id="empty-data"),
    pytest.param(b"event: message\ndata: <html>\n\n", id="html-after-event-line"),
]


@pytest.mark.parametrize("event", MALFORMED_CASES)
def test_malformed_event_is_held_back(event: bytes) -> None:
    relay = StreamRelay(strip_usage=False)
    assert relay.feed(HELLO + event + STOP) == HELLO
    assert relay.feed(DONE) + relay.flush() == b""
    assert relay.malformed == event
    assert relay.saw_content


def test_comments_and_keepalives_are_not_malformed() -> None:
    relay = StreamRelay(strip_usage=False)
    assert relay.feed(COMMENT + b"event: ping\n\n" + HELLO) == COMMENT + b"event: ping\n\n" + HELLO
    assert relay.malformed is None


def test_flags_start_false() -> None:
    relay = StreamRelay(strip_usage=True)
    assert (relay.usage, relay.saw_content, relay.saw_done, relay.events) == (None, False, False, 0)


# ------------------------------------------------------------------- flush

# (chunks, strip_usage) -> (fed, flushed, usage, saw_done)
FLUSH_CASES = [
    pytest.param([b'data: {"a":1}'], False, (b"", b'data: {"a":1}', None, False), id="unterminated"),
    pytest.param([b'data: {"a":1}\n'], False, (b"", b'data: {"a":1}\n', None, False), id="half-terminated"),
    pytest.param([HELLO, b'data: {"a":'], False, (HELLO, b"", None, False), id="cut-mid-event-held-back"),
    pytest.param([b"data: [DONE]"], True, (b"", b"data: [DONE]", None, True), id="unterminated-done"),
    pytest.param([b'data: {"choices":[],"usage":{"total_tokens":3}}'], True, (b"", b"", {"total_tokens": 3}, False),
                 id="unterminated-usage-stripped"),
    pytest.param([b'data: {"a":1,"usage":null}'], True, (b"", b'data: {"a":1}', None, False),
                 id="unterminated-null-usage"),
    pytest.param([HELLO, b"\n"], False, (HELLO, b"", None, False), id="trailing-newline"),
    pytest.param([HELLO, b" \r\n"], False, (HELLO, b"", None, False), id="trailing-whitespace"),
    pytest.param([], False, (b"", b"", None, False), id="nothing"),
]


@pytest.mark.parametrize(("chunks", "strip_usage", "expected"), FLUSH_CASES)
def test_flush(chunks: list[bytes], strip_usage: bool, expected: tuple[bytes, bytes, dict[str, int] | None, bool]
               ) -> None:
    relay = StreamRelay(strip_usage=strip_usage)
    fed = b"".join(relay.feed(piece) for piece in chunks)
    flushed = relay.flush()
    assert (fed, flushed, relay.usage, relay.saw_done) == expected
    assert relay.flush() == b""  # nothing is flushed twice
