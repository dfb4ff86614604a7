"""Live config: a watched file and a mounted-ConfigMap directory, swapped under load without a failed
request; an invalid config is refused while the last good one serves."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import aiohttp
import openai
import yaml
from conftest import llm, task_policy
from test_proxy_api import metric, metric_samples


def config_with_default(fast, strong, default: str, *, drop: str | None = None) -> dict[str, Any]:
    llms = [entry for entry in (llm("fast", fast), llm("strong", strong)) if entry["name"] != drop]
    policy = task_policy(default_route=[default])
    policy["routes"] = {"code": [default], "summary": [default]}
    return {"router": {"default_policy": "tasks"}, "llms": llms, "policies": [policy]}


async def served_revision(running) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{running.base_url}/router/config") as response:
        return await response.json()


async def wait_for_revision(running, revision: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while (await served_revision(running))["revision"] != revision:
            await asyncio.sleep(0.02)


def revision_of(config: dict[str, Any]) -> str:
    from llm_router.proxy.config import RouterConfig

    return RouterConfig.model_validate(config).revision


async def ask(client: openai.AsyncOpenAI) -> str:
    raw = await client.chat.completions.with_raw_response.create(
        model="router:tasks", messages=[{"role": "user", "content": "hello"}])
    return raw.headers["x-llm-router-llm"]


async def test_edited_file_is_applied_without_restart(router, upstreams, tmp_path):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    path = tmp_path / "router.yaml"
    running = await router(config_with_default(fast, strong, "fast"), path=path)
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key="k", max_retries=0)
    assert await ask(client) == "fast"
    new = config_with_default(fast, strong, "strong")
    path.write_text(yaml.safe_dump(new))
    await wait_for_revision(running, revision_of(new))
    assert await ask(client) == "strong"
    samples = await metric_samples(running)
    assert metric(samples, "llm_router_config_reloads_total", result="applied") == 2
    assert metric(samples, "llm_router_config_info", revision=revision_of(new)) == 1


async def test_invalid_config_is_refused_and_the_last_good_one_serves(router, upstreams, tmp_path):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    path = tmp_path / "router.yaml"
    good = config_with_default(fast, strong, "fast")
    running = await router(good, path=path)
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key="k", max_retries=0)
    broken = config_with_default(fast, strong, "strong")
    broken["policies"][0]["default_route"] = ["ghost"]
    for bad_text in (yaml.safe_dump(broken), "llms: [unclosed\n"):
        path.write_text(bad_text)
        async with asyncio.timeout(5):
            while (await served_revision(running))["last_error"] is None:
                await asyncio.sleep(0.02)
        shown = await served_revision(running)
        assert shown["revision"] == revision_of(good)
        assert re.search(r"line \d+: policies\[0\]\.default_route: .*'ghost'", shown["last_error"]) \
            or "line 2: YAML syntax error" in shown["last_error"]
        assert await ask(client) == "fast"
        # The good document again: the error clears, nothing is swapped.
        path.write_text(yaml.safe_dump(good))
        async with asyncio.timeout(5):
            while (await served_revision(running))["last_error"] is not None:
                await asyncio.sleep(0.02)
    samples = await metric_samples(running)
    assert metric(samples, "llm_router_config_reloads_total", result="invalid") == 2


def write_configmap_version(directory: Path, version: str, config: dict[str, Any]) -> None:
    """Do what kubelet does for a mounted ConfigMap: a new timestamped directory, then an atomic swap of
    the ``..data`` symlink. ``config.yaml`` itself is a symlink into ``..data``."""
    versioned = directory / f"..{version}"
    versioned.mkdir()
    (versioned / "config.yaml").write_text(yaml.safe_dump(config))
    temporary = directory / "..data_tmp"
    temporary.symlink_to(versioned.name)
    os.replace(temporary, directory / "..data")
    if not (directory / "config.yaml").is_symlink():
        (directory / "config.yaml").symlink_to("..data/config.yaml")


async def test_configmap_symlink_swap_is_applied(router, upstreams, tmp_path):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    first = config_with_default(fast, strong, "fast")
    write_configmap_version(tmp_path, "2026_11_23_01", first)
    running = await router(first, path=tmp_path / "config.yaml", write=False)
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key="k", max_retries=0)
    assert await ask(client) == "fast"
    second = config_with_default(fast, strong, "strong")
    write_configmap_version(tmp_path, "2026_11_23_02", second)
    await wait_for_revision(running, revision_of(second))
    assert await ask(client) == "strong"


async def test_reload_under_concurrent_load_fails_no_request(router, upstreams, tmp_path):
    """Swap configs back and forth while streams are in flight. A stream that started on a config keeps
    it to the end, even after the next config removed its LLM altogether."""
    fast, strong = await upstreams("fast"), await upstreams("strong")
    for upstream in (fast, strong):
        upstream.script.chunks = [f"c{i} " for i in range(5)]
        upstream.script.chunk_delay = 0.02
    path = tmp_path / "router.yaml"
    configs = [config_with_default(fast, strong, "fast"),
               config_with_default(fast, strong, "strong", drop="fast")]
    running = await router(configs[0], path=path, reload_interval=0.01)
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key="k", max_retries=0, timeout=30)
    stop = asyncio.Event()

    async def swapper() -> int:
        swaps = 0
        while not stop.is_set():
            swaps += 1
            path.write_text(yaml.safe_dump(configs[swaps % 2]))
            await asyncio.sleep(0.03)
        return swaps

    async def one_request(index: int) -> str:
        stream = await client.chat.completions.create(
            model="router:tasks", stream=index % 2 == 0, messages=[{"role": "user", "content": f"hi {index}"}]) \
            if index % 2 == 0 else None
        if stream is not None:
            return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
        completion = await client.chat.completions.create(
            model="router:tasks", messages=[{"role": "user", "content": f"hi {index}"}])
        return completion.choices[0].message.content or ""

    swap_task = asyncio.create_task(swapper())
    results = []
    for wave in range(6):
        results += await asyncio.gather(*(one_request(wave * 40 + i) for i in range(40)), return_exceptions=True)
    stop.set()
    swaps = await swap_task
    failures = [result for result in results if isinstance(result, BaseException)]
    assert not failures, failures[:3]
    assert all(result == "c0 c1 c2 c3 c4 " for result in results)
    samples = await metric_samples(running)
    applied = metric(samples, "llm_router_config_reloads_total", result="applied")
    assert swaps > 10 and applied > 5
    assert fast.received and strong.received  # both configs really served
