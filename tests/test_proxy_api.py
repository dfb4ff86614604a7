"""The HTTP API end to end: the official openai client -> a real router -> scripted upstreams, on loopback."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest
from conftest import ScriptedUpstream, llm, task_policy
from llm_router.proxy.app import STATE
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture
async def pair(upstreams):
    """Two scripted upstreams, ``fast`` and ``strong``."""
    return await upstreams("fast"), await upstreams("strong")


def tasks_config(fast: ScriptedUpstream, strong: ScriptedUpstream, **router: Any) -> dict[str, Any]:
    return {
        "router": {"default_policy": "tasks", **router},
        "llms": [llm("fast", fast, cost={"input_per_million": 1.0, "output_per_million": 2.0}),
                 llm("strong", strong, cost={"input_per_million": 10.0, "output_per_million": 30.0})],
        "policies": [task_policy()],
    }


def client_for(running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=running.base_url, api_key="client-key", max_retries=0, timeout=20)


async def metric_samples(running) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as session, session.get(f"{running.url}/metrics") as response:
        text = await response.text()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def metric(samples: dict, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and set(labels.items()) <= set(sample_labels))


ROUTING_CASES = [
    # (id, request model, extra body, messages, expected upstream, expected category header)
    ("code prompt to strong", "router:tasks", {}, [{"role": "user", "content": "Fix this Python bug"}],
     "strong", "code"),
    ("summary to fast", "router:tasks", {}, [{"role": "user", "content": "Please summarize this"}], "fast", "summary"),
    ("no match takes default route", "router:tasks", {}, [{"role": "user", "content": "Hello there"}],
     "fast", "default"),
    ("default policy when model is empty", "", {}, [{"role": "user", "content": "a python function"}],
     "strong", "code"),
    ("whole conversation is classified", "router:tasks", {}, [
        {"role": "system", "content": "You review python code."},
        {"role": "user", "content": "What do you think?"}], "strong", "code"),
    ("content parts are classified", "router:tasks", {}, [{"role": "user", "content": [
        {"type": "text", "text": "tl;dr of this picture"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}], "fast", "summary"),
    ("direct pick by LLM name", "strong", {}, [{"role": "user", "content": "Please summarize"}], "strong", "direct"),
    ("nim-llm-router manual override", "", {"nim-llm-router": {
        "policy": "tasks", "routing_strategy": "manual", "model": "code"}},
     [{"role": "user", "content": "Please summarize"}], "strong", "code"),
    ("nim-llm-router triton strategy classifies", "", {"nim-llm-router": {
        "policy": "tasks", "routing_strategy": "triton", "model": ""}},
     [{"role": "user", "content": "Please summarize"}], "fast", "summary"),
]


@pytest.mark.parametrize(("model", "extra", "messages", "expected_llm", "expected_category"),
                         [case[1:] for case in ROUTING_CASES], ids=[case[0] for case in ROUTING_CASES])
async def test_routes_each_request_to_its_llm(router, pair, model, extra, messages, expected_llm, expected_category):
    fast, strong = pair
    running = await router(tasks_config(fast, strong))
    raw = await client_for(running).chat.completions.with_raw_response.create(
        model=model, messages=messages, extra_body=extra)
    completion = raw.parse()
    assert raw.headers["x-llm-router-llm"] == expected_llm
    assert raw.headers["x-chosen-classifier"] == expected_category
    assert completion.choices[0].message.content == "Hello from upstream"
    chosen, other = (strong, fast) if expected_llm == "strong" else (fast, strong)
    assert len(chosen.received) == 1 and not other.received
    sent = chosen.received[0].body
    assert sent["model"] == f"{expected_llm}-model-id"
    assert "nim-llm-router" not in sent
    assert completion.model == f"{expected_llm}-model-id"


async def test_decision_headers_explain_the_route(router, pair):
    fast, strong = pair
    running = await router(tasks_config(fast, strong))
    raw = await client_for(running).chat.completions.with_raw_response.create(
        model="router:tasks", messages=[{"role": "user", "content": "python function please"}])
    headers = raw.headers
    assert headers["x-llm-router-policy"] == "tasks"
    assert headers["x-llm-router-category"] == "code"
    assert headers["x-llm-router-route"] == "code"
    assert float(headers["x-llm-router-confidence"]) == 1.0
    assert headers["x-llm-router-fallbacks"] == ""
    assert 0 <= float(headers["x-llm-router-overhead-ms"]) < 1000
    assert len(headers["x-llm-router-config-revision"]) == 16
    assert headers["x-request-id"]


async def test_request_fields_pass_through_untouched(router, pair):
    fast, strong = pair
    running = await router(tasks_config(fast, strong))
    tools = [{"type": "function", "function": {"name": "lookup", "description": "d",
                                               "parameters": {"type": "object", "properties": {}}}}]
    extra = {"nim-llm-router": {"policy": "tasks"}, "custom_vendor_field": {"nested": [1, 2.5, None]}}
    await client_for(running).chat.completions.create(
        model="anything-ignored-by-nim-field", messages=[{"role": "user", "content": "hello"}], tools=tools,
        tool_choice="auto", response_format={"type": "json_object"}, n=2, temperature=0.25, top_p=0.5,
        max_tokens=33, seed=7, stop=["END"], user="u-1", extra_body=extra)
    sent = fast.received[0].body
    assert sent == {"model": "fast-model-id", "messages": [{"role": "user", "content": "hello"}], "tools": tools,
                    "tool_choice": "auto", "response_format": {"type": "json_object"}, "n": 2, "temperature": 0.25,
                    "top_p": 0.5, "max_tokens": 33, "seed": 7, "stop": ["END"], "user": "u-1",
                    "custom_vendor_field": {"nested": [1, 2.5, None]}}


async def _sse_events(url: str, body: dict[str, Any]) -> list[bytes]:
    """The raw SSE data payloads of a streaming call."""
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = await response.read()
    return [line for line in raw.split(b"\n") if line.startswith(b"data:")]


@pytest.mark.parametrize("client_asks_usage", [False, True], ids=["usage not asked", "usage asked"])
async def test_stream_identical_chunk_for_chunk(router, pair, client_asks_usage):
    fast, strong = pair
    running = await router(tasks_config(fast, strong))
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    if client_asks_usage:
        body["stream_options"] = {"include_usage": True}
    direct = await _sse_events(f"{fast.api_base}/chat/completions", {**body, "model": "fast-model-id"})
    routed = await _sse_events(f"{running.base_url}/chat/completions", {**body, "model": "router:tasks"})
    assert routed == direct
    assert routed[-1] == b"data: [DONE]"
    # The router asked for usage either way (to count tokens) ...
    assert fast.received[-1].body["stream_options"] == {"include_usage": True}
    # ... but only a client that asked gets it.
    assert any(b'"usage": {' in event for event in routed) == client_asks_usage


async def test_stream_through_openai_client(router, pair):
    fast, strong = pair
    fast.script.chunks = [f"tok{i} " for i in range(20)]
    running = await router(tasks_config(fast, strong))
    stream = await client_for(running).chat.completions.create(
        model="router:tasks", messages=[{"role": "user", "content": "hey"}], stream=True)
    pieces = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices]
    assert "".join(piece or "" for piece in pieces) == fast.text()
    assert len(pieces) == 21  # 20 content chunks and the finish chunk, one event each


async def test_legacy_completions_stream_and_not(router, pair):
    fast, strong = pair
    running = await router(tasks_config(fast, strong))
    client = client_for(running)
    completion = await client.completions.create(model="router:tasks", prompt="write a python function")
    assert completion.choices[0].text == "Hello from upstream"
    assert strong.received[-1].path == "/v1/completions"
    stream = await client.completions.create(model="fast", prompt=["a", "b"], stream=True)
    assert "".join([chunk.choices[0].text async for chunk in stream if chunk.choices]) == fast.text()


async def test_usage_and_cost_are_counted_for_streams_and_not(router, pair):
    fast, strong = pair
    running = await router(tasks_config(fast, strong))
    client = client_for(running)
    await client.chat.completions.create(model="strong", messages=[{"role": "user", "content": "x"}])
    stream = await client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}],
                                                  stream=True)
    async for _ in stream:
        pass
    samples = await metric_samples(running)
    for name in ("fast", "strong"):
        assert metric(samples, "gen_ai_client_token_usage_sum", llm=name, gen_ai_token_type="input") == 11
        assert metric(samples, "gen_ai_client_token_usage_sum", llm=name, gen_ai_token_type="output") == 7
    assert metric(samples, "llm_router_estimated_cost_usd_total", llm="strong") == pytest.approx(
        (11 * 10 + 7 * 30) / 1e6)
    assert metric(samples, "llm_router_estimated_cost_usd_total", llm="fast") == pytest.approx((11 + 14) / 1e6)
    assert metric(samples, "llm_router_requests_total", llm="fast", status="200") == 1
    assert metric(samples, "llm_router_requests_total", llm="strong", status="200") == 1
    assert metric(samples, "gen_ai_server_time_to_first_token_seconds_count", llm="fast") == 1
    assert metric(samples, "llm_router_overhead_seconds_count") == 2
    assert metric(samples, "llm_router_inflight_requests", llm="fast") == 0


async def test_models_lists_policies_and_llms(router, pair):
    fast, strong = pair
    running = await router(tasks_config(fast, strong))
    models = await client_for(running).models.list()
    assert [model.id for model in models.data] == ["router:tasks", "fast", "strong"]


async def test_route_endpoint_decides_without_calling_an_llm(router, pair):
    fast, strong = pair
    running = await router(tasks_config(fast, strong))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{running.base_url}/route", json={
                "model": "router:tasks", "messages": [{"role": "user", "content": "python bug"}]}) as response:
            decision = await response.json()
        async with session.post(f"{running.base_url}/route", json={"model": "fast", "prompt": "x"}) as response:
            direct = await response.json()
    assert decision["policy"] == "tasks"
    assert decision["category"] == "code"
    assert decision["confidences"] == {"code": 1.0}
    assert decision["chosen_llm"] == "strong"
    assert decision["fallbacks"] == ["fast"]
    assert decision["classification_ms"] >= 0
    assert direct["route"] == "direct" and direct["chosen_llm"] == "fast"
    assert not fast.received and not strong.received


async def test_health_and_redacted_config(router, pair, monkeypatch):
    fast, strong = pair
    monkeypatch.setenv("STRONG_KEY", "sk-very-secret")
    config = tasks_config(fast, strong)
    config["llms"][1]["api_key"] = {"env": "STRONG_KEY"}
    running = await router(config)
    async with aiohttp.ClientSession() as session:
        for path in ("/health/live", "/health/ready"):
            async with session.get(running.url + path) as response:
                assert response.status == 200
        async with session.get(f"{running.base_url}/router/config") as response:
            shown = await response.text()
    data = json.loads(shown)
    assert data["revision"] == running.app[STATE].holder.active.revision
    assert data["config"]["llms"][1]["api_key"] == {"source": "env", "value": "[REDACTED]"}
    assert "sk-very-secret" not in shown and "STRONG_KEY" not in shown


async def test_api_key_is_sent_and_rotates_from_its_file(router, pair, tmp_path):
    fast, strong = pair
    key_file = tmp_path / "key"
    key_file.write_text("sk-first\n")
    config = tasks_config(fast, strong)
    config["llms"][0]["api_key"] = {"file": str(key_file)}
    running = await router(config)
    client = client_for(running)
    await client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    # Rotate the way kubelet does for a mounted Secret: a new file swapped in.
    replacement = tmp_path / "key.new"
    replacement.write_text("sk-second")
    replacement.replace(key_file)
    await client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    assert [r.headers["Authorization"] for r in fast.received] == ["Bearer sk-first", "Bearer sk-second"]
    # The client's own key is never forwarded upstream.
    assert all("client-key" not in json.dumps(r.headers) for r in fast.received + strong.received)
