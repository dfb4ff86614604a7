"""Every error the router answers, in the OpenAI error shape with the right status, and failover before
anything reached the client."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import aiohttp
import openai
import pytest
from conftest import llm, task_policy
from llm_router.proxy.app import STATE
from llm_router.proxy.classifiers import Classification, ClassifierInput, ClassifierUnavailable
from llm_router.proxy.quickstart import free_port


def config_for(fast, strong, *, fast_extra: dict | None = None, policy: dict | None = None,
               **router: Any) -> dict[str, Any]:
    return {
        "router": {"default_policy": "tasks", **router},
        "llms": [llm("fast", fast, **(fast_extra or {})), llm("strong", strong)],
        "policies": [policy or task_policy()],
    }


async def post(url: str, data: bytes | None = None, *, json_body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.post(
            url, data=data, json=json_body, headers=headers) as response:
        headers_lower = {name.lower(): value for name, value in response.headers.items()}
        return response.status, await response.json(content_type=None), headers_lower


def assert_openai_error(body: dict[str, Any], *, error_type: str, code: str | None = None,
                        param: str | None = None, mentions: tuple[str, ...] = ()) -> None:
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == error_type
    if code is not None:
        assert error["code"] == code
    assert error["param"] == param
    for text in mentions:
        assert text in error["message"]
    assert "Traceback" not in error["message"]


BAD_REQUESTS = [
    # (id, raw body, status, type, code, param, words the message must contain)
    ("invalid JSON", b'{"messages": [', 400, "invalid_request_error", "invalid_json", None, ("not valid JSON",)),
    ("empty body", b"", 400, "invalid_request_error", "invalid_json", None, ("empty",)),
    ("body not an object", b"[1, 2]", 400, "invalid_request_error", "invalid_json", None, ("JSON object",)),
    ("messages missing", b'{"model": "router:tasks"}', 400, "invalid_request_error",
     "missing_required_parameter", "messages", ("messages",)),
    ("messages not a list", b'{"model": "router:tasks", "messages": "hi"}', 400, "invalid_request_error",
     None, "messages", ("non-empty array",)),
    ("message without role", b'{"model": "router:tasks", "messages": [{"content": "hi"}]}', 400,
     "invalid_request_error", None, "messages[0].role", ("role",)),
    ("content of a wrong type", b'{"model": "router:tasks", "messages": [{"role": "user", "content": 5}]}', 400,
     "invalid_request_error", None, "messages[0].content", ("string",)),
    ("unknown policy", b'{"model": "router:nope", "messages": [{"role": "user", "content": "hi"}]}', 400,
     "invalid_request_error", "policy_not_found", "model", ("'nope'", "tasks")),
    ("unknown LLM", b'{"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}', 400,
     "invalid_request_error", "model_not_found", "model", ("'gpt-9'", "router:tasks", "fast", "strong")),
    ("manual with unknown category", b'{"messages": [{"role": "user", "content": "hi"}], "nim-llm-router": '
     b'{"policy": "tasks", "routing_strategy": "manual", "model": "poetry"}}', 400, "invalid_request_error",
     "unknown_category", "nim-llm-router.model", ("code", "summary")),
    ("bad routing strategy", b'{"messages": [{"role": "user", "content": "hi"}], "nim-llm-router": '
     b'{"policy": "tasks", "routing_strategy": "magic"}}', 400, "invalid_request_error", None,
     "nim-llm-router.routing_strategy", ("manual",)),
    ("stream not a boolean", b'{"model": "fast", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}',
     400, "invalid_request_error", None, "stream", ("boolean",)),
]


@pytest.mark.parametrize(("raw", "status", "error_type", "code", "param", "mentions"),
                         [case[1:] for case in BAD_REQUESTS], ids=[case[0] for case in BAD_REQUESTS])
async def test_bad_requests_get_clear_errors(router, upstreams, raw, status, error_type, code, param, mentions):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    running = await router(config_for(fast, strong))
    got_status, body, headers = await post(f"{running.base_url}/chat/completions", raw,
                                           headers={"Content-Type": "application/json"})
    assert got_status == status
    assert_openai_error(body, error_type=error_type, code=code, param=param, mentions=mentions)
    assert headers["x-request-id"]
    assert not fast.received and not strong.received


async def test_body_over_the_limit_is_413(router, upstreams):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    running = await router(config_for(fast, strong, max_body_bytes=2048))
    big = {"model": "fast", "messages": [{"role": "user", "content": "x" * 4096}]}
    status, body, _ = await post(f"{running.base_url}/chat/completions", json_body=big)
    assert status == 413
    assert_openai_error(body, error_type="invalid_request_error", code="request_too_large", mentions=("2048",))
    # Also without a Content-Length (chunked upload).

    async def chunks():
        for _ in range(8):
            yield b"x" * 1024

    async with aiohttp.ClientSession() as session, session.post(
            f"{running.base_url}/chat/completions", data=chunks()) as response:
        assert response.status == 413
    assert not fast.received


async def test_unknown_path_and_method_in_openai_shape(router, upstreams):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    running = await router(config_for(fast, strong))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{running.base_url}/embeddingz") as response:
            assert response.status == 404
            assert_openai_error(await response.json(), error_type="invalid_request_error", code="not_found")
        async with session.get(f"{running.base_url}/chat/completions") as response:
            assert response.status == 405
            assert_openai_error(await response.json(), error_type="invalid_request_error",
                                code="method_not_allowed")


async def test_unreachable_upstream_is_502(router, upstreams):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    config = config_for(fast, strong)
    config["llms"][0]["api_base"] = f"http://127.0.0.1:{free_port()}/v1"
    running = await router(config)
    status, body, _ = await post(f"{running.base_url}/chat/completions",
                                 json_body={"model": "fast", "messages": [{"role": "user", "content": "x"}]})
    assert status == 502
    assert_openai_error(body, error_type="upstream_error", code="upstream_unreachable", mentions=("'fast'",))


async def test_slow_upstream_is_504_at_its_deadline(router, upstreams):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    fast.script.delay = 3
    running = await router(config_for(fast, strong, fast_extra={"timeouts": {"first_token": 0.3}}))
    started = time.monotonic()
    status, body, _ = await post(f"{running.base_url}/chat/completions",
                                 json_body={"model": "fast", "messages": [{"role": "user", "content": "x"}]})
    assert status == 504
    assert time.monotonic() - started < 1.5
    assert_openai_error(body, error_type="upstream_error", code="upstream_timeout", mentions=("0.3s",))


class FailingClassifier:
    """A classifier whose backend is down: a fault injected at the classifier interface."""

    kind = "failing"
    categories = ["code"]

    async def classify(self, request: ClassifierInput) -> Classification:
        raise ClassifierUnavailable("backend down")


@pytest.mark.parametrize(("failure_mode", "status"), [("closed", 503), ("open", 200)])
async def test_classifier_failure_follows_the_failure_mode(router, upstreams, failure_mode, status):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    running = await router(config_for(fast, strong, policy=task_policy(failure_mode=failure_mode)))
    holder = running.app[STATE].holder
    holder.active = dataclasses.replace(holder.active, classifiers={"tasks": FailingClassifier()})
    got, body, headers = await post(f"{running.base_url}/chat/completions", json_body={
        "model": "router:tasks", "messages": [{"role": "user", "content": "python"}]})
    assert got == status
    if failure_mode == "closed":
        assert_openai_error(body, error_type="service_unavailable", code="classifier_unavailable")
        assert not fast.received
    else:
        assert headers["x-llm-router-route"] == "default"
        assert len(fast.received) == 1


@pytest.mark.parametrize("failure", ["500", "503", "429", "unreachable", "slow"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_failover_to_the_next_llm_before_anything_was_sent(router, upstreams, failure, stream):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    config = config_for(fast, strong)
    config["llms"][1]["timeouts"] = {"first_token": 0.3}
    if failure == "unreachable":
        config["llms"][1]["api_base"] = f"http://127.0.0.1:{free_port()}/v1"
    elif failure == "slow":
        strong.script.delay = 3
    else:
        strong.script.status = int(failure)
    running = await router(config)
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key="k", max_retries=0)
    started = time.monotonic()
    raw = await client.chat.completions.with_raw_response.create(
        model="router:tasks", messages=[{"role": "user", "content": "python please"}], stream=stream)
    if stream:
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in raw.parse() if chunk.choices])
    else:
        text = raw.parse().choices[0].message.content
    assert text == fast.text()
    assert raw.headers["x-llm-router-llm"] == "fast"
    assert raw.headers["x-llm-router-fallbacks"] == "strong"
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(("status", "expected", "code"), [(500, 502, "upstream_error"),
                                                          (429, 429, "upstream_rate_limited")])
async def test_last_llm_failing_maps_to_a_gateway_error(router, upstreams, status, expected, code):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    fast.script.status = status
    fast.script.headers = {"Retry-After": "7"}
    running = await router(config_for(fast, strong))
    got, body, headers = await post(f"{running.base_url}/chat/completions",
                                    json_body={"model": "fast", "messages": [{"role": "user", "content": "x"}]})
    assert got == expected
    assert body["error"]["code"] == code
    assert "fast failed" in body["error"]["message"]  # the upstream's own message is kept
    if status == 429:
        assert headers["retry-after"] == "7"


async def test_upstream_refusal_is_passed_on_as_it_came(router, upstreams):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    fast.script.status = 400
    fast.script.error_body = {"error": {"message": "context too long", "type": "invalid_request_error",
                                        "param": "messages", "code": "context_length_exceeded"}}
    running = await router(config_for(fast, strong))
    got, body, _ = await post(f"{running.base_url}/chat/completions",
                              json_body={"model": "router:tasks", "messages": [{"role": "user", "content": "x"}]})
    assert got == 400
    assert body == fast.script.error_body
    assert not strong.received  # a refusal of the request itself is not retried elsewhere


async def test_stream_cut_mid_way_ends_with_an_error_event_not_done(router, upstreams):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    fast.script.chunks = ["one ", "two ", "three ", "four "]
    fast.script.cut_after = 2
    running = await router(config_for(fast, strong))
    async with aiohttp.ClientSession() as session, session.post(f"{running.base_url}/chat/completions", json={
            "model": "fast", "stream": True, "messages": [{"role": "user", "content": "x"}]}) as response:
        assert response.status == 200
        raw = await response.read()
    assert b"one " in raw and b"two " in raw
    assert b"[DONE]" not in raw
    assert b'"code": "stream_interrupted"' in raw
    # The official client surfaces it as an error, not as a clean (truncated) answer.
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key="k", max_retries=0)
    stream = await client.chat.completions.create(model="fast", stream=True,
                                                  messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.APIError, match="broke off"):
        async for _ in stream:
            pass


async def test_unknown_paths_do_not_mint_metric_series(router, upstreams):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    running = await router(config_for(fast, strong))
    async with aiohttp.ClientSession() as session:
        for index in range(5):
            async with session.get(f"{running.url}/probe-{index}") as response:
                assert response.status == 404
        async with session.get(f"{running.url}/metrics") as response:
            text = await response.text()
    assert "probe-" not in text
    assert 'llm_router_errors_total{endpoint="unmatched",error_type="not_found"} 5.0' in text
