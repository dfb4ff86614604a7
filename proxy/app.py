"""The HTTP API: an aiohttp application factory and its thin handlers.

``create_app`` takes a config (and optionally the file to watch) and returns
an app with no module-level state; the client session and the config watcher
live in cleanup contexts, so tests can run as many routers as they like.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from .active_config import ActiveConfig, ConfigHolder
from .api_keys import KeyResolver
from .client_auth import ClientKey, ClientKeyFile, Forbidden, authenticate, authorize, visible_models
from .config import POLICY_MODEL_PREFIX, ClientAuthSettings, RouterConfig, redacted
from .config_watch import watch_config
from .conversation import Turn, chat_turns, prompt_turns
from .drain import Drain, response_prepare_hook
from .errors import InvalidRequest, MethodNotAllowed, NotFound, PayloadTooLarge, RouterError, TooManyRequests
from .forwarding import CLIENT_CLOSED, REQUEST_ID, REQUEST_ID_KEY, Exchange, Forwarder
from .logs import REQUEST_ID as REQUEST_ID_VAR
from .logs import redact_library_logs
from .metrics import CONTENT_TYPE, RouterMetrics
from .rate_limits import RateLimiter
from .request_body import parse_json_object, validate_chat, validate_completion
from .request_limits import RequestTimeout, check_headers
from .routing import RouteDecision, Target, decide, select_target
from .upstream import Operation, new_session

log = logging.getLogger(__name__)

CLIENT_KEY = web.RequestKey("llm_router_client_key", ClientKey)
EXCHANGE = web.RequestKey("llm_router_exchange", Exchange)


@dataclass
class RouterState:
    holder: ConfigHolder
    metrics: RouterMetrics
    keys: KeyResolver = field(default_factory=KeyResolver)
    forwarder: Forwarder | None = None
    ready: bool = False
    drain: Drain = field(default_factory=Drain)
    client_key_files: dict[str, ClientKeyFile] = field(default_factory=dict)
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)
    _request_ids: Iterator[int] = field(default_factory=itertools.count)
    _id_prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def new_request_id(self) -> str:
        """Unique per process start and request, cheaper than a uuid4 per request."""
        return f"{self._id_prefix}-{next(self._request_ids):x}"


STATE = web.AppKey("llm_router_state", RouterState)


def create_app(config: RouterConfig, *, config_path: Path | None = None, reload_interval: float = 1.0,
               metrics: RouterMetrics | None = None) -> web.Application:
    metrics = metrics or RouterMetrics()
    redact_library_logs()
    state = RouterState(ConfigHolder(config, metrics, source=str(config_path) if config_path else None), metrics,
                        drain=Drain(metrics))
    # The per-config body limit is enforced while reading; this is aiohttp's hard cap.
    app = web.Application(middlewares=[_errors_middleware], client_max_size=512 * 1024 * 1024 + 1)
    app[STATE] = state
    app.on_response_prepare.append(response_prepare_hook(state.drain))
    app.cleanup_ctx.append(_upstream_session)
    app.cleanup_ctx.append(_embedded_models)
    if config_path is not None:
        app.cleanup_ctx.append(_config_watcher(config_path, reload_interval))
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_post("/v1/completions", _completions)
    app.router.add_post("/v1/route", _route)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/v1/router/config", _router_config)
    app.router.add_get("/health/live", _live)
    app.router.add_get("/health/ready", _ready)
    app.router.add_get("/health/llms", _llms_health)
    app.router.add_get("/metrics", _metrics)
    return app


async def _upstream_session(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    session = new_session()
    state.forwarder = Forwarder(session, state.keys, state.metrics)
    state.ready = True
    yield
    state.ready = False
    await session.close()


async def _embedded_models(app: web.Application) -> AsyncIterator[None]:
    """Load the sentence encoder before traffic when a policy runs a model embedded; release it on shutdown."""
    from .model_classifier import ModelClassifier

    classifiers = [getattr(c, "inner", c) for c in app[STATE].holder.active.classifiers.values()]  # quality: a wrapper
    for runtime in {id(c.runtime): c.runtime for c in classifiers if isinstance(c, ModelClassifier)}.values():
        try:
            await runtime.warm_up()
        except Exception:  # requests will fail over per their policy's failure_mode
            log.exception("could not load the sentence encoder for embedded classifiers")
    yield
    await app[STATE].holder.resources.aclose()


def _config_watcher(path: Path, interval: float) -> Callable[[web.Application], AsyncIterator[None]]:
    async def watcher(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(watch_config(app[STATE].holder, path, interval), name="config-watcher")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return watcher


# ------------------------------------------------------------------ errors


@web.middleware
async def _errors_middleware(request: web.Request,
                             handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    started = time.perf_counter()
    state = request.app[STATE]
    request_id = _client_request_id(request.headers.get(REQUEST_ID)) or state.new_request_id()
    request[REQUEST_ID_KEY] = request_id  # responses prepared by handlers carry it too
    REQUEST_ID_VAR.set(request_id)  # this request's task has its own context: every log line carries it
    try:
        settings = state.holder.active.config.router
        check_headers(request.raw_headers, settings.limits)
        state.drain.admit(request)
        if settings.auth.enabled:
            _authenticate(request, state, settings.auth)
        response = await state.drain.run(request, handler)
    except RouterError as error:
        response = _error_response(error)
        _count_error(request, error.status, error.code or error.error_type)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = _from_http_exception(exc)
        response = _error_response(error)
        _count_error(request, error.status, error.code or error.error_type)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        response = _error_response(RouterError("the router failed to handle this request", code="internal_error"))
        _count_error(request, 500, "internal_error")
    if not response.prepared:
        response.headers[REQUEST_ID] = request_id
    _access_log(request, response, started)
    return response


def _client_request_id(value: str | None) -> str | None:
    """A client's ``x-request-id``, if it is a sane one (it lands in logs and headers)."""
    if value and len(value) <= 128 and value.isprintable() and value.isascii():
        return value
    return None


