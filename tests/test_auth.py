"""Client API keys: the keys file, constant-time lookup, permissions, and the router answering
401, 403, 429 and 503 in the OpenAI error format (real router, scripted upstreams, the openai client)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml
from conftest import llm, task_policy
from llm_router.proxy.client_auth import (
    ClientKey,
    Forbidden,
    KeysFileError,
    Unauthorized,
    authenticate,
    authorize,
    find_key,
    parse_keys,
    presented_key,
)
from llm_router.proxy.rate_limits import Limits
from llm_router.proxy.routing import RouteDecision
from test_proxy_api import metric, metric_samples

ADMIN = "sk-admin-0123456789abcdef"
TEAM_A = "sk-team-a-0123456789abcdef"
LIMITED = "sk-limited-0123456789abcdef"
TOKENS = "sk-tokens-0123456789abcdef"
ROTATED = "sk-rotated-0123456789abcdef"


def sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def entry(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "policies": ["*"], **fields}


# ------------------------------------------------------------------ keys file

def test_parse_keys_raw_and_hashed() -> None:
    keys = parse_keys(yaml.safe_dump({"keys": [
        entry("admin", key=ADMIN),
        entry("team-a", key_sha256=sha256(TEAM_A).upper(), policies=["tasks"], llms=["fast"],
              requests_per_minute=10, tokens_per_minute=1000),
    ]}))
    assert [key.name for key in keys] == ["admin", "team-a"]
    assert keys[0].digest == hashlib.sha256(ADMIN.encode()).digest()
    assert keys[1].digest == hashlib.sha256(TEAM_A.encode()).digest()
    assert keys[1].policies == frozenset({"tasks"})
    assert keys[1].llms == frozenset({"fast"})
    assert keys[1].limits == Limits(10, 1000)
    assert ADMIN not in repr(keys)


def test_parse_keys_json() -> None:
    assert parse_keys(json.dumps({"keys": [entry("admin", key=ADMIN)]}))[0].name == "admin"


# file content -> the exact problem reported
INVALID_KEYS_FILES = [
    pytest.param("keys: [", "not valid YAML or JSON at line 1", id="bad-yaml"),
    pytest.param("[]", "<file>: Input should be a valid dictionary or instance of _KeysFile", id="not-a-mapping"),
    pytest.param(yaml.safe_dump({"keys": [entry("a", key=ADMIN, key_sha256=sha256(ADMIN))]}),
                 "keys.0: Value error, give exactly one of key, key_sha256", id="both-key-forms"),
    pytest.param(yaml.safe_dump({"keys": [entry("a")]}),
                 "keys.0: Value error, give exactly one of key, key_sha256", id="no-key"),
    pytest.param(yaml.safe_dump({"keys": [entry("a", key="short")]}),
                 "keys.0.key: String should have at least 16 characters", id="short-key"),
    pytest.param(yaml.safe_dump({"keys": [entry("a", key_sha256="abc")]}),
                 "keys.0.key_sha256: String should match pattern '^[0-9a-fA-F]{64}$'", id="bad-hash"),
    pytest.param(yaml.safe_dump({"keys": [{"name": "a", "key": ADMIN}]}), "keys.0.policies: Field required",
                 id="no-policies"),
    pytest.param(yaml.safe_dump({"keys": [entry("a", key=ADMIN, requests_per_minute=0)]}),
                 "keys.0.requests_per_minute: Input should be greater than 0", id="zero-rpm"),
    pytest.param(yaml.safe_dump({"keys": [entry("a", key=ADMIN, secret="x")]}),
                 "keys.0.secret: Extra inputs are not permitted", id="unknown-field"),
    pytest.param(yaml.safe_dump({"keys": [entry("a", key=ADMIN), entry("a", key=TEAM_A)]}),
                 "keys.1.name: duplicate name 'a'", id="duplicate-name"),
    pytest.param(yaml.safe_dump({"keys": [entry("a", key=ADMIN), entry("b", key_sha256=sha256(ADMIN))]}),
                 "keys.1: the same key as an earlier entry", id="duplicate-key"),
]


@pytest.mark.parametrize(("text", "problem"), INVALID_KEYS_FILES)
def test_invalid_keys_file(text: str, problem: str) -> None:
    with pytest.raises(KeysFileError) as caught:
        parse_keys(text)
    assert str(caught.value) == problem
    assert ADMIN not in str(caught.value)


@pytest.mark.parametrize(("headers", "expected"), [
    pytest.param({"Authorization": f"Bearer {ADMIN}"}, ADMIN, id="bearer"),
    pytest.param({"Authorization": f"bearer   {ADMIN} "}, ADMIN, id="bearer-case-spaces"),
    pytest.param({"api-key": ADMIN}, ADMIN, id="azure-header"),
    pytest.param({"Authorization": "Basic dXNlcjpwYXNz", "api-key": ADMIN}, ADMIN, id="basic-then-api-key"),
    pytest.param({"Authorization": "Bearer "}, None, id="empty-bearer"),
    pytest.param({"Authorization": ADMIN}, None, id="no-scheme"),
    pytest.param({"api-key": "  "}, None, id="blank-api-key"),
    pytest.param({}, None, id="none"),
])
def test_presented_key(headers: dict[str, str], expected: str | None) -> None:
    assert presented_key(headers) == expected


KEYS = parse_keys(yaml.safe_dump({"keys": [
    entry("admin", key=ADMIN),
    entry("team-a", key=TEAM_A, policies=["tasks"], llms=["fast"]),
    entry("direct", key=LIMITED, policies=["tasks"], llms=["strong"]),
]}))


def test_find_key_and_authenticate() -> None:
    assert find_key(KEYS, TEAM_A).name == "team-a"  # type: ignore[union-attr]
    assert find_key(KEYS, TEAM_A + "x") is None
    assert find_key(KEYS, "\udcff") is None  # undecodable header bytes do not break the lookup
    with pytest.raises(Unauthorized) as missing:
        authenticate(KEYS, {})
    with pytest.raises(Unauthorized) as unknown:
        authenticate(KEYS, {"Authorization": "Bearer sk-nobody-0123456789"})
    assert (missing.value.code, unknown.value.code) == ("invalid_api_key", "invalid_api_key")
    assert "sk-nobody" not in unknown.value.message


def decision(policy: str | None, candidates: tuple[str, ...], route: str = "code") -> RouteDecision:
    return RouteDecision(policy, "code" if policy else None, None, route if policy else "direct",
                         "classified" if policy else "direct", candidates)


def key(name: str) -> ClientKey:
    return next(key for key in KEYS if key.name == name)


# key, decision -> candidates left, or the 403 code
AUTHORIZE = [
    pytest.param("admin", decision("tasks", ("strong", "fast")), ("strong", "fast"), id="admin-policy"),
    pytest.param("admin", decision(None, ("strong",)), ("strong",), id="admin-direct"),
    pytest.param("team-a", decision("tasks", ("strong", "fast")), ("fast",), id="llms-narrow-the-route"),
    pytest.param("team-a", decision("tasks", ("strong",)), "llm_not_allowed", id="nothing-left"),
    pytest.param("team-a", decision("other", ("fast",)), "policy_not_allowed", id="other-policy"),
    pytest.param("team-a", decision(None, ("fast",)), ("fast",), id="direct-listed-llm"),
    pytest.param("team-a", decision(None, ("strong",)), "llm_not_allowed", id="direct-unlisted-llm"),
    pytest.param("direct", decision(None, ("strong",)), ("strong",), id="direct-only-key"),
]


@pytest.mark.parametrize(("name", "asked", "outcome"), AUTHORIZE)
def test_authorize(name: str, asked: RouteDecision, outcome: tuple[str, ...] | str) -> None:
    if isinstance(outcome, str):
        with pytest.raises(Forbidden) as caught:
            authorize(key(name), asked)
        assert (caught.value.code, caught.value.status) == (outcome, 403)
        assert "admin" not in caught.value.message
        return
    assert authorize(key(name), asked).candidates == outcome


def test_unkeyed_key_sees_no_direct_llms_without_star() -> None:
    plain = parse_keys(yaml.safe_dump({"keys": [entry("p", key=ADMIN, policies=["tasks"])]}))[0]
    with pytest.raises(Forbidden):
        authorize(plain, decision(None, ("fast",)))
    assert authorize(plain, decision("tasks", ("strong", "fast"))).candidates == ("strong", "fast")


# ------------------------------------------------------------- the router

def keys_file(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"keys": entries}))
    return path


DEFAULT_ENTRIES = [
    entry("admin", key_sha256=sha256(ADMIN)),
    entry("team-a", key=TEAM_A, policies=["tasks"], llms=["fast"]),
    entry("limited", key=LIMITED, policies=["tasks"], requests_per_minute=2),
    entry("tokens", key=TOKENS, policies=["tasks"], tokens_per_minute=20),
]


@pytest.fixture
async def secured(router, upstreams, tmp_path: Path):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    path = keys_file(tmp_path / "keys.yaml", DEFAULT_ENTRIES)
    other = {**task_policy("other"), "default_route": ["strong"]}
    config = {"router": {"default_policy": "tasks", "auth": {"enabled": True, "keys_file": str(path)}},
              "llms": [llm("fast", fast), llm("strong", strong)], "policies": [task_policy(), other]}
    running = await router(config)
    running.keys_path = path
    return running


def client(running, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=running.base_url, api_key=key, max_retries=0)


CODE = [{"role": "user", "content": "fix this python bug"}]


async def test_known_key_is_served(secured) -> None:
    raw = await client(secured, ADMIN).chat.completions.with_raw_response.create(model="router:tasks",
                                                                                   messages=CODE)
    assert raw.headers["x-llm-router-llm"] == "strong"


async def raw_post(running, path: str, headers: dict[str, str], body: Any = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(
            f"{running.url}{path}", json=body or {"model": "router:tasks", "messages": CODE},
            headers=headers) as response:
        return response.status, await response.json()


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no-key"),
    pytest.param({"Authorization": "Bearer sk-unknown-0123456789"}, id="unknown-key"),
    pytest.param({"Authorization": f"Basic {ADMIN}"}, id="wrong-scheme"),
])
async def test_missing_or_unknown_key_is_401(secured, headers: dict[str, str]) -> None:
    status, body = await raw_post(secured, "/v1/chat/completions", headers)
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["type"] == "invalid_request_error"
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "sk-unknown" not in json.dumps(body)
    assert ADMIN not in json.dumps(body)


async def test_openai_client_sees_authentication_error(secured) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        await client(secured, "sk-wrong-0123456789abc").chat.completions.create(model="router:tasks",
                                                                                 messages=CODE)
    assert caught.value.code == "invalid_api_key"


async def test_api_key_header_is_accepted(secured) -> None:
    status, body = await raw_post(secured, "/v1/chat/completions", {"api-key": TEAM_A})
    assert status == 200
    assert body["choices"][0]["message"]["content"] == "Hello from upstream"


async def test_policy_and_llm_permissions_are_403(secured) -> None:
    team = client(secured, TEAM_A)
    raw = await team.chat.completions.with_raw_response.create(model="router:tasks", messages=CODE)
    assert raw.headers["x-llm-router-llm"] == "fast"  # the code route's strong LLM is not this key's
    with pytest.raises(openai.PermissionDeniedError) as policy:
        await team.chat.completions.create(model="router:other", messages=CODE)
    assert policy.value.code == "policy_not_allowed"
    with pytest.raises(openai.PermissionDeniedError) as direct:
        await team.chat.completions.create(model="strong", messages=CODE)
    assert direct.value.code == "llm_not_allowed"
    assert "admin" not in str(direct.value)
    status, body = await raw_post(secured, "/v1/route", {"Authorization": f"Bearer {TEAM_A}"},
                                  {"model": "router:other", "messages": CODE})
    assert (status, body["error"]["code"]) == (403, "policy_not_allowed")


async def test_router_config_only_for_keys_allowed_every_policy(secured) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{secured.base_url}/router/config",
                               headers={"Authorization": f"Bearer {TEAM_A}"}) as response:
            assert (response.status, (await response.json())["error"]["code"]) == (403, "config_not_allowed")
        async with session.get(f"{secured.base_url}/router/config",
                               headers={"Authorization": f"Bearer {ADMIN}"}) as response:
            assert response.status == 200


async def test_models_lists_only_what_the_key_may_use(secured) -> None:
    team = await client(secured, TEAM_A).models.list()
    assert [model.id for model in team.data] == ["router:tasks", "fast"]
    admin = await client(secured, ADMIN).models.list()
    assert [model.id for model in admin.data] == ["router:tasks", "router:other", "fast", "strong"]


async def test_request_rate_limit_is_429_with_retry_after(secured) -> None:
    limited = client(secured, LIMITED)
    for _ in range(2):
        await limited.chat.completions.create(model="router:tasks", messages=CODE)
    with pytest.raises(openai.RateLimitError) as caught:
        await limited.chat.completions.create(model="router:tasks", messages=CODE)
    assert caught.value.code == "rate_limit_exceeded"
    retry_after = int(caught.value.response.headers["Retry-After"])
    assert 1 <= retry_after <= 30
    assert caught.value.body["type"] == "rate_limit_error"  # type: ignore[index]
    # Other keys are not affected.
    await client(secured, ADMIN).chat.completions.create(model="router:tasks", messages=CODE)
    samples = await metric_samples(secured)
    assert metric(samples, "llm_router_client_rate_limited_total", client="limited",
                  limit="requests_per_minute") == 1


async def test_token_limit_counts_reported_usage_streams_included(secured) -> None:
    tokens = client(secured, TOKENS)
    await tokens.chat.completions.create(model="router:tasks", messages=CODE)  # 18 of 20 tokens
    stream = await tokens.chat.completions.create(model="router:tasks", messages=CODE, stream=True)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text == "Hello from upstream"  # 36 of 20: in debt
    with pytest.raises(openai.RateLimitError) as caught:
        await tokens.chat.completions.create(model="router:tasks", messages=CODE)
    assert "tokens per minute" in caught.value.message
    assert int(caught.value.response.headers["Retry-After"]) >= 40  # 17 tokens of debt at 1 token per 3 s


async def test_health_and_metrics_need_no_key(secured) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/health/live", "/health/ready", "/metrics"):
            async with session.get(f"{secured.url}{path}") as response:
                assert response.status == 200, path


async def test_keys_file_rotation_and_a_bad_file_keeps_the_last_good(secured, caplog) -> None:
    path: Path = secured.keys_path
    await client(secured, ADMIN).models.list()
    keys_file(path, [entry("rotated", key=ROTATED)])
    os.utime(path, ns=(1, 1))  # a different mtime even within the same clock tick
    await client(secured, ROTATED).models.list()
    with pytest.raises(openai.AuthenticationError):
        await client(secured, ADMIN).models.list()
    path.write_text(yaml.safe_dump({"keys": [{"name": "broken", "key": TEAM_A}]}))  # no policies
    with pytest.raises(openai.AuthenticationError):
        await client(secured, TEAM_A).models.list()
    await client(secured, ROTATED).models.list()  # the last good file still holds
    path.unlink()
    await client(secured, ROTATED).models.list()
    samples = await metric_samples(secured)
    assert metric(samples, "llm_router_client_keys_reloads_total", result="applied") == 2
    assert metric(samples, "llm_router_client_keys_reloads_total", result="invalid") == 2
    refusals = [record.getMessage() for record in caplog.records if "refused client keys" in record.getMessage()]
    assert len(refusals) == 2
    assert "keys.0.policies: Field required" in refusals[0]
    assert all(TEAM_A not in message and ROTATED not in message for message in refusals)


async def test_no_readable_keys_file_is_503_not_open(router, upstreams, tmp_path: Path) -> None:
    fast = await upstreams("fast")
    config = {"router": {"auth": {"enabled": True, "keys_file": str(tmp_path / "missing.yaml")}},
              "llms": [llm("fast", fast)]}
    running = await router(config)
    status, body = await raw_post(running, "/v1/chat/completions", {"Authorization": f"Bearer {ADMIN}"},
                                  {"model": "fast", "messages": CODE})
    assert (status, body["error"]["code"]) == (503, "auth_unavailable")
    assert fast.received == []


async def test_auth_off_by_default(router, upstreams) -> None:
    fast = await upstreams("fast")
    running = await router({"llms": [llm("fast", fast)]})
    status, _ = await raw_post(running, "/v1/chat/completions", {}, {"model": "fast", "messages": CODE})
    assert status == 200


def test_auth_enabled_needs_a_keys_file() -> None:
    from llm_router.proxy.config import ClientAuthSettings

    with pytest.raises(ValueError, match=r"auth\.enabled needs auth\.keys_file"):
        ClientAuthSettings(enabled=True)
    assert not ClientAuthSettings().enabled
