"""Request limits on the real router: message count, header size, slow request bodies and headers
(raw sockets), over-long header lines; every refusal in the OpenAI format, never a 5xx."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp import web
from conftest import llm
from llm_router.proxy.app import create_app
from llm_router.proxy.config import RequestLimits, RouterConfig
from llm_router.proxy.request_limits import LINGERING_SECONDS, header_bytes, server_options


async def exchange_raw(port: int, data: bytes, *, read_timeout: float = 10.0) -> bytes:
    """Send raw bytes and read until the server closes the connection (or one response arrives)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(read_timeout):
            return await reader.read(1 << 20)
    finally:
        writer.close()


def parse_response(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(body) if headers.get("content-type", "").startswith("application/json") \
        else body


@pytest.fixture
async def limited_server(upstreams) -> AsyncIterator[tuple[int, Any]]:
    """A router on a runner with the server options ``llm-router serve`` uses, and tight limits."""
    fast = await upstreams("fast")
    limits = {"max_messages": 3, "max_header_bytes": 2048, "body_read_timeout_seconds": 0.5,
              "header_read_timeout_seconds": 1.0}
    config = RouterConfig.model_validate({"router": {"limits": limits}, "llms": [llm("fast", fast)]})
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                           **server_options(config.router.limits))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1], fast  # type: ignore[union-attr]
    await runner.cleanup()


async def test_too_many_messages_is_400(limited_server) -> None:
    port, fast = limited_server
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
    message = {"role": "user", "content": "hi"}
    await client.chat.completions.create(model="fast", messages=[message] * 3)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="fast", messages=[message] * 4)
    assert caught.value.param == "messages"
    assert "at most 3 are accepted" in caught.value.message
    assert len(fast.received) == 1


def request_bytes(body: bytes, headers: dict[str, str] | None = None, *, length: int | None = None) -> bytes:
    lines = ["POST /v1/chat/completions HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {len(body) if length is None else length}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


CHAT = json.dumps({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}).encode()


async def test_headers_over_the_total_limit_are_431(limited_server) -> None:
    port, fast = limited_server
    headers = {"x-one": "a" * 1000, "x-two": "b" * 1000}  # each line fits the parser; together too many bytes
    status, response_headers, body = parse_response(await exchange_raw(port, request_bytes(CHAT, headers)))
    assert status == 431
    assert body["error"]["code"] == "headers_too_large"
    assert "the limit is 2048" in body["error"]["message"]
    assert response_headers["connection"] == "close"
    assert fast.received == []
    status, _, _ = parse_response(await exchange_raw(port, request_bytes(CHAT, {"x-one": "a" * 1000})))
    assert status == 200


async def test_a_header_line_over_the_parser_cap_is_refused_without_a_5xx(limited_server) -> None:
    port, fast = limited_server
    raw = await exchange_raw(port, request_bytes(CHAT, {"x-huge": "a" * 5000}))
    status, _, _ = parse_response(raw)
    assert status == 400  # aiohttp's parser answers before the app sees the request
    assert fast.received == []


async def test_a_slow_request_body_gets_408_and_a_closed_connection(limited_server) -> None:
    port, fast = limited_server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(request_bytes(CHAT[:10], length=len(CHAT)))  # promises more than it sends
    await writer.drain()
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
        answered = time.monotonic() - started
        rest = await reader.read()  # until the server closes
    closed = time.monotonic() - started
    writer.close()
    status, headers, body = parse_response(head + rest)
    assert (status, body["error"]["code"]) == (408, "request_timeout")
    assert headers["connection"] == "close"
    # The deadline, then at most the lingering time; plus slack for a loaded machine.
    assert 0.4 <= answered < 0.5 + 2
    assert closed < 0.5 + LINGERING_SECONDS + 2
    assert fast.received == []


async def test_a_slow_trickle_of_headers_is_cut_off(limited_server) -> None:
    port, _ = limited_server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    closed = asyncio.create_task(reader.read())  # returns when the server closes the connection
    async with asyncio.timeout(10):
        while not closed.done():  # one more header byte every 0.1 s, never finishing the headers
            try:
                writer.write(b"x")
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.wait([closed], timeout=0.1)
        await closed
    closed_after = time.monotonic() - started
    writer.close()
    assert 0.9 <= closed_after < 1.0 + 2  # header_read_timeout_seconds, plus slack


def test_header_bytes_and_server_options() -> None:
    assert header_bytes([(b"Host", b"x"), (b"A", b"bc")]) == 4 + 1 + 4 + 1 + 2 + 4
    options = server_options(RequestLimits(max_header_bytes=4096, header_read_timeout_seconds=7))
    assert options == {"max_line_size": 4096, "max_field_size": 4096, "max_headers": 128, "keepalive_timeout": 7,
                       "lingering_time": LINGERING_SECONDS}
