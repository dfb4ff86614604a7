"""End to end through a real LLM: the official OpenAI client -> the router -> llama.cpp serving Gemma 3 270M.

The scripted upstreams of the other tests speak the API as we understand it;
this checks the router against a server someone else wrote. One server is
started for the whole module (it is ready in about two seconds) and answers
16 tokens at most per request, so the module runs in seconds on two cores.
No skip when llama-cpp-python is missing: CI installs it, and a missing
package must fail loudly rather than quietly drop the only real-LLM test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from llm_router.proxy.quickstart import MODEL_ALIAS, LocalLLMServers, ServerSpec, free_port
from openai import AsyncOpenAI
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.gemma

MAX_TOKENS = 16


@pytest.fixture(scope="module")
def gemma() -> Iterator[ServerSpec]:
    spec = ServerSpec("gemma-e2e", free_port(), n_ctx=1024)
    with LocalLLMServers([spec]):
        yield spec


def gemma_config(gemma: ServerSpec) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "router": {"default_policy": "tasks"},
        "llms": [{"name": "gemma", "api_base": gemma.api_base, "model": MODEL_ALIAS,
                  "timeouts": {"connect": 2, "first_token": 60, "idle": 30, "total": 120}}],
        "policies": [{
            "name": "tasks",
            "classifier": {"type": "rules", "rules": [{"category": "code", "keywords": ["python", "function"]}]},
            "routes": {"code": ["gemma"]},
            "default_route": ["gemma"],
        }],
    }


def client_for(base_url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)


async def token_usage_sums(url: str, llm: str) -> dict[str, float]:
    """``gen_ai_client_token_usage`` sums by token type for one LLM, from the router's /metrics."""
    async with aiohttp.ClientSession(trust_env=False) as session, session.get(f"{url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "gen_ai_client_token_usage":
            continue
        for sample in family.samples:
            if sample.name.endswith("_sum") and sample.labels.get("llm") == llm:
                sums[sample.labels["gen_ai_token_type"]] = sample.value
    return sums


async def test_chat_completion_is_routed_answered_and_counted(gemma: ServerSpec, router) -> None:
    running = await router(gemma_config(gemma))
    async with client_for(running.base_url) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="router:tasks", max_tokens=MAX_TOKENS, temperature=0,
            messages=[{"role": "user", "content": "Write a python function that adds two numbers."}])
    reply = raw.parse()

    assert raw.headers["x-llm-router-llm"] == "gemma"
    assert raw.headers["x-llm-router-policy"] == "tasks"
    assert raw.headers["x-llm-router-category"] == "code"
    assert reply.model == MODEL_ALIAS
    assert reply.choices[0].message.content, "Gemma answered with no text"
    assert reply.choices[0].finish_reason in {"stop", "length"}
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= MAX_TOKENS

    sums = await token_usage_sums(running.url, "gemma")
    assert sums.get("input") == reply.usage.prompt_tokens
    assert sums.get("output") == reply.usage.completion_tokens


async def test_stream_arrives_in_chunks_and_finishes(gemma: ServerSpec, router) -> None:
    running = await router(gemma_config(gemma))
    async with client_for(running.base_url) as client:
        async with client.chat.completions.with_streaming_response.create(
                model="router:tasks", max_tokens=MAX_TOKENS, temperature=0, stream=True,
                messages=[{"role": "user", "content": "Tell me about the sea."}]) as response:
            assert response.headers["x-llm-router-llm"] == "gemma"
            assert response.headers["x-llm-router-route"] == "default"
            chunks = [chunk async for chunk in await response.parse()]

    pieces = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert len(pieces) >= 2, f"expected the answer in several chunks, got {pieces!r}"
    assert "".join(pieces).strip(), "Gemma streamed no text"
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finishes[-1] in {"stop", "length"}
    assert all(reason is None for reason in finishes[:-1])
    # The client asked for no usage, so it gets none, whatever the router asked upstream.
    assert all(chunk.usage is None for chunk in chunks)
    # llama.cpp ignores stream_options.include_usage: the router estimates the output, one token per
    # content event, and leaves input uncounted.
    sums = await token_usage_sums(running.url, "gemma")
    assert sums.get("output") == len(pieces)
    assert "input" not in sums
