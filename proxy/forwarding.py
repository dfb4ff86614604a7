"""Forwarding one routed request to its LLMs and relaying the answer.

The route's LLMs are tried in order: a failure before anything reached the
client (no connection, a deadline, HTTP 429 or 5xx) moves on to the next one.
Once a stream has started, the router is committed: a later failure ends the
stream with an explicit error event and no ``[DONE]``, never a clean finish
with truncated text.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from .active_config import ActiveConfig
from .api_keys import KeyResolver
from .config import LLMConfig
from .errors import RouterError, TooManyRequests, UpstreamTimeout, UpstreamUnreachable, error_bytes
from .metrics import RouterMetrics
from .request_body import ROUTER_FIELD
from .routing import RouteDecision
from .sse import StreamRelay
from .upstream import (
    ConcurrencyLimiter,
    Endpoint,
    Operation,
    UpstreamFailure,
    first_token_deadline,
    read_body,
    request_headers,
    send,
    usage_of,
)

log = logging.getLogger(__name__)

REQUEST_ID = "x-request-id"
REQUEST_ID_KEY = web.RequestKey("request_id", str)

CLIENT_CLOSED = 499
"""Status recorded (never sent) when the client went away mid-request."""


@dataclass(slots=True)
class Exchange:
    """One client request on its way through the router."""

    request: web.Request
    active: ActiveConfig
    operation: Operation
    body: dict[str, Any]
    decision: RouteDecision
    started: float
    """``perf_counter()`` when the request arrived."""
    stream: bool = False
    tried: list[str] = field(default_factory=list)
    """LLMs that failed before the one that answered."""
    status: int = 0
    llm: str = ""
    usage_tokens: int = 0
    """Prompt plus completion tokens the LLM reported (counted against client token limits)."""

    @property
    def policy_label(self) -> str:
        return self.decision.policy or "direct"


def upstream_payload(body: dict[str, Any], model: str, *, ask_usage: bool) -> bytes:
    """The body sent upstream: router-only fields stripped, ``model`` rewritten,
    everything else exactly as the client sent it."""
    payload = {key: value for key, value in body.items() if key != ROUTER_FIELD}
    payload["model"] = model
    if ask_usage:
        payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def decision_headers(exchange: Exchange, overhead_seconds: float) -> dict[str, str]:
    decision = exchange.decision
    headers = {
        "x-llm-router-policy": decision.policy or "",
        "x-llm-router-category": decision.category or "",
        "x-llm-router-route": decision.route,
        "x-llm-router-llm": exchange.llm,
        "x-llm-router-fallbacks": ",".join(exchange.tried),
        "x-llm-router-overhead-ms": f"{overhead_seconds * 1000:.3f}",
        "x-llm-router-config-revision": exchange.active.revision,
        # The NVIDIA blueprint's header, for drop-in compatibility.
        "X-Chosen-Classifier": decision.category or decision.route,
        REQUEST_ID: exchange.request.get(REQUEST_ID_KEY, ""),
    }
    if decision.confidence is not None:
        headers["x-llm-router-confidence"] = f"{decision.confidence:.4f}"
    return headers


class Forwarder:
    def __init__(self, session: aiohttp.ClientSession, keys: KeyResolver, metrics: RouterMetrics) -> None:
        self.session = session
        self.keys = keys
        self.metrics = metrics
        self.limiter = ConcurrencyLimiter()

    async def forward(self, exchange: Exchange) -> web.StreamResponse:
        candidates = exchange.decision.candidates
        for position, name in enumerate(candidates):
            endpoint = exchange.active.endpoints[name]
            exchange.llm = name
            try:
                slot = self.limiter.slot(endpoint.llm)
                async with slot if slot is not None else contextlib.nullcontext():
                    return await self._attempt(exchange, endpoint)
            except (UpstreamFailure, TooManyRequests) as failure:
                has_next = position + 1 < len(candidates)
                retryable = isinstance(failure, TooManyRequests) or failure.retryable
                if not (has_next and retryable):
                    raise self._client_error(failure) from None
                reason = failure.metric_type if isinstance(failure, UpstreamFailure) else "concurrency_limit"
                self.metrics.child(self.metrics.fallbacks, exchange.policy_label, name, reason).inc()
                log.warning("LLM %s failed (%s), falling back to %s", name, reason, candidates[position + 1])
                exchange.tried.append(name)
        raise AssertionError("a route always has at least one LLM")

    async def _attempt(self, exchange: Exchange, endpoint: Endpoint) -> web.StreamResponse:
        llm = endpoint.llm
        inflight = self.metrics.child(self.metrics.inflight, llm.name)
        inflight.inc()
        sent_at = time.perf_counter()
        error_type = ""
        try:
            if exchange.stream:
                return await self._stream(exchange, endpoint, sent_at)
            return await self._complete(exchange, endpoint, sent_at)
        except UpstreamFailure as failure:
            error_type = failure.metric_type
            raise
        finally:
            inflight.dec()
            duration = self.metrics.child(self.metrics.upstream_duration, exchange.operation, llm.model, llm.name,
                                          error_type)
            duration.observe(time.perf_counter() - sent_at)

    async def _complete(self, exchange: Exchange, endpoint: Endpoint, sent_at: float) -> web.StreamResponse:
        llm = endpoint.llm
        payload = upstream_payload(exchange.body, llm.model, ask_usage=False)
        headers = request_headers(self.keys, llm, stream=False)
        async with first_token_deadline(llm):
            response = await send(self.session, endpoint, exchange.operation, payload, headers)
        try:
            raw = await read_body(response, llm)
        finally:
            response.release()
        received_at = time.perf_counter()
        content_type = response.headers.get("Content-Type", "application/json")
        if "json" in content_type:
            self._count_usage(exchange, endpoint, _json_or_none(raw))
        if exchange.active.config.router.log_prompts:
            log.info("completion request_id=%s %s", exchange.request.get(REQUEST_ID_KEY), raw.decode(errors="replace"))
        reply = web.Response(body=raw, status=response.status, headers={"Content-Type": content_type})
        pre_upstream = sent_at - exchange.started
        reply.headers.update(decision_headers(exchange, pre_upstream + time.perf_counter() - received_at))
        await reply.prepare(exchange.request)
        await reply.write_eof()
        exchange.status = response.status
        self._observe_overhead(exchange, pre_upstream + time.perf_counter() - received_at)
        return reply

    async def _stream(self, exchange: Exchange, endpoint: Endpoint, sent_at: float) -> web.StreamResponse:
        llm = endpoint.llm
        client_asked_usage = bool((exchange.body.get("stream_options") or {}).get("include_usage"))
        payload = upstream_payload(exchange.body, llm.model, ask_usage=not client_asked_usage)
        headers = request_headers(self.keys, llm, stream=True)
        relay = StreamRelay(strip_usage=not client_asked_usage)
        async with first_token_deadline(llm):
            response = await send(self.session, endpoint, exchange.operation, payload, headers)
            try:
                if "text/event-stream" not in response.headers.get("Content-Type", ""):
                    raise UpstreamFailure("protocol", llm.name, "asked for a stream, got "
                                          f"{response.headers.get('Content-Type', 'no content type')}")
                first = b""
                while not first:
                    chunk = await _read_chunk(response, llm)
                    if not chunk:
                        first = relay.flush()
                        if not first:
                            raise UpstreamFailure("protocol", llm.name, "stream ended before its first event")
                        break
                    first = relay.feed(chunk)
            except BaseException:
                response.close()
                raise
        first_at = time.perf_counter()
        try:
            return await self._relay(exchange, endpoint, response, relay, first, sent_at, first_at)
        finally:
            response.close()

    async def _relay(self, exchange: Exchange, endpoint: Endpoint, response: aiohttp.ClientResponse,
                     relay: StreamRelay, first: bytes, sent_at: float, first_at: float) -> web.StreamResponse:
        """Committed to this LLM: send the stream on as it arrives."""
        pre_upstream = sent_at - exchange.started
        reply = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
            **decision_headers(exchange, pre_upstream)})
        exchange.status = 200
        ttft = self.metrics.child(self.metrics.time_to_first_token, exchange.policy_label, endpoint.llm.name)
        try:
            await reply.prepare(exchange.request)
            await reply.write(first)
            self._observe_overhead(exchange, pre_upstream + time.perf_counter() - first_at)
            content_seen = relay.saw_content
            if content_seen:
                ttft.observe(time.perf_counter() - exchange.started)
            while True:
                try:
                    chunk = await _read_chunk(response, endpoint.llm)
                except UpstreamFailure as failure:
                    await self._end_with_error(exchange, reply, failure)
                    return reply
                out = relay.feed(chunk) if chunk else relay.flush()
                if out:
                    await reply.write(out)
                    if not content_seen and relay.saw_content:
                        content_seen = True
                        ttft.observe(time.perf_counter() - exchange.started)
                if not chunk:
                    break
        except ConnectionResetError:
            exchange.status = CLIENT_CLOSED
            return reply
        if not relay.saw_done:
            await self._end_with_error(exchange, reply, UpstreamFailure(
                "protocol", endpoint.llm.name, "the stream ended without [DONE]"))
            return reply
        if relay.usage is not None:
            self._count_usage(exchange, endpoint, {"usage": relay.usage})
        else:
            # The LLM ignored stream_options.include_usage (llama.cpp does): estimate the output.
            self.metrics.child(self.metrics.usage_estimated, endpoint.llm.name).inc()
            self._count_usage(exchange, endpoint, {"usage": {"completion_tokens": relay.content_events}},
                              input_known=False)
        with contextlib.suppress(ConnectionResetError):
            await reply.write_eof()
        return reply

    async def _end_with_error(self, exchange: Exchange, reply: web.StreamResponse,
                              failure: UpstreamFailure) -> None:
        """Tell the client the stream broke: an error event, and no ``[DONE]``."""
        exchange.status = 502
        self.metrics.child(self.metrics.errors, exchange.request.path, f"stream_{failure.metric_type}").inc()
        log.warning("stream from %s broke after it started: %s", failure.llm, failure.detail)
        message = f"the stream from LLM {failure.llm!r} broke off: {failure.detail}"
        event = b"data: " + error_bytes(message, "upstream_error", code="stream_interrupted") + b"\n\n"
        with contextlib.suppress(ConnectionResetError):
            await reply.write(event)
            await reply.write_eof()

    def _count_usage(self, exchange: Exchange, endpoint: Endpoint, body: Any, *, input_known: bool = True) -> None:
        usage = usage_of(body)
        if usage is None:
            return
        llm = endpoint.llm
        prompt_tokens = usage.get("prompt_tokens")
        completion_tokens = usage.get("completion_tokens")
        prompt_tokens = prompt_tokens if isinstance(prompt_tokens, int) else 0
        completion_tokens = completion_tokens if isinstance(completion_tokens, int) else 0
        exchange.usage_tokens = prompt_tokens + completion_tokens
        if input_known:
            self.metrics.child(self.metrics.token_usage, llm.name, llm.model, "input").observe(prompt_tokens)
        self.metrics.child(self.metrics.token_usage, llm.name, llm.model, "output").observe(completion_tokens)
        cost = (prompt_tokens * llm.cost.input_per_million + completion_tokens * llm.cost.output_per_million) / 1e6
        if cost:
            self.metrics.child(self.metrics.cost, llm.name).inc(cost)

    def _observe_overhead(self, exchange: Exchange, seconds: float) -> None:
        stream = "true" if exchange.stream else "false"
        self.metrics.child(self.metrics.overhead, exchange.policy_label, stream).observe(seconds)

    @staticmethod
    def _client_error(failure: UpstreamFailure | TooManyRequests) -> RouterError:
        """What the client hears when no LLM of the route could answer."""
        if isinstance(failure, RouterError):
            return failure
        upstream_message = failure.upstream_message()
        detail = f"LLM {failure.llm!r} {failure.detail}" + (f": {upstream_message}" if upstream_message else "")
        if failure.kind == "timeout":
            return UpstreamTimeout(detail, code="upstream_timeout")
        if failure.kind == "status" and failure.status is not None:
            if failure.status == 429:
                return TooManyRequests(detail, code="upstream_rate_limited", headers=failure.headers)
            if failure.status < 500:
                return UpstreamRejected(failure)
            return UpstreamUnreachable(detail, code="upstream_error")
        return UpstreamUnreachable(detail, code="upstream_unreachable")


class UpstreamRejected(RouterError):
    """The LLM refused the request (HTTP 4xx): its own answer is passed on."""

    error_type = "invalid_request_error"

    def __init__(self, failure: UpstreamFailure) -> None:
        message = failure.upstream_message() or f"LLM {failure.llm!r} {failure.detail}"
        super().__init__(message, code="upstream_rejected")
        self.status = failure.status or 400
        if failure.upstream_message() is not None:
            self.raw_body = failure.body


async def _read_chunk(response: aiohttp.ClientResponse, llm: LLMConfig) -> bytes:
    """The next bytes of a streamed body; ``b""`` at its end."""
    try:
        return await response.content.readany()
    except TimeoutError:
        raise UpstreamFailure("timeout", llm.name, f"no data for {llm.timeouts.idle:g}s (idle deadline) "
                              "or past the total deadline") from None
    except (aiohttp.ClientError, ConnectionError) as exc:
        raise UpstreamFailure("protocol", llm.name, f"connection lost mid-stream: {exc.__class__.__name__}") \
            from None


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