def _access_log(request: web.Request, response: web.StreamResponse, started: float) -> None:
    """One line per request: the outcome and the routing decision, never the prompt or the key."""
    level = logging.DEBUG if request.path.startswith(("/health/", "/metrics")) else logging.INFO
    if not log.isEnabledFor(level):
        return
    fields: dict[str, Any] = {"method": request.method, "path": request.path, "status": response.status,
                              "duration_ms": round((time.perf_counter() - started) * 1000, 3)}
    exchange = request.get(EXCHANGE)
    if exchange is not None:
        decision = exchange.decision
        fields.update(status=exchange.status or response.status, policy=exchange.policy_label,
                      route=decision.route, category=decision.category, llm=exchange.llm,
                      fallbacks=",".join(exchange.tried), stream=exchange.stream)
    client = request.get(CLIENT_KEY)
    if client is not None:
        fields["client"] = client.name
    log.log(level, "%s %s %s", request.method, request.path, fields["status"], extra={"fields": fields})


def _authenticate(request: web.Request, state: RouterState, auth: ClientAuthSettings) -> None:
    """Every ``/v1/`` request needs a known client key; health and metrics stay open."""
    if auth.keys_file is not None and request.path.startswith("/v1/"):
        request[CLIENT_KEY] = authenticate(_client_keys(state, auth.keys_file), request.headers)


def _client_keys(state: RouterState, path: str) -> tuple[ClientKey, ...]:
    key_file = state.client_key_files.get(path)
    if key_file is None:
        key_file = state.client_key_files[path] = ClientKeyFile(path, state.metrics)
    return key_file.current()


def _error_response(error: RouterError) -> web.Response:
    body = error.raw_body or json.dumps(error.body()).encode()
    response = web.Response(body=body, status=error.status, content_type="application/json", headers=error.headers)
    if error.headers.get("Connection") == "close":
        response.force_close()  # also skips reading what is left of an unread request body
    return response


