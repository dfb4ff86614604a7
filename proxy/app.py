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
from .config import POLICY_MODEL_PREFIX, RouterConfig, redacted
from .config_watch import watch_config
from .conversation import Turn, chat_turns, prompt_turns
from .errors import InvalidRequest, MethodNotAllowed, NotFound, PayloadTooLarge, RouterError
from .forwarding import CLIENT_CLOSED, REQUEST_ID, REQUEST_ID_KEY, Exchange, Forwarder
from .metrics import CONTENT_TYPE, RouterMetrics
from .request_body import parse_json_object, validate_chat, validate_completion
from .routing import RouteDecision, Target, decide, select_target
from .upstream import Operation, new_session

log = logging.getLogger(__name__)

MAX_MESSAGES = 10_000


@dataclass
class RouterState:
    holder: ConfigHolder
    metrics: RouterMetrics
    keys: KeyResolver = field(default_factory=KeyResolver)
    forwarder: Forwarder | None = None
    ready: bool = False
    _request_ids: Iterator[int] = field(default_factory=itertools.count)
    _id_prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def new_request_id(self) -> str:
        """Unique per process start and request, cheaper than a uuid4 per request."""
        return f"{self._id_prefix}-{next(self._request_ids):x}"


STATE = web.AppKey("llm_router_state", RouterState)


def create_app(config: RouterConfig, *, config_path: Path | None = None, reload_interval: float = 1.0,
               metrics: RouterMetrics | None = None) -> web.Application:
    metrics = metrics or RouterMetrics()
    state = RouterState(ConfigHolder(config, metrics, source=str(config_path) if config_path else None), metrics)
    # The per-config body limit is enforced while reading; this is aiohttp's hard cap.
    app = web.Application(middlewares=[_errors_middleware], client_max_size=512 * 1024 * 1024 + 1)
    app[STATE] = state
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

    classifiers = app[STATE].holder.active.classifiers.values()
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
    request_id = request.headers.get(REQUEST_ID) or request.app[STATE].new_request_id()
    request[REQUEST_ID_KEY] = request_id  # responses prepared by handlers carry it too
    try:
        response = await handler(request)
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
    return response


def _error_response(error: RouterError) -> web.Response:
    body = error.raw_body or json.dumps(error.body()).encode()
    return web.Response(body=body, status=error.status, content_type="application/json", headers=error.headers)


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
    return response


def _record(metrics: RouterMetrics, exchange: Exchange, path: str, started: float) -> None:
    decision = exchange.decision
    status = str(exchange.status or 500)
    metrics.child(metrics.requests, path, exchange.policy_label, decision.category or "", exchange.llm, status).inc()
    elapsed = time.perf_counter() - started
    metrics.child(metrics.request_duration, exchange.policy_label, exchange.llm, "true" if exchange.stream else "false"
                                    ).observe(elapsed)
    if log.isEnabledFor(logging.INFO):
        log.info("routed policy=%s route=%s category=%s llm=%s fallbacks=%s status=%s ms=%.1f",
                 exchange.policy_label, decision.route, decision.category, exchange.llm,
                 ",".join(exchange.tried) or "-", status, elapsed * 1000)


async def _read_json(request: web.Request, active: ActiveConfig) -> dict[str, Any]:
    limit = active.config.router.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the request body has {request.content_length} bytes; the limit is {limit}",
                              code="request_too_large")
    if request.content_length is not None:
        raw = await request.read()
    else:
        chunks = bytearray()
        async for chunk in request.content.iter_chunked(64 * 1024):
            chunks += chunk
            if len(chunks) > limit:
                raise PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes",
                                      code="request_too_large")
        raw = bytes(chunks)
    return parse_json_object(raw)


async def _decide(request: web.Request, state: RouterState, active: ActiveConfig, body: dict[str, Any],
                  operation: Operation) -> RouteDecision:
    if operation == "chat":
        validate_chat(body, MAX_MESSAGES)
    else:
        validate_completion(body)
    target = select_target(body, active.config)
    turns = _turns(body, operation) if _needs_classification(target) else []
    classifier = active.classifiers.get(target.policy.name) if target.policy is not None else None
    user = body.get("user")
    decision = await decide(target, classifier, turns, request.headers, user if isinstance(user, str) else None)
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
    return web.json_response({"object": "list", "data": data})


async def _router_config(request: web.Request) -> web.Response:
    holder = request.app[STATE].holder
    active = holder.active
    return web.json_response({"revision": active.revision, "applied_at": active.applied_at,
                              "source": holder.source, "last_error": holder.last_error,
                              "config": redacted(active.config)})


async def _live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _ready(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = {"status": "ready" if state.ready else "not ready", "config_revision": state.holder.active.revision}
    return web.json_response(body, status=200 if state.ready else 503)


async def _llms_health(request: web.Request) -> web.Response:
    """Each configured LLM with its circuit state, requests in flight and recent latency per endpoint."""
    active = request.app[STATE].holder.active
    return web.json_response({"config_revision": active.revision,
                              "llms": [runtime.snapshot() for runtime in active.runtimes.values()]})


async def _metrics(request: web.Request) -> web.Response:
    response = web.Response(body=request.app[STATE].metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response

