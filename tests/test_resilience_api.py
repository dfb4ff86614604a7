"""Resilience through the real router: hedging, retries, circuit breakers (metrics, ``GET /health/llms``, reloads),
replicas and their balancing, concurrency limits, context-window routing."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
import openai
import pytest
from conftest import llm
from llm_router.proxy.app import STATE
from llm_router.proxy.config import RouterConfig
from test_disconnect_and_cli import wait_until
from test_errors import assert_openai_error, post
from test_proxy_api import metric, metric_samples

SLACK = 1.5


def route_config(primary, backup, *, primary_extra: dict | None = None, backup_extra: dict | None = None,
                 **router: Any) -> dict[str, Any]:
    """LLMs ``primary`` then ``backup`` on the default route of policy ``p``."""
    return {
        "router": {"default_policy": "p", **router},
        "llms": [llm("primary", primary, **(primary_extra or {})), llm("backup", backup, **(backup_extra or {}))],
        "policies": [{"name": "p", "classifier": {"type": "rules", "rules": [{"category": "c", "keywords": ["zz"]}]},
                      "routes": {"c": ["backup"]}, "default_route": ["primary", "backup"]}],
    }


def client(running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=running.base_url, api_key="k", max_retries=0)


async def ask(running, *, stream: bool = False, content: str = "hi", model: str = "router:p", **extra: Any
              ) -> tuple[str, dict[str, str]]:
    """Text and headers of one answer, through the official client."""
    raw = await client(running).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], stream=stream, **extra)
    if stream:
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in raw.parse() if chunk.choices])
    else:
        text = raw.parse().choices[0].message.content
    return text, dict(raw.headers)


async def llms_health(running) -> dict[str, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{running.url}/health/llms") as response:
        assert response.status == 200
        body = await response.json()
    return {entry["name"]: entry for entry in body["llms"]}


# ------------------------------------------------------------------ hedging

@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_hedge_answers_from_the_next_llm_and_cancels_the_slow_one(router, upstreams, stream):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    if stream:
        primary.script.role_first, primary.script.content_delay = True, 5
    else:
        primary.script.delay = 5
    running = await router(route_config(primary, backup, primary_extra={"hedge_after": 0.2}))
    started = time.monotonic()
    text, headers = await ask(running, stream=stream)
    elapsed = time.monotonic() - started
    assert (text, headers["x-llm-router-llm"]) == (backup.text(), "backup")
    assert headers["x-llm-router-fallbacks"] == ""  # the primary did not fail: it lost the race
    assert 0.2 <= elapsed <= 0.2 + SLACK
    await wait_until(lambda: primary.cancelled == 1)  # the loser's upstream saw the disconnect
    samples = await metric_samples(running)
    assert metric(samples, "llm_router_hedges_total", llm="primary") == 1
    assert metric(samples, "llm_router_inflight_requests", llm="primary") == 0


async def test_hedged_primary_that_answers_first_still_wins(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    primary.script.delay = 0.5
    backup.script.delay = 5
    running = await router(route_config(primary, backup, primary_extra={"hedge_after": 0.1}))
    started = time.monotonic()
    text, headers = await ask(running)
    assert (text, headers["x-llm-router-llm"]) == (primary.text(), "primary")
    assert 0.5 <= time.monotonic() - started <= 0.5 + SLACK
    await wait_until(lambda: backup.cancelled == 1)


async def test_no_hedge_when_the_answer_comes_in_time(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    running = await router(route_config(primary, backup, primary_extra={"hedge_after": 1.0}))
    for _ in range(3):
        _text, headers = await ask(running, stream=True)
        assert headers["x-llm-router-llm"] == "primary"
    assert not backup.received


# ------------------------------------------------------------------ first content token

async def test_events_before_the_first_content_are_held_then_delivered(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    primary.script.role_first, primary.script.content_delay = True, 0.3
    running = await router(route_config(primary, backup, primary_extra={"timeouts": {"first_token": 1.5}}))
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.post(f"{running.base_url}/chat/completions", json={
            "model": "router:p", "stream": True, "messages": [{"role": "user", "content": "x"}]}) as response:
        first = await response.content.readany()
        waited = time.monotonic() - started
        raw = first + await response.read()
    assert response.headers["x-llm-router-llm"] == "primary"
    assert 0.3 <= waited <= 0.3 + SLACK  # nothing went out before the content, the role event included
    assert first.index(b'"role": "assistant"') < first.index(b"Hello")
    assert raw.endswith(b"data: [DONE]\n\n")
    assert not backup.received


# ------------------------------------------------------------------ retries

async def test_retry_with_backoff_on_the_same_llm(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    primary.script.status, primary.script.failures = 503, 2
    running = await router(route_config(primary, backup, primary_extra={
        "retry": {"attempts": 2, "backoff_base": 0.2, "jitter": 0}}))
    started = time.monotonic()
    text, headers = await ask(running, stream=True)
    assert (text, headers["x-llm-router-llm"]) == (primary.text(), "primary")
    assert [round(b.at - a.at, 1) for a, b in zip(primary.received, primary.received[1:], strict=False)] == \
        [0.2, 0.4]  # 0.2 s then 0.4 s: doubling backoff
    assert time.monotonic() - started <= 0.6 + SLACK
    assert not backup.received
    assert metric(await metric_samples(running), "llm_router_retries_total", llm="primary", reason="http_503") == 2


async def test_retries_used_up_then_the_next_llm(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    primary.script.status = 500
    running = await router(route_config(primary, backup, primary_extra={"retry": {"attempts": 1,
                                                                                  "backoff_base": 0.05}}))
    _text, headers = await ask(running)
    assert (headers["x-llm-router-llm"], headers["x-llm-router-fallbacks"]) == ("backup", "primary")
    assert len(primary.received) == 2


async def test_a_refusal_is_not_retried(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    primary.script.status = 400
    running = await router(route_config(primary, backup, primary_extra={"retry": {"attempts": 3}}))
    status, _body, _ = await post(f"{running.base_url}/chat/completions",
                                 json_body={"model": "router:p", "messages": [{"role": "user", "content": "x"}]})
    assert status == 400 and len(primary.received) == 1 and not backup.received


# ------------------------------------------------------------------ circuit breaker

async def test_circuit_opens_skips_the_llm_then_probes_and_closes(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    primary.script.status = 500
    running = await router(route_config(primary, backup, primary_extra={
        "circuit_breaker": {"failures": 2, "open_seconds": 0.5}}))
    for _ in range(2):
        assert (await ask(running))[1]["x-llm-router-llm"] == "backup"
    health = await llms_health(running)
    assert health["primary"]["circuit"]["state"] == "open"
    assert 0 < health["primary"]["circuit"]["retry_in_seconds"] <= 0.5
    assert health["backup"]["circuit"]["state"] == "closed"
    samples = await metric_samples(running)
    assert metric(samples, "llm_router_circuit_state", llm="primary") == 2
    assert metric(samples, "llm_router_circuit_transitions_total", llm="primary", state="open") == 1

    # Open: the primary is not called at all.
    _text, headers = await ask(running)
    assert (headers["x-llm-router-llm"], headers["x-llm-router-fallbacks"]) == ("backup", "")
    assert len(primary.received) == 2
    assert metric(await metric_samples(running), "llm_router_skipped_total", llm="primary", reason="circuit_open") == 1

    # After open_seconds one probe goes through; the primary has recovered, so the circuit closes.
    primary.script.status = 200
    await asyncio.sleep(0.6)
    assert (await ask(running))[1]["x-llm-router-llm"] == "primary"
    assert (await llms_health(running))["primary"]["circuit"]["state"] == "closed"
    samples = await metric_samples(running)
    assert metric(samples, "llm_router_circuit_state", llm="primary") == 0
    assert metric(samples, "llm_router_circuit_transitions_total", llm="primary", state="half-open") == 1
    assert metric(samples, "llm_router_circuit_transitions_total", llm="primary", state="closed") == 1


async def test_a_failed_probe_opens_the_circuit_again(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    primary.script.status = 503
    running = await router(route_config(primary, backup, primary_extra={
        "circuit_breaker": {"failures": 1, "open_seconds": 0.3}}))
    await ask(running)
    await asyncio.sleep(0.4)
    await ask(running)  # the probe fails
    assert len(primary.received) == 2
    assert (await llms_health(running))["primary"]["circuit"]["state"] == "open"
    await ask(running)
    assert len(primary.received) == 2


async def test_refusals_and_rate_limits_do_not_open_the_circuit(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    running = await router(route_config(primary, backup, primary_extra={"circuit_breaker": {"failures": 1}}))
    for status in (400, 429, 400):
        primary.script.status = status
        await post(f"{running.base_url}/chat/completions",
                   json_body={"model": "primary", "messages": [{"role": "user", "content": "x"}]})
    assert (await llms_health(running))["primary"]["circuit"]["state"] == "closed"


async def test_a_stream_breaking_mid_way_counts_as_a_failure(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    primary.script.chunks, primary.script.cut_after = ["a", "b", "c"], 1
    running = await router(route_config(primary, backup, primary_extra={"circuit_breaker": {"failures": 1}}))
    with pytest.raises(openai.APIError, match="broke off"):
        await ask(running, stream=True)
    assert (await llms_health(running))["primary"]["circuit"]["state"] == "open"


async def test_all_circuits_open_is_a_quick_503_with_retry_after(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    primary.script.status = backup.script.status = 500
    breaker = {"circuit_breaker": {"failures": 1, "open_seconds": 30}}
    running = await router(route_config(primary, backup, primary_extra=breaker, backup_extra=breaker))
    body = {"model": "router:p", "messages": [{"role": "user", "content": "x"}]}
    assert (await post(f"{running.base_url}/chat/completions", json_body=body))[0] == 502
    status, error, headers = await post(f"{running.base_url}/chat/completions", json_body=body)
    assert status == 503
    assert_openai_error(error, error_type="service_unavailable", code="llm_circuit_open",
                        mentions=("primary", "backup"))
    assert 25 <= int(headers["retry-after"]) <= 30
    assert len(primary.received) == len(backup.received) == 1


async def test_breaker_state_survives_a_config_reload(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    primary.script.status = 500
    config = route_config(primary, backup, primary_extra={"circuit_breaker": {"failures": 1, "open_seconds": 30}})
    running = await router(config)
    await ask(running)
    holder = running.app[STATE].holder
    changed = route_config(primary, backup, primary_extra={"circuit_breaker": {"failures": 1, "open_seconds": 30},
                                                           "context_window": 100_000})
    assert holder.apply(RouterConfig.model_validate(changed))
    assert (await llms_health(running))["primary"]["circuit"]["state"] == "open"
    await ask(running)
    assert len(primary.received) == 1
    # An LLM that leaves the config takes its state with it; coming back, it starts closed.
    only_backup = {"llms": [llm("backup", backup)], "router": {}}
    assert holder.apply(RouterConfig.model_validate(only_backup))
    assert holder.apply(RouterConfig.model_validate(changed))
    assert (await llms_health(running))["primary"]["circuit"]["state"] == "closed"


# ------------------------------------------------------------------ replicas

async def test_replicas_share_the_load_by_least_outstanding(router, upstreams):
    one, two, backup = await upstreams("one"), await upstreams("two"), await upstreams("backup")
    one.script.delay = two.script.delay = 0.5
    running = await router(route_config(one, backup, primary_extra={"endpoints": [{"api_base": two.api_base}]}))

    async def health_while_busy() -> dict:
        await wait_until(lambda: len(one.received) + len(two.received) == 10)
        return await llms_health(running)

    results = await asyncio.gather(*(ask(running) for _ in range(10)), health_while_busy())
    assert all(headers["x-llm-router-llm"] == "primary" for _, headers in results[:10])
    assert (len(one.received), len(two.received)) == (5, 5)
    busy = results[10]["primary"]
    assert busy["in_flight"] == 10
    assert [endpoint["in_flight"] for endpoint in busy["endpoints"]] == [5, 5]
    idle = (await llms_health(running))["primary"]
    assert idle["in_flight"] == 0
    assert [endpoint["api_base"] for endpoint in idle["endpoints"]] == [one.api_base, two.api_base]
    assert all(endpoint["latency_ms"] >= 500 for endpoint in idle["endpoints"])


async def test_canary_weights_split_the_traffic(router, upstreams):
    stable, canary, backup = await upstreams("stable"), await upstreams("canary"), await upstreams("backup")
    running = await router(route_config(stable, backup, primary_extra={
        "weight": 80, "endpoints": [{"api_base": canary.api_base, "weight": 20}]}))
    for _ in range(200):
        await ask(running)
    assert len(stable.received) + len(canary.received) == 200
    assert 15 <= len(canary.received) <= 70  # 20% expected (40); binomial sd is about 6


async def test_a_replica_with_weight_zero_gets_nothing(router, upstreams):
    stable, drained, backup = await upstreams("stable"), await upstreams("drained"), await upstreams("backup")
    running = await router(route_config(stable, backup, primary_extra={
        "endpoints": [{"api_base": drained.api_base, "weight": 0}]}))
    await asyncio.gather(*(ask(running) for _ in range(6)))
    assert (len(stable.received), len(drained.received)) == (6, 0)


async def test_latency_weighted_prefers_the_faster_replica(router, upstreams):
    slow, fast, backup = await upstreams("slow"), await upstreams("fast"), await upstreams("backup")
    slow.script.delay = 0.3
    running = await router(route_config(slow, backup, primary_extra={
        "balancing": "latency_weighted", "endpoints": [{"api_base": fast.api_base}]}))
    for _ in range(12):
        await ask(running)
    # Each is measured once (an unmeasured replica scores 0), then the fast one takes the rest.
    assert len(slow.received) == 1 and len(fast.received) == 11


# ------------------------------------------------------------------ concurrency limit

async def test_max_concurrency_waits_briefly_then_429(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    primary.script.delay = 1.5
    running = await router(route_config(primary, backup, primary_extra={
        "max_concurrency": 1, "timeouts": {"queue": 0.3}}))
    body = {"model": "primary", "messages": [{"role": "user", "content": "x"}]}
    first = asyncio.create_task(post(f"{running.base_url}/chat/completions", json_body=body))
    await wait_until(lambda: len(primary.received) == 1)
    started = time.monotonic()
    status, error, headers = await post(f"{running.base_url}/chat/completions", json_body=body)
    assert status == 429
    assert 0.3 <= time.monotonic() - started <= 0.3 + SLACK
    assert_openai_error(error, error_type="rate_limit_error", code="llm_concurrency_limit", mentions=("1",))
    assert headers["retry-after"] == "1"
    # On a route, the full LLM is passed over for the next one instead.
    _, route_headers = await ask(running)
    assert (route_headers["x-llm-router-llm"], route_headers["x-llm-router-fallbacks"]) == ("backup", "primary")
    assert (await first)[0] == 200


# ------------------------------------------------------------------ context window

async def test_a_prompt_too_long_for_an_llm_goes_to_the_next_that_fits(router, upstreams):
    small, big = await upstreams("small"), await upstreams("big")
    running = await router(route_config(small, big, primary_extra={"context_window": 1000},
                                        backup_extra={"context_window": 100_000}))
    text, headers = await ask(running, content="word " * 800, max_tokens=200)  # ~1000 + 4 + 200 tokens
    assert (text, headers["x-llm-router-llm"]) == (big.text(), "backup") and not small.received
    _text, headers = await ask(running, content="word " * 100)
    assert headers["x-llm-router-llm"] == "primary"
    samples = await metric_samples(running)
    assert metric(samples, "llm_router_skipped_total", llm="primary", reason="context_window") == 1


@pytest.mark.parametrize("path", ["chat/completions", "completions"])
async def test_a_prompt_too_long_for_every_llm_is_400(router, upstreams, path):
    small, big = await upstreams("small"), await upstreams("big")
    running = await router(route_config(small, big, primary_extra={"context_window": 1000},
                                        backup_extra={"context_window": 4000}))
    text = "x" * 20_000
    body = {"model": "router:p", "messages": [{"role": "user", "content": text}]} if path.startswith("chat") \
        else {"model": "router:p", "prompt": text}
    status, error, _ = await post(f"{running.base_url}/{path}", json_body=body)
    assert status == 400
    assert_openai_error(error, error_type="invalid_request_error", code="context_length_exceeded",
                        param="messages" if path.startswith("chat") else "prompt",
                        mentions=("5004" if path.startswith("chat") else "5000", "4000"))
    assert not small.received and not big.received


async def test_health_lists_every_llm(router, upstreams):
    primary, backup = await upstreams("primary"), await upstreams("backup")
    running = await router(route_config(primary, backup))
    await ask(running)
    health = await llms_health(running)
    assert list(health) == ["primary", "backup"]
    assert health["primary"] == {
        "name": "primary", "model": "primary-model-id",
        "circuit": {"state": "closed", "consecutive_failures": 0, "retry_in_seconds": 0.0}, "in_flight": 0,
        "endpoints": [{"api_base": primary.api_base, "weight": 100, "in_flight": 0,
                       "latency_ms": health["primary"]["endpoints"][0]["latency_ms"]}]}
    assert health["primary"]["endpoints"][0]["latency_ms"] > 0
    assert health["backup"]["endpoints"][0]["latency_ms"] is None
    assert Counter(entry["circuit"]["state"] for entry in health.values()) == {"closed": 2}