def _from_http_exception(exc: web.HTTPException) -> RouterError:
    if exc.status == 404:
        return NotFound(f"no such endpoint; this router serves {_ENDPOINTS}", code="not_found")
    if exc.status == 405:
        return MethodNotAllowed(f"method not allowed here; this router serves {_ENDPOINTS}",
                                code="method_not_allowed")
    if exc.status == 413:
        return PayloadTooLarge("the request body is too large", code="request_too_large")
    error = InvalidRequest(exc.reason or "bad request", code="bad_request")
    error.status = exc.status
    return error


_ENDPOINTS = ("POST /v1/chat/completions, POST /v1/completions, POST /v1/route, GET /v1/models, "
              "GET /v1/router/config, GET /health/live, GET /health/ready, GET /health/llms, GET /metrics")


def _count_error(request: web.Request, status: int, error_type: str) -> None:
    metrics = request.app[STATE].metrics
    # Label by the matched route, never the raw path: unknown paths must not mint new series.
    resource = request.match_info.route.resource
    endpoint = resource.canonical if resource is not None else "unmatched"
    metrics.child(metrics.errors, endpoint, error_type).inc()
    if resource is not None and request.method == "POST":
        metrics.child(metrics.requests, endpoint, "", "", "", str(status)).inc()


# ------------------------------------------------------------ completions


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    return await _routed(request, "chat")


async def _completions(request: web.Request) -> web.StreamResponse:
    return await _routed(request, "text_completion")


async def _routed(request: web.Request, operation: Operation) -> web.StreamResponse:
    started = time.perf_counter()
    state = request.app[STATE]
    active = state.holder.active  # this request's config, whatever reloads happen meanwhile
    body = await _read_json(request, active)
    decision = await _decide(request, state, active, body, operation)
    stream = body.get("stream") is True
    if active.config.router.log_prompts:
        log.info("prompt request_id=%s %s", request[REQUEST_ID_KEY],
                 json.dumps(body.get("messages", body.get("prompt")), ensure_ascii=False))
    exchange = Exchange(request, active, operation, body, decision, started, stream=stream)
    request[EXCHANGE] = exchange
    client = request.get(CLIENT_KEY)
    limiter = state.rate_limiter.limiter(client.name, client.limits, time.monotonic()) if client else None
    if limiter is not None:
        refusal = limiter.admit(time.monotonic())
        if refusal is not None:
            assert client is not None
            state.metrics.child(state.metrics.rate_limited, client.name, refusal.limit).inc()
            exchange.status = 429
            raise TooManyRequests(f"this API key's {refusal.limit.replace('_', ' ')} limit is reached; retry in "
                                  f"{refusal.retry_after_header}s", code="rate_limit_exceeded",
                                  headers={"Retry-After": refusal.retry_after_header})
    assert state.forwarder is not None
    try:
        response = await state.forwarder.forward(exchange)
    except RouterError as error:
        exchange.status = error.status
        raise
    except asyncio.CancelledError:
        exchange.status = CLIENT_CLOSED
        raise
    finally:
        _record(state.metrics, exchange, request.path, started)
        if limiter is not None:
            limiter.charge_tokens(exchange.usage_tokens, time.monotonic())
    return response


def _record(metrics: RouterMetrics, exchange: Exchange, path: str, started: float) -> None:
    decision = exchange.decision
    status = str(exchange.status or 500)
    metrics.child(metrics.requests, path, exchange.policy_label, decision.category or "", exchange.llm, status).inc()
    elapsed = time.perf_counter() - started
    metrics.child(metrics.request_duration, exchange.policy_label, exchange.llm, "true" if exchange.stream else "false"
                                    ).observe(elapsed)


async def _read_json(request: web.Request, active: ActiveConfig) -> dict[str, Any]:
    settings = active.config.router
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the request body has {request.content_length} bytes; the limit is {limit}",
                              code="request_too_large")
    timeout = settings.limits.body_read_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            raw = await _read_body(request, limit)
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout:g}s", code="request_timeout",
                             headers={"Connection": "close"}) from None
    return parse_json_object(raw)


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None:
        return await request.read()
    chunks = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        chunks += chunk
        if len(chunks) > limit:
            raise PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes", code="request_too_large")
    return bytes(chunks)


