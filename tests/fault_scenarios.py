"""The fault-injection scenarios, one table for two readers: ``tests/test_faults.py`` asserts each outcome and
its timing, ``bench/faults.py`` runs each once and prints what the client saw and when.

Every scenario runs a real router on loopback in front of two real upstreams, ``primary`` (which misbehaves as
scripted) and ``backup`` (healthy), on a route ``[primary, backup]``; the client is a plain HTTP client that
sees the raw stream, so a missing ``[DONE]`` or an error event cannot hide.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp import web
from conftest import ScriptedUpstream
from llm_router.proxy.app import create_app
from llm_router.proxy.config import RouterConfig
from llm_router.proxy.quickstart import free_port

SLACK = 1.5
"""Seconds allowed past a configured deadline: generous, for a busy two-core machine."""

Ending = Literal["answer", "error_event", "error", "truncated", "upstream_cancelled"]


@dataclass(frozen=True)
class Expect:
    status: int
    ending: Ending
    llm: str | None = None
    """The LLM that answered (``x-llm-router-llm``), for answers."""
    code: str | None = None
    """The error code, for errors and error events."""
    text: Literal["primary", "backup", "partial", None] = None
    """``partial``: the stream's first two chunks and nothing more."""


@dataclass(frozen=True)
class Scenario:
    name: str
    stream: bool
    expect: Expect
    deadline: float
    """The configured deadline (or wait) the outcome is held against, in seconds."""
    deadline_label: str
    script: Callable[[ScriptedUpstream, ScriptedUpstream], None] = lambda primary, backup: None
    primary: dict[str, Any] = field(default_factory=dict)
    """Extra config of the primary LLM."""
    backup: dict[str, Any] = field(default_factory=dict)
    router: dict[str, Any] = field(default_factory=dict)
    primary_at: Literal["scripted", "refused", "blackhole", "unaccepting"] = "scripted"
    backup_at: Literal["scripted", "refused", "blackhole", "unaccepting"] = "scripted"
    at_least: float = 0.0
    """The client must not get its outcome sooner (a deadline that fired early would be a bug too)."""
    warm_up: int = 0
    """Requests sent (and ignored) before the measured one."""
    disconnect: bool = False
    """The client leaves the stream after its first chunk; measured: until the upstream saw it go."""

    @property
    def bound(self) -> float:
        return self.deadline + SLACK


@dataclass
class Seen:
    """What the client saw."""

    status: int
    ending: Ending
    seconds: float
    llm: str = ""
    fallbacks: str = ""
    code: str | None = None
    text: str = ""
    loser_cancelled: bool = False
    """Hedged scenarios: the slow LLM's server saw its call cancelled while the router ran on."""

    def describe(self) -> str:
        if self.ending == "answer":
            via = f" after {self.fallbacks} failed" if self.fallbacks else ""
            if self.llm == "backup" and not self.fallbacks:
                via = ", hedge won; primary " + ("cancelled" if self.loser_cancelled else "NOT cancelled")
            return f"{self.status} answer from {self.llm}{via}"
        if self.ending == "error_event":
            return f"{self.status}, {len(self.text)} chars, then error event {self.code}, no [DONE]"
        if self.ending == "upstream_cancelled":
            return "client left; upstream call cancelled"
        if self.ending == "truncated":
            return f"{self.status} TRUNCATED stream without [DONE] or error"
        return f"{self.status} {self.code}"


def _slow_stream(primary: ScriptedUpstream, backup: ScriptedUpstream) -> None:
    primary.script.role_first = True
    primary.script.content_delay = 5


def _set(**values: Any) -> Callable[[ScriptedUpstream, ScriptedUpstream], None]:
    def script(primary: ScriptedUpstream, backup: ScriptedUpstream) -> None:
        for name, value in values.items():
            setattr(primary.script, name, value)
    return script


def _both(**values: Any) -> Callable[[ScriptedUpstream, ScriptedUpstream], None]:
    def script(primary: ScriptedUpstream, backup: ScriptedUpstream) -> None:
        for upstream in (primary, backup):
            for name, value in values.items():
                setattr(upstream.script, name, value)
    return script


FOUR_CHUNKS = ["one ", "two ", "three ", "four "]
FAST_FAILOVER = Expect(200, "answer", llm="backup", text="backup")
BROKEN_STREAM = Expect(200, "error_event", code="stream_interrupted", text="partial")
HUGE = 8 * 1024 * 1024

