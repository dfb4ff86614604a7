"""Shared fixtures: scripted OpenAI-compatible upstreams and routers, all on loopback.

A ``ScriptedUpstream`` is a small real aiohttp server speaking the OpenAI chat
and completions API. By default it answers like an LLM named after itself;
tests switch it to misbehave (status codes, delays, cut streams) through
``upstream.script``. It records every request it received.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from conftest_models import anchor_repository, encoder_cache, encoder_env, session_encoder  # noqa: F401
from llm_router.proxy.app import create_app
from llm_router.proxy.config import RouterConfig


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Script:
    """How the upstream answers the next requests."""

    status: int = 200
    error_body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds before the response starts."""
    chunks: list[str] = field(default_factory=lambda: ["Hello", " from", " upstream"])
    chunk_delay: float = 0.0
    cut_after: int | None = None
    """Streams: drop the connection after this many content chunks."""
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 11, "completion_tokens": 7,
                                                           "total_tokens": 18})
    failures: int | None = None
    """With a non-200 ``status``: answer it to this many requests only, then normally."""
    raw_body: bytes | None = None
    """Non-streamed answers: send these bytes (as application/json) instead of a completion."""
    role_first: bool = False
    """Streams: send a role-only event (no content) right away, before ``content_delay``."""
    content_delay: float = 0.0
    """Streams: seconds between the start of the stream and its first content chunk."""
    stall_after: int | None = None
    """Streams: go silent for ``stall`` seconds after this many content chunks."""
    stall: float = 0.0
    garbage_after: int | None = None
    """Streams: send a malformed event (not JSON) after this many content chunks."""


class ScriptedUpstream:
    def __init__(self, name: str) -> None:
        self.name = name
        self.script = Script()
        self.received: list[Received] = []
        self.cancelled = 0
        self.started_streams = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/completions", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def text(self) -> str:
        return "".join(self.script.chunks)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(Received(request.path, dict(request.headers), body))
        script = self.script
        try:
            if script.delay:
                await asyncio.sleep(script.delay)
            failing = script.status != 200 and (script.failures is None or script.failures > 0)
            if failing and script.failures is not None:
                script.failures -= 1
            if failing:
                payload = script.error_body or {"error": {"message": f"{self.name} failed", "type": "server_error",
                                                          "param": None, "code": None}}
                return web.json_response(payload, status=script.status, headers=script.headers)
            chat = request.path.endswith("/chat/completions")
            if body.get("stream"):
                return await self._stream(request, body, chat)
            if script.raw_body is not None:
                return web.Response(body=script.raw_body, content_type="application/json")
            return web.json_response(self._completion(body, chat))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    def _completion(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        if chat:
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": self.text()},
                                      "finish_reason": "stop"}
        else:
            choice = {"index": 0, "text": self.text(), "finish_reason": "stop"}
        return {"id": f"cmpl-{self.name}", "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()), "model": body.get("model"), "choices": [choice],
                "usage": self.script.usage}

    async def _stream(self, request: web.Request, body: dict[str, Any], chat: bool) -> web.StreamResponse:
        self.started_streams += 1
        script = self.script
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": f"cmpl-{self.name}", "object": "chat.completion.chunk" if chat else "text_completion",
                "created": 1, "model": body.get("model")}
        if script.role_first and chat:
            role = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]}
            await response.write(f"data: {json.dumps(role)}\n\n".encode())
        if script.content_delay:
            await asyncio.sleep(script.content_delay)
        for index, piece in enumerate(script.chunks):
            if script.stall_after is not None and index == script.stall_after:
                await asyncio.sleep(script.stall)
            if script.garbage_after is not None and index == script.garbage_after:
                await response.write(b"data: {this is not json\n\n")
            if script.cut_after is not None and index >= script.cut_after:
                assert request.transport is not None
                request.transport.close()
                return response
            delta = {"delta": {"content": piece}} if chat else {"text": piece}
            chunk = {**base, "choices": [{"index": 0, **delta, "finish_reason": None}]}
            if include_usage:
                chunk["usage"] = None
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if script.chunk_delay:
                await asyncio.sleep(script.chunk_delay)
        final = {**base, "choices": [{"index": 0, **({"delta": {}} if chat else {"text": ""}),
                                      "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(final)}\n\n".encode())
        if include_usage:
            await response.write(f"data: {json.dumps({**base, 'choices': [], 'usage': script.usage})}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


@pytest.fixture
async def upstreams() -> AsyncIterator[Callable[[str], Awaitable[ScriptedUpstream]]]:
    """Start scripted upstreams by name: ``fast = await upstreams("fast")``."""
    started: list[ScriptedUpstream] = []

    async def start(name: str) -> ScriptedUpstream:
        upstream = ScriptedUpstream(name)
        await upstream.start()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        await upstream.stop()


class RunningRouter:
    def __init__(self, app: web.Application, runner: web.AppRunner, port: int) -> None:
        self.app = app
        self.runner = runner
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


@pytest.fixture
async def router() -> AsyncIterator[Callable[..., Awaitable[RunningRouter]]]:
    """Start a router on loopback: ``await router(config_dict)`` or ``await router(config_dict, path=file)``
    (the file is written, unless ``write=False``, and watched)."""
    runners: list[web.AppRunner] = []

    async def start(config: dict[str, Any], *, path: Path | None = None, write: bool = True,
                    reload_interval: float = 0.05) -> RunningRouter:
        if path is not None and write:
            path.write_text(yaml.safe_dump(config))
        app = create_app(RouterConfig.model_validate(config), config_path=path, reload_interval=reload_interval)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return RunningRouter(app, runner, site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    yield start
    for runner in runners:
        await runner.cleanup()


def llm(name: str, upstream: ScriptedUpstream, **extra: Any) -> dict[str, Any]:
    """An LLM entry pointing at a scripted upstream."""
    return {"name": name, "api_base": upstream.api_base, "model": f"{name}-model-id", **extra}


def task_policy(name: str = "tasks", **extra: Any) -> dict[str, Any]:
    """A rule policy: code questions to ``strong``, summaries to ``fast``, the rest to ``fast``."""
    return {
        "name": name,
        "classifier": {"type": "rules", "rules": [
            {"category": "code", "keywords": ["python", "function", "bug"]},
            {"category": "summary", "keywords": ["summarize", "tl;dr"]},
        ]},
        "routes": {"code": ["strong", "fast"], "summary": ["fast", "strong"]},
        "default_route": ["fast"],
        **extra,
    }
