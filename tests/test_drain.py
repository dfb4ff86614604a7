"""Graceful drain of the real ``llm-router serve`` process: SIGTERM turns readiness false, requests are
still taken during the delay, then refused; streams in flight finish (or end with an explicit error
event when the budget is spent); the process exits within its budget. Plus the drain phases in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from conftest import ScriptedUpstream, llm
from llm_router.proxy.app import STATE
from llm_router.proxy.config import DrainSettings
from llm_router.proxy.drain import drain_requests
from llm_router.proxy.quickstart import free_port

CHAT = {"model": "fast", "messages": [{"role": "user", "content": "tell me a story"}]}


class Served:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []

    async def collect(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode().rstrip("\n"))


async def serve(tmp_path: Path, config: dict[str, Any], *args: str) -> tuple[Served, asyncio.Task[None]]:
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llm_router.proxy.cli", "serve", "--config", str(path), "--port", str(port),
        "--log-format", "json", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    served = Served(process, port)
    reader = asyncio.create_task(served.collect())
    async with asyncio.timeout(30), aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{served.url}/health/ready") as response:
                    if response.status == 200:
                        break
            await asyncio.sleep(0.1)
    return served, reader


async def stop(served: Served, reader: asyncio.Task[None]) -> None:
    if served.process.returncode is None:
        served.process.kill()
    await served.process.wait()
    await reader


async def stream_events(url: str, body: dict[str, Any]) -> list[bytes]:
    """A streamed chat completion on its own connection, read to the end: its SSE ``data:`` payloads."""
    async with aiohttp.ClientSession() as session, session.post(
            f"{url}/v1/chat/completions", json={**body, "stream": True}) as response:
        assert response.status == 200
        raw = await response.read()
    return [line[len(b"data: "):] for line in raw.split(b"\n") if line.startswith(b"data: ")]


def text_of(events: list[bytes]) -> str:
    parts = []
    for event in events:
        if event != b"[DONE]":
            for choice in json.loads(event).get("choices") or []:
                parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts)


async def status_of(url: str, path: str, method: str = "GET", body: Any = None) -> tuple[int, dict[str, Any], str]:
    async with aiohttp.ClientSession() as session, session.request(method, f"{url}{path}", json=body) as response:
        return response.status, await response.json(), response.headers.get("Connection", "")


async def wait_for(condition, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.05)


def json_lines(served: Served) -> list[dict[str, Any]]:
    return [json.loads(line) for line in served.lines]


async def test_sigterm_drains_every_stream_under_load(upstreams, tmp_path: Path) -> None:
    fast: ScriptedUpstream = await upstreams("fast")
    fast.script.chunks = [f"part{index} " for index in range(20)]
    fast.script.chunk_delay = 0.3  # each stream takes about 6 s: past the delay, into the refusing phase
    delay, budget, streams = 2.5, 20.0, 8
    served, reader = await serve(tmp_path, {"router": {"drain": {"delay_seconds": delay, "timeout_seconds": budget}},
                                            "llms": [llm("fast", fast)]})
    try:
        running = [asyncio.create_task(stream_events(served.url, CHAT)) for _ in range(streams)]
        async with asyncio.timeout(10):
            while fast.started_streams < streams:
                await asyncio.sleep(0.02)
        served.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        async def not_ready() -> bool:
            return (await status_of(served.url, "/health/ready"))[0] == 503
        await wait_for(not_ready, 1.0)
        status, body, _ = await status_of(served.url, "/health/ready")
        assert body["status"] == "draining"
        # Still within the delay: a new request is served, and told to close its connection.
        status, body, connection = await status_of(served.url, "/v1/chat/completions", "POST", CHAT)
        assert time.monotonic() - signalled < delay, "the test machine was too slow to check the delay phase"
        assert (status, connection.lower()) == (200, "close")

        async def refused() -> bool:
            status, body, _ = await status_of(served.url, "/v1/chat/completions", "POST", CHAT)
            return status == 503 and body["error"]["code"] == "server_shutting_down"
        await wait_for(refused, delay + 2)
        assert time.monotonic() - signalled >= delay
        assert not any(stream.done() for stream in running)  # still streaming while new requests are refused
        assert (await status_of(served.url, "/health/live"))[0] == 200  # probes are still answered

        results = await asyncio.gather(*running)
        for events in results:
            assert events[-1] == b"[DONE]"
            assert text_of(events) == "".join(fast.script.chunks)
        async with asyncio.timeout(budget):
            await served.process.wait()
        assert time.monotonic() - signalled < delay + budget
        assert served.process.returncode == 0
    finally:
        await stop(served, reader)
    lines = json_lines(served)  # every line of the process's output is one JSON object
    messages = [line["msg"] for line in lines]
    assert "received SIGTERM" in messages
    assert "drained: no request in flight" in messages
    assert not any(line["level"] == "error" for line in lines)


async def test_serve_freezes_the_startup_heap_out_of_the_collectors_passes(upstreams, tmp_path: Path) -> None:
    """Once serving, the objects alive at startup are frozen (proxy/heap.py): full collections skip them."""
    fast: ScriptedUpstream = await upstreams("fast")
    served, reader = await serve(tmp_path, {"llms": [llm("fast", fast)]}, "--log-level", "debug")
    try:
        status, _, _ = await status_of(served.url, "/v1/chat/completions", "POST", {**CHAT, "stream": False})
        assert status == 200
    finally:
        await stop(served, reader)
    frozen = [line for line in json_lines(served) if line["msg"].startswith("froze ")]
    assert len(frozen) == 1
    assert int(frozen[0]["msg"].split()[1]) > 10_000  # modules, pydantic models, the config: far more than this


async def test_streams_still_open_when_the_budget_is_spent_end_with_an_error_event(upstreams,
                                                                                   tmp_path: Path) -> None:
    endless: ScriptedUpstream = await upstreams("endless")
    endless.script.chunks = [f"part{index} " for index in range(100)]
    endless.script.chunk_delay = 0.5
    silent: ScriptedUpstream = await upstreams("silent")
    silent.script.delay = 60  # no first token before the budget ends
    budget = 1.5
    served, reader = await serve(tmp_path, {
        "router": {"drain": {"delay_seconds": 0, "timeout_seconds": budget}},
        "llms": [llm("endless", endless), llm("silent", silent)]})
    try:
        streams = [asyncio.create_task(stream_events(served.url, {**CHAT, "model": "endless"})) for _ in range(3)]
        waiting = asyncio.create_task(status_of(served.url, "/v1/chat/completions", "POST",
                                                {**CHAT, "model": "silent"}))
        async with asyncio.timeout(10):
            while endless.started_streams < 3 or not silent.received:
                await asyncio.sleep(0.02)
        served.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        for events in await asyncio.gather(*streams):
            assert b"[DONE]" not in events
            assert text_of(events[:-1]).startswith("part0 part1 ")
            error = json.loads(events[-1])["error"]
            assert (error["code"], error["type"]) == ("server_shutting_down", "service_unavailable")
        status, body, _ = await waiting
        assert (status, body["error"]["code"]) == (503, "server_shutting_down")
        async with asyncio.timeout(budget + 10):
            await served.process.wait()
        # The budget, the grace for interrupted handlers to finish, and slack for a loaded machine.
        assert time.monotonic() - signalled < budget + 2 + 3
        assert served.process.returncode == 0
    finally:
        await stop(served, reader)
    messages = [line["msg"] for line in json_lines(served)]
    assert "drain budget spent: interrupted 4 requests still in flight" in messages


async def test_drain_phases_in_process(router, upstreams) -> None:
    fast: ScriptedUpstream = await upstreams("fast")
    fast.script.chunks = [f"part{index} " for index in range(8)]
    fast.script.chunk_delay = 0.1
    running = await router({"llms": [llm("fast", fast)]})
    drain = running.app[STATE].drain
    stream = asyncio.create_task(stream_events(running.url, CHAT))
    async with asyncio.timeout(5):
        while drain.inflight < 1:
            await asyncio.sleep(0.01)
    draining = asyncio.create_task(drain_requests(drain, DrainSettings(delay_seconds=0.2, timeout_seconds=5)))
    await asyncio.sleep(0.05)
    assert drain.phase == "draining"
    assert (await status_of(running.url, "/health/ready"))[0] == 503
    await asyncio.sleep(0.25)
    assert drain.phase == "refusing"
    assert not draining.done()  # waits for the stream in flight
    status, body, _ = await status_of(running.url, "/v1/chat/completions", "POST", CHAT)
    assert (status, body["error"]["code"]) == (503, "server_shutting_down")
    await asyncio.wait_for(draining, 5)
    events = await stream
    assert events[-1] == b"[DONE]"
    assert drain.inflight == 0


@pytest.mark.parametrize(("field", "value"), [("delay_seconds", -1), ("timeout_seconds", 0)])
def test_drain_settings_bounds(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        DrainSettings(**{field: value})