async def _decide(request: web.Request, state: RouterState, active: ActiveConfig, body: dict[str, Any],
                  operation: Operation) -> RouteDecision:
    if operation == "chat":
        validate_chat(body, active.config.router.limits.max_messages)
    else:
        validate_completion(body)
    target = select_target(body, active.config)
    turns = _turns(body, operation) if _needs_classification(target) else []
    classifier = active.classifiers.get(target.policy.name) if target.policy is not None else None
    user = body.get("user")
    decision = await decide(target, classifier, turns, request.headers, user if isinstance(user, str) else None)
    client = request.get(CLIENT_KEY)
    if client is not None:
        decision = authorize(client, decision)
    metrics = state.metrics
    if decision.classifier is not None:
        metrics.child(metrics.classification_duration, decision.policy, decision.classifier).observe(
            decision.classification_seconds)
    metrics.child(metrics.decisions, decision.policy or "direct", decision.route, decision.reason).inc()
    return decision


def _needs_classification(target: Target) -> bool:
    return target.policy is not None and target.manual_category is None


def _turns(body: dict[str, Any], operation: Operation) -> list[Turn]:
    return chat_turns(body["messages"]) if operation == "chat" else prompt_turns(body["prompt"])


# --------------------------------------------------------------- the rest


async def _route(request: web.Request) -> web.Response:
    """The decision for a chat (``messages``) or completions (``prompt``) body, without calling an LLM."""
    state = request.app[STATE]
    active = state.holder.active
    body = await _read_json(request, active)
    operation: Operation = "text_completion" if "prompt" in body and "messages" not in body else "chat"
    decision = await _decide(request, state, active, body, operation)
    return web.json_response({**decision.as_dict(), "config_revision": active.revision})


async def _models(request: web.Request) -> web.Response:
    active = request.app[STATE].holder.active
    created = int(active.applied_at)
    data = [{"id": POLICY_MODEL_PREFIX + policy.name, "object": "model", "created": created,
             "owned_by": "llm-router", "llm_router": {"kind": "policy", "categories": sorted(policy.routes)}}
            for policy in active.config.policies]
    data += [{"id": llm.name, "object": "model", "created": created, "owned_by": "llm-router",
              "llm_router": {"kind": "llm", "model": llm.model, "context_window": llm.context_window}}
             for llm in active.config.llms]
    client = request.get(CLIENT_KEY)
    if client is not None:
        data = visible_models(client, data)
    return web.json_response({"object": "list", "data": data})


async def _router_config(request: web.Request) -> web.Response:
    client = request.get(CLIENT_KEY)
    if client is not None and not client.may_see_config:
        raise Forbidden("only an API key allowed every policy (\"*\") may read the router's config",
                        code="config_not_allowed")
    holder = request.app[STATE].holder
    active = holder.active
    return web.json_response({"revision": active.revision, "applied_at": active.applied_at,
                              "source": holder.source, "last_error": holder.last_error,
                              "config": redacted(active.config)})


async def _live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _ready(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ready = state.ready and state.drain.phase == "serving"
    status = "ready" if ready else "draining" if state.drain.phase != "serving" else "not ready"
    body = {"status": status, "config_revision": state.holder.active.revision}
    return web.json_response(body, status=200 if ready else 503)


async def _llms_health(request: web.Request) -> web.Response:
    """Each configured LLM with its circuit state, requests in flight and recent latency per endpoint."""
    active = request.app[STATE].holder.active
    return web.json_response({"config_revision": active.revision,
                              "llms": [runtime.snapshot() for runtime in active.runtimes.values()]})


async def _metrics(request: web.Request) -> web.Response:
    response = web.Response(body=request.app[STATE].metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response