SCENARIOS = [
    Scenario("slow first token (stream: role event at once, content after 5 s)", True, FAST_FAILOVER, 0.5,
             "first_token 0.5 s", _slow_stream, primary={"timeouts": {"first_token": 0.5}}, at_least=0.5),
    Scenario("slow first token (non-streamed: headers after 5 s)", False, FAST_FAILOVER, 0.5, "first_token 0.5 s",
             _set(delay=5), primary={"timeouts": {"first_token": 0.5}}, at_least=0.5),
    Scenario("slow LLM hedged (headers after 5 s; hedge_after 0.2 s)", False, FAST_FAILOVER, 0.2,
             "hedge_after 0.2 s (first_token 60 s)", _set(delay=5), primary={"hedge_after": 0.2}, at_least=0.2),
    Scenario("no response at all (TCP accepted, never a byte)", False, FAST_FAILOVER, 0.5, "first_token 0.5 s",
             primary={"timeouts": {"first_token": 0.5}}, primary_at="blackhole", at_least=0.5),
    Scenario("connection never established (SYN unanswered)", True, FAST_FAILOVER, 0.3, "connect 0.3 s",
             primary={"timeouts": {"connect": 0.3}}, primary_at="unaccepting", at_least=0.3),
    Scenario("connection refused", True, FAST_FAILOVER, 0.0, "connect 5 s (refused at once)", primary_at="refused"),
    Scenario("HTTP 500", False, FAST_FAILOVER, 0.0, "none (immediate failover)", _set(status=500)),
    Scenario("HTTP 503", True, FAST_FAILOVER, 0.0, "none (immediate failover)", _set(status=503)),
    Scenario("HTTP 429, Retry-After: 1 (retry once, cap 2 s)", False, Expect(200, "answer", llm="primary",
             text="primary"), 1.0, "Retry-After 1 s", _set(status=429, headers={"Retry-After": "1"}, failures=1),
             primary={"retry": {"attempts": 1, "retry_after_cap": 2}}, at_least=1.0),
    Scenario("HTTP 429, Retry-After: 30 (over the 2 s cap)", False, FAST_FAILOVER, 0.0, "cap 2 s: move on now",
             _set(status=429, headers={"Retry-After": "30"}), primary={"retry": {"attempts": 1, "retry_after_cap": 2}}),
    Scenario("malformed JSON body (HTTP 200)", False, FAST_FAILOVER, 0.0, "none (immediate failover)",
             _set(raw_body=b'{"id": "x", "choices": [{"message": ')),
    Scenario("malformed SSE chunk before any content", True, FAST_FAILOVER, 0.0, "none (immediate failover)",
             _set(garbage_after=0)),
    Scenario("malformed SSE chunk mid-stream", True, BROKEN_STREAM, 0.0, "none (ends at once)",
             _set(chunks=FOUR_CHUNKS, garbage_after=2, chunk_delay=0.05)),
    Scenario("stream cut mid-way (connection dropped)", True, BROKEN_STREAM, 0.0, "none (ends at once)",
             _set(chunks=FOUR_CHUNKS, cut_after=2)),
    Scenario("stream stall (silent after 2 chunks)", True, BROKEN_STREAM, 0.5, "idle 0.5 s",
             _set(chunks=FOUR_CHUNKS, stall_after=2, stall=10), primary={"timeouts": {"idle": 0.5}}, at_least=0.5),
    Scenario("stream past its total deadline (a chunk every 0.2 s)", True,
             Expect(200, "error_event", code="stream_interrupted"), 1.0, "total 1 s",
             _set(chunks=[f"c{i} " for i in range(30)], chunk_delay=0.2),
             primary={"timeouts": {"total": 1.0, "connect": 0.5, "first_token": 0.5, "idle": 0.5}}, at_least=1.0),
    Scenario("huge response over router.max_response_bytes (8 MB > 1 MB)", False, FAST_FAILOVER, 0.0,
             "none (failover once over the limit)", _set(chunks=["x" * HUGE]), router={"max_response_bytes": 2 ** 20}),
    Scenario("huge response within the limit (8 MB)", False, Expect(200, "answer", llm="primary", text="primary"),
             0.0, "none", _set(chunks=["x" * HUGE])),
    Scenario("huge stream within the limit (2,048 chunks of 4 KB)", True,
             Expect(200, "answer", llm="primary", text="primary"), 0.0, "none",
             _set(chunks=["y" * 4096] * 2048)),
    Scenario("client disconnect mid-stream", True, Expect(200, "upstream_cancelled"), 0.0,
             "none (cancel at once)", _set(chunks=[f"c{i} " for i in range(100)], chunk_delay=0.05),
             disconnect=True),
    Scenario("all LLMs of the route down (HTTP 503)", False, Expect(502, "error", code="upstream_error"), 0.0,
             "none (immediate)", _both(status=503)),
    Scenario("all LLMs of the route refuse connections", True, Expect(502, "error", code="upstream_unreachable"),
             0.0, "connect 5 s (refused at once)", primary_at="refused", backup_at="refused"),
    Scenario("all LLMs of the route silent", False, Expect(504, "error", code="upstream_timeout"), 1.0,
             "first_token 0.5 s each, 2 LLMs", _both(delay=5), primary={"timeouts": {"first_token": 0.5}},
             backup={"timeouts": {"first_token": 0.5}}, at_least=1.0),
    Scenario("all LLMs of the route down, circuits open", False, Expect(503, "error", code="llm_circuit_open"), 0.0,
             "none (answered without calling)", _both(status=503),
             primary={"circuit_breaker": {"failures": 1, "open_seconds": 60}},
             backup={"circuit_breaker": {"failures": 1, "open_seconds": 60}}, warm_up=1),
]


