"""A client that goes away cancels the upstream call; the real ``llm-router serve`` process serves."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import aiohttp
import openai
import pytest
import yaml
from conftest import llm, task_policy
from llm_router.proxy.quickstart import free_port
from test_proxy_api import metric, metric_samples


def config_for(fast, strong) -> dict:
    return {"router": {"default_policy": "tasks"}, "llms": [llm("fast", fast), llm("strong", strong)],
            "policies": [task_policy()]}


async def wait_until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_client_leaving_a_stream_cancels_the_upstream_call(router, upstreams):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    fast.script.chunks = [f"c{i}" for i in range(100)]
    fast.script.chunk_delay = 0.05
    running = await router(config_for(fast, strong))
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{running.base_url}/chat/completions", json={
            "model": "fast", "stream": True, "messages": [{"role": "user", "content": "x"}]})
        assert b"c0" in await response.content.readany()
        response.close()  # the client goes away mid-stream
    await wait_until(lambda: fast.cancelled == 1)
    async with asyncio.timeout(5):
        while metric(await metric_samples(running), "llm_router_requests_total", llm="fast", status="499") != 1:
            await asyncio.sleep(0.02)
    assert metric(await metric_samples(running), "llm_router_inflight_requests", llm="fast") == 0


async def test_client_leaving_a_plain_request_cancels_the_upstream_call(router, upstreams):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    fast.script.delay = 30
    running = await router(config_for(fast, strong))
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key="k", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    await wait_until(lambda: fast.cancelled == 1)
    samples = await metric_samples(running)
    assert metric(samples, "llm_router_inflight_requests", llm="fast") == 0


async def test_serve_command_routes_and_reloads_on_sighup(upstreams, tmp_path: Path):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(config_for(fast, strong)))
    port = free_port()
    # A long poll interval: only SIGHUP can make this reload quick.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llm_router.proxy.cli", "serve", "--config", str(path), "--port", str(port),
        "--reload-interval", "60", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        async with asyncio.timeout(20):
            while True:
                with contextlib.suppress(openai.APIConnectionError):
                    raw = await client.chat.completions.with_raw_response.create(
                        model="router:tasks", messages=[{"role": "user", "content": "python code"}])
                    break
                await asyncio.sleep(0.1)
        assert raw.headers["x-llm-router-llm"] == "strong"
        changed = config_for(fast, strong)
        changed["policies"][0]["routes"]["code"] = ["fast"]
        path.write_text(yaml.safe_dump(changed))
        process.send_signal(signal.SIGHUP)
        async with asyncio.timeout(10):
            while True:
                raw = await client.chat.completions.with_raw_response.create(
                    model="router:tasks", messages=[{"role": "user", "content": "python code"}])
                if raw.headers["x-llm-router-llm"] == "fast":
                    break
                await asyncio.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    log = output.decode()
    assert "serving config revision" in log
    assert "python code" not in log  # prompts are not logged unless switched on
