"""Property: no request whatsoever (method, path, headers, body) makes the real router answer 5xx.

The body-level properties live in ``test_request_validation.py``; these send whole HTTP requests over a
raw socket to a running router (with and without client auth), its upstream a scripted LLM that
answers every valid request."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from conftest import ScriptedUpstream, llm, task_policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llm_router.proxy.app import create_app
from llm_router.proxy.config import RouterConfig
from llm_router.proxy.request_limits import server_options
from test_request_validation import any_value

KEY = "sk-fuzz-0123456789abcdef"


class BackgroundRouter:
    """A router and its upstream on their own event loop in a thread, for synchronous hypothesis tests."""

    def __init__(self, auth_file: Path | None) -> None:
        self.auth_file = auth_file
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._runners: list[web.AppRunner] = []
        self._upstream = ScriptedUpstream("fast")

    def __enter__(self) -> BackgroundRouter:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _start(self) -> None:
        await self._upstream.start()
        router: dict[str, Any] = {"default_policy": "tasks", "limits": {"max_header_bytes": 8192}}
        if self.auth_file is not None:
            router["auth"] = {"enabled": True, "keys_file": str(self.auth_file)}
        config = RouterConfig.model_validate({"router": router, "llms": [llm("fast", self._upstream),
                                                                         llm("strong", self._upstream)],
                                              "policies": [task_policy()]})
        runner = web.AppRunner(create_app(config), access_log=None, handler_cancellation=True,
                               **server_options(config.router.limits))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        await self._upstream.stop()


@pytest.fixture(scope="module", params=["open", "auth"])
def background_router(request, tmp_path_factory) -> Iterator[BackgroundRouter]:
    auth_file = None
    if request.param == "auth":
        auth_file = tmp_path_factory.mktemp("keys") / "keys.yaml"
        auth_file.write_text(yaml.safe_dump({"keys": [{"name": "fuzz", "key": KEY, "policies": ["tasks"],
                                                       "requests_per_minute": 1000}]}))
    with BackgroundRouter(auth_file) as running:
        yield running


def status_of(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as connection:
        connection.sendall(request)
        received = b""
        while b"\r\n" not in received:
            chunk = connection.recv(4096)
            if not chunk:
                break
            received += chunk
    assert received.startswith(b"HTTP/1."), f"no HTTP response: {received[:100]!r}"
    return int(received.split(b" ", 2)[1])


methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]) | st.from_regex(
    r"[A-Z]{1,12}", fullmatch=True)
paths = st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/route", "/v1/models", "/v1/router/config",
                         "/health/live", "/health/ready", "/metrics", "/", "/v1", "/v1/chat/completions/",
                         "/v1/../health/live", "/v1/chat%2Fcompletions", "/v1/models?x=%ff"]) | st.from_regex(
    r"/[A-Za-z0-9._~%/?=&-]{0,60}", fullmatch=True)
FRAMING = {"content-length", "transfer-encoding", "host", "expect", "connection", "upgrade"}
header_names = (st.sampled_from(["Authorization", "api-key", "Content-Type", "x-request-id", "Accept",
                                 "Content-Encoding", "x-team", "User-Agent"])
                | st.from_regex(r"[A-Za-z0-9-]{1,30}", fullmatch=True)).filter(lambda name: name.lower() not in FRAMING)
header_values = st.sampled_from([f"Bearer {KEY}", "Bearer", "Bearer sk-nope-0123456789", "application/json",
                                 "gzip", "x" * 9000, "y" * 3000, ""]) | st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80)
chat_like = st.fixed_dictionaries({"messages": any_value}, optional={
    "model": st.sampled_from(["router:tasks", "fast", "strong", "nope", ""]) | any_value,
    "stream": st.booleans() | any_value, "nim-llm-router": any_value, "prompt": any_value})
bodies = (st.binary(max_size=300) | any_value.map(lambda value: json.dumps(value).encode())
          | chat_like.map(lambda value: json.dumps(value).encode()))


def http_request(method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(method=methods, path=paths, headers=st.lists(st.tuples(header_names, header_values), max_size=6),
       body=bodies)
def test_no_request_yields_a_5xx(background_router: BackgroundRouter, method: str, path: str,
                                 headers: list[tuple[str, str]], body: bytes) -> None:
    status = status_of(background_router.port, http_request(method, path, headers, body))
    assert 100 <= status < 500


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=400))
def test_no_bytes_on_the_wire_yield_a_5xx(background_router: BackgroundRouter, raw: bytes) -> None:
    request = http_request("POST", "/v1/chat/completions", [], b"")[:-4] + b"\r\n" + raw + b"\r\n\r\n"
    try:
        status = status_of(background_router.port, request)
    except (AssertionError, ConnectionError):
        return  # closing the connection on garbage is fine; answering 5xx is not
    assert status < 500