class Blackhole:
    """A TCP server that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while await reader.read(65536):
                    pass
            writer.close()

        self.server = await asyncio.start_server(swallow, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()


class Unaccepting:
    """A listening socket whose accept queue is full: new connections are never established (the kernel
    drops their SYNs), so a client waits out its connect deadline."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", self.port))  # takes the one queue slot

    def stop(self) -> None:
        self.filler.close()
        self.listener.close()


@contextlib.asynccontextmanager
async def lab(scenario: Scenario) -> AsyncIterator[tuple[str, ScriptedUpstream, ScriptedUpstream]]:
    """The scenario's upstreams and router, running; yields the router's base URL and the two upstreams."""
    primary, backup, blackhole = ScriptedUpstream("primary"), ScriptedUpstream("backup"), Blackhole()
    unaccepting = Unaccepting()
    runner: web.AppRunner | None = None
    try:
        for upstream in (primary, backup):
            await upstream.start()
        await blackhole.start()
        scenario.script(primary, backup)

        def base(at: str, upstream: ScriptedUpstream) -> str:
            port = {"scripted": upstream.port, "refused": free_port(), "blackhole": blackhole.port,
                    "unaccepting": unaccepting.port}[at]
            return f"http://127.0.0.1:{port}/v1"

        config = {
            "router": {"default_policy": "faults", **scenario.router},
            "llms": [{"name": "primary", "api_base": base(scenario.primary_at, primary), "model": "p",
                      **scenario.primary},
                     {"name": "backup", "api_base": base(scenario.backup_at, backup), "model": "b",
                      **scenario.backup}],
            "policies": [{"name": "faults", "classifier": {"type": "rules", "rules": [
                {"category": "never", "keywords": ["zzz-never"]}]}, "routes": {"never": ["backup"]},
                "default_route": ["primary", "backup"]}],
        }
        app = create_app(RouterConfig.model_validate(config))
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}/v1", primary, backup
    finally:
        if runner is not None:
            await runner.cleanup()
        for upstream in (primary, backup):
            await upstream.stop()
        blackhole.stop()
        unaccepting.stop()


async def run(scenario: Scenario) -> tuple[Seen, ScriptedUpstream, ScriptedUpstream]:
    """Run one scenario; returns what the client saw and the two upstreams (for what they received)."""
    async with lab(scenario) as (base_url, primary, backup), aiohttp.ClientSession() as session:
        body = {"model": "router:faults", "stream": scenario.stream,
                "messages": [{"role": "user", "content": "hello"}]}
        for _ in range(scenario.warm_up):
            async with session.post(f"{base_url}/chat/completions", json=body) as response:
                await response.read()
        if scenario.disconnect:
            return await _disconnect(session, base_url, body, primary), primary, backup
        started = time.monotonic()
        async with session.post(f"{base_url}/chat/completions", json=body) as response:
            raw = await response.read()
            seconds = time.monotonic() - started
            seen = Seen(response.status, "error", seconds, response.headers.get("x-llm-router-llm", ""),
                        response.headers.get("x-llm-router-fallbacks", ""))
        if response.status != 200:
            seen.code = json.loads(raw)["error"]["code"]
        elif scenario.stream:
            _read_stream(raw, seen)
        else:
            seen.ending, seen.text = "answer", json.loads(raw)["choices"][0]["message"]["content"]
        if "hedge_after" in scenario.primary:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    while not primary.cancelled:
                        await asyncio.sleep(0.005)
            seen.loser_cancelled = primary.cancelled == 1
        return seen, primary, backup


async def _disconnect(session: aiohttp.ClientSession, base_url: str, body: dict[str, Any],
                      primary: ScriptedUpstream) -> Seen:
    response = await session.post(f"{base_url}/chat/completions", json=body)
    await response.content.readany()
    left = time.monotonic()
    response.close()
    async with asyncio.timeout(10):
        while not primary.cancelled:
            await asyncio.sleep(0.005)
    return Seen(response.status, "upstream_cancelled", time.monotonic() - left)


def _read_stream(raw: bytes, seen: Seen) -> None:
    events = [event for event in raw.replace(b"\r\n", b"\n").split(b"\n\n") if event.strip()]
    texts = []
    seen.ending = "truncated"
    for event in events:
        data = event.removeprefix(b"data: ")
        if data == b"[DONE]":
            seen.ending = "answer"
            continue
        payload = json.loads(data)
        if "error" in payload:
            seen.ending, seen.code = "error_event", payload["error"]["code"]
            continue
        for choice in payload.get("choices", []):
            texts.append(choice.get("delta", {}).get("content") or "")
    seen.text = "".join(texts)
