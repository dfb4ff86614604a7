"""Structured logs: the JSON and text formats, and a scan of every line a suite of requests produces
(successes, streams, errors, a bad client key, an upstream key in use): no prompt, completion or key
appears, every line carries its request's id, and each request has one access line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml
from conftest import llm, task_policy
from llm_router.proxy.logs import REQUEST_ID, JsonFormatter, TextFormatter, log_handler

PROMPT = "PROMPT-7f3a please summarize my secret diary"
COMPLETION = ["COMPLETION-91bc ", "the diary ", "says nothing"]
CLIENT_KEY = "sk-client-5e1d0123456789abcdef"
BAD_KEY = "sk-badkey-c0ffee0123456789"
UPSTREAM_KEY = "upstream-key-d00d0123456789"
CLIENT_LOGGERS = ("openai", "httpx", "httpcore", "asyncio")
SECRETS = ["PROMPT-7f3a", "secret diary", "COMPLETION-91bc", "the diary", CLIENT_KEY, BAD_KEY, "c0ffee",
           UPSTREAM_KEY]


def record(message: str, *args: Any, **extra: Any) -> logging.LogRecord:
    return logging.LogRecord("llm_router.test", logging.INFO, __file__, 1, message, args, None, **extra)


def test_json_line_shape_with_request_id_and_fields() -> None:
    handler = log_handler("json", io.StringIO())
    token = REQUEST_ID.set("req-1")
    try:
        line = record("routed %s", "x")
        line.fields = {"policy": "tasks", "status": 200, "msg": "clash"}
        assert handler.filter(line)
    finally:
        REQUEST_ID.reset(token)
    parsed = json.loads(JsonFormatter().format(line))
    assert parsed == {"ts": parsed["ts"], "level": "info", "logger": "llm_router.test", "msg": "routed x",
                      "request_id": "req-1", "policy": "tasks", "status": 200, "field_msg": "clash"}
    assert parsed["ts"].endswith("Z")
    assert len(parsed["ts"]) == len("2026-01-01T00:00:00.000Z")


def test_json_line_without_request_and_with_exception() -> None:
    handler = log_handler("json", io.StringIO())
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        line = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    handler.filter(line)
    parsed = json.loads(JsonFormatter().format(line))
    assert "request_id" not in parsed
    assert "ValueError: boom" in parsed["exc"]
    assert "\n" not in JsonFormatter().format(line)  # one line, whatever the traceback


def test_text_format() -> None:
    line = record("GET %s", "/v1/models")
    line.request_id = "req-2"
    line.fields = {"status": 200}
    text = TextFormatter().format(line)
    assert text.endswith(" INFO llm_router.test GET /v1/models request_id=req-2 status=200")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = log_handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


async def suite(running, upstream) -> list[str]:
    """Requests of every kind; returns the request ids the router answered with."""
    ids: list[str] = []
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key=CLIENT_KEY, max_retries=0)
    messages = [{"role": "user", "content": PROMPT}]
    raw = await client.chat.completions.with_raw_response.create(model="router:tasks", messages=messages)
    assert raw.parse().choices[0].message.content == "".join(COMPLETION)
    ids.append(raw.headers["x-request-id"])
    raw = await client.chat.completions.with_raw_response.create(model="router:tasks", messages=messages,
                                                                 stream=True, extra_headers={"x-request-id": "mine-1"})
    assert "".join([chunk.choices[0].delta.content or "" async for chunk in raw.parse() if chunk.choices]) \
        == "".join(COMPLETION)
    ids.append(raw.headers["x-request-id"])
    assert ids[-1] == "mine-1"
    raw = await client.completions.with_raw_response.create(model="fast", prompt=PROMPT)
    ids.append(raw.headers["x-request-id"])
    async with aiohttp.ClientSession() as session:
        cases: list[tuple[str, str, dict[str, str], Any, int]] = [
            ("POST", "/v1/chat/completions", {"Authorization": f"Bearer {BAD_KEY}"}, {"messages": messages}, 401),
            ("POST", "/v1/chat/completions", {"Authorization": f"Bearer {CLIENT_KEY}"},
             {"messages": [{"role": "robot", "content": PROMPT}]}, 400),
            ("POST", "/v1/chat/completions", {"Authorization": f"Bearer {CLIENT_KEY}"}, PROMPT, 400),
            ("POST", "/v1/route", {"Authorization": f"Bearer {CLIENT_KEY}"}, {"messages": messages}, 200),
            ("GET", "/v1/nowhere", {"Authorization": f"Bearer {CLIENT_KEY}"}, None, 404),
            ("GET", "/health/ready", {}, None, 200),
        ]
        for method, path, headers, body, status in cases:
            payload = {"json": body} if not isinstance(body, str) else {"data": body}
            async with session.request(method, f"{running.url}{path}", headers=headers, **payload) as response:
                assert response.status == status, path
                ids.append(response.headers["x-request-id"])
        upstream.script.status = 500
        async with session.post(f"{running.base_url}/chat/completions", json={"messages": messages},
                                headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as response:
            assert response.status == 502
            ids.append(response.headers["x-request-id"])
    assert upstream.received[0].headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"  # the key was in use
    return ids


async def run_suite(router, upstreams, tmp_path: Path, monkeypatch, json_log: io.StringIO,
                    log_prompts: bool) -> tuple[list[dict[str, Any]], list[str]]:
    monkeypatch.setenv("LOGS_TEST_UPSTREAM_KEY", UPSTREAM_KEY)
    fast = await upstreams("fast")
    fast.script.chunks = COMPLETION
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "team-a", "key": CLIENT_KEY, "policies": ["*"]}]}))
    config = {"router": {"default_policy": "tasks", "log_prompts": log_prompts,
                         "auth": {"enabled": True, "keys_file": str(keys)}},
              "llms": [llm("fast", fast, api_key={"env": "LOGS_TEST_UPSTREAM_KEY"}),
                       llm("strong", fast, api_key={"env": "LOGS_TEST_UPSTREAM_KEY"})],
              "policies": [task_policy()]}
    running = await router(config)
    start = len(json_log.getvalue())
    ids = await suite(running, fast)
    lines = [json.loads(line) for line in json_log.getvalue()[start:].splitlines()]
    # The test process also hosts the clients (openai, httpx, aiohttp sessions): their lines are not the router's.
    return [line for line in lines if not line["logger"].startswith(CLIENT_LOGGERS)], ids


async def test_no_prompt_completion_or_key_in_any_log_line(router, upstreams, tmp_path: Path, monkeypatch,
                                                           json_log: io.StringIO) -> None:
    lines, ids = await run_suite(router, upstreams, tmp_path, monkeypatch, json_log, log_prompts=False)
    text = json.dumps(lines)
    for secret in SECRETS:
        assert secret not in text, secret
    assert all(line.get("request_id") in ids for line in lines), [line for line in lines
                                                                   if line.get("request_id") not in ids]
    access = {line["request_id"]: line for line in lines if line["logger"] == "llm_router.proxy.app"
              and line["msg"].startswith(("GET ", "POST "))}
    assert set(access) == set(ids)  # one access line per request
    routed = access[ids[0]]
    assert (routed["status"], routed["policy"], routed["route"], routed["llm"], routed["client"]) == \
        (200, "tasks", "summary", "fast", "team-a")
    assert routed["duration_ms"] > 0
    assert access["mine-1"]["stream"] is True
    assert access[ids[3]]["status"] == 401
    assert "client" not in access[ids[3]]
    assert access[ids[-1]]["status"] == 502
    assert (access[ids[-1]]["llm"], access[ids[-1]]["fallbacks"]) == ("strong", "fast")
    assert access[ids[-2]]["level"] == "debug"  # health probes only at debug


async def test_log_prompts_switch_is_what_puts_prompts_in_the_log(router, upstreams, tmp_path: Path, monkeypatch,
                                                                  json_log: io.StringIO) -> None:
    lines, _ = await run_suite(router, upstreams, tmp_path, monkeypatch, json_log, log_prompts=True)
    text = json.dumps(lines)
    assert "PROMPT-7f3a" in text
    assert "COMPLETION-91bc" in text
    for key in (CLIENT_KEY, BAD_KEY, UPSTREAM_KEY):  # keys never, even then
        assert key not in text


async def test_a_malformed_request_is_logged_without_its_bytes(router, upstreams, json_log: io.StringIO) -> None:
    fast = await upstreams("fast")
    running = await router({"llms": [llm("fast", fast)]})
    start = len(json_log.getvalue())
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + CLIENT_KEY.encode()
                 + b"\x01\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.0 400")
    lines = [json.loads(line) for line in json_log.getvalue()[start:].splitlines()]
    server_lines = [line for line in lines if line["logger"] == "aiohttp.server"]
    assert [(line["level"], line["msg"]) for line in server_lines] == [
        ("warning", "refused a malformed HTTP request from 127.0.0.1: BadHttpMessage (status 400)")]
    assert CLIENT_KEY not in json_log.getvalue()[start:]
