"""Forwarding one routed request to its LLMs and relaying the answer.

Two phases. *Obtaining* an answer has no effect on the client and can be
abandoned at any time: the route's LLMs are tried in order (skipping those
the request is too long for and those with an open circuit), each possibly
retried with backoff, and a slow one may be hedged by starting the next LLM
alongside it; a failure (no connection, a deadline, HTTP 429 or 5xx, a broken
or malformed answer) moves on. An answer is obtained when a non-streamed body
has fully arrived, or a stream has produced its first content event (events
before it are held back). *Delivering* it commits the router: a stream that
breaks later ends with an explicit error event and no ``[DONE]``, never a
clean finish with truncated text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp import web

from .active_config import ActiveConfig
from .api_keys import KeyResolver
from .balancing import Replica, choose
from .config import LLMConfig
from .context_window import estimate_tokens, fits, too_long
from .errors import NoRoute, RouterError, TooManyRequests, UpstreamTimeout, UpstreamUnreachable, error_bytes
from .llm_runtime import LLMRuntime
from .metrics import RouterMetrics
from .quality import SCORE_KEY, THRESHOLD_KEY
from .request_body import ROUTER_FIELD
from .retry import parse_retry_after, retry_wait
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
    too_large,
    usage_of,
)

log = logging.getLogger(__name__)

REQUEST_ID = "x-request-id"
QUALITY_HEADERS = {SCORE_KEY: "x-llm-router-quality-score", THRESHOLD_KEY: "x-llm-router-quality-threshold"}
"""Decision scores of ``type: quality`` policies shown as response headers."""
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
    for key, header in QUALITY_HEADERS.items():
        if key in decision.scores:
            headers[header] = f"{decision.scores[key]:.4f}"
    return headers


Outcome = Literal["success", "failure", "abandoned"]
"""How an attempt ended, for its LLM's circuit breaker."""


@dataclass(eq=False, slots=True)
class Attempt:
    """One call to one replica of one LLM, from the request sent to the answer delivered or dropped."""

    runtime: LLMRuntime
    replica: Replica
    metrics: RouterMetrics
    operation: Operation
    sent_at: float
    release_slot: Callable[[], None] | None
    response: aiohttp.ClientResponse | None = None
    relay: StreamRelay | None = None
    first: bytes = b""
    """Streams: the events up to and including the first content, held back until delivery."""
    raw: bytes = b""
    """Non-streamed answers: the whole body."""
    parsed: Any = None
    ready_at: float = 0.0
    finished: bool = False

    @property
    def endpoint(self) -> Endpoint:
        return self.replica.endpoint

    @property
    def llm(self) -> LLMConfig:
        return self.replica.endpoint.llm

    def finish(self, outcome: Outcome, error_type: str = "") -> None:
        """Release everything the attempt holds and tell the breaker how it went; idempotent."""
        if self.finished:
            return
        self.finished = True
        if self.response is not None:
            self.response.close()
        if self.release_slot is not None:
            self.release_slot()
        self.replica.outstanding -= 1
        breaker = self.runtime.breaker
        if outcome == "success":
            breaker.succeeded()
        elif outcome == "failure":
            breaker.failed()
        else:
            breaker.abandoned()
        llm = self.llm
        metrics = self.metrics
        metrics.child(metrics.inflight, llm.name).dec()
        metrics.child(metrics.upstream_duration, self.operation, llm.model, llm.name, error_type).observe(
            time.perf_counter() - self.sent_at)


def failure_outcome(failure: UpstreamFailure) -> Outcome:
    return "failure" if failure.llm_at_fault else "abandoned"


class Forwarder:
    def __init__(self, session: aiohttp.ClientSession, keys: KeyResolver, metrics: RouterMetrics, *,
                 random_share: Callable[[], float] = random.random) -> None:
        self.session = session
        self.keys = keys
        self.metrics = metrics
        self.limiter = ConcurrencyLimiter()
        self.random_share = random_share

    async def forward(self, exchange: Exchange) -> web.StreamResponse:
        plan = self._plan(exchange)
        attempt = await self._obtain(exchange, plan)
        try:
            if exchange.stream:
                return await self._relay(exchange, attempt)
            return await self._reply(exchange, attempt)
        finally:
            attempt.finish("abandoned")  # no-op unless delivery ended without deciding

    # ------------------------------------------------------------ planning

    def _plan(self, exchange: Exchange) -> list[LLMRuntime]:
        """The route's LLMs worth calling, in order; raises when there are none."""
        runtimes = exchange.active.runtimes
        candidates = [runtimes[name] for name in exchange.decision.candidates]
        if any(runtime.llm.context_window is not None for runtime in candidates):
            needed = estimate_tokens(exchange.body)
            fit = [runtime for runtime in candidates if fits(runtime.llm, needed)]
            if not fit:
                error = too_long(needed, (runtime.llm for runtime in candidates))
                error.param = "prompt" if exchange.operation == "text_completion" else "messages"
                raise error
            for runtime in candidates:
                if runtime not in fit:
                    self.metrics.child(self.metrics.skipped, runtime.llm.name, "context_window").inc()
            candidates = fit
        available = [runtime for runtime in candidates if runtime.breaker.available()]
        if not available:
            # Every circuit is open: answer at once rather than wait on LLMs known to be failing.
            wait = min(runtime.breaker.retry_in() for runtime in candidates)
            names = [runtime.llm.name for runtime in candidates]
            exchange.llm = names[0]
            raise NoRoute(f"every LLM of the route is failing and its circuit is open: {names}; retry in "
                          f"{wait:.1f}s", code="llm_circuit_open",
                          headers={"Retry-After": str(max(1, math.ceil(wait)))})
        if len(available) < len(candidates):
            for runtime in candidates:
                if runtime not in available:
                    self.metrics.child(self.metrics.skipped, runtime.llm.name, "circuit_open").inc()
        return available

    # ------------------------------------------------------------ obtaining

    async def _obtain(self, exchange: Exchange, plan: list[LLMRuntime]) -> Attempt:
        """The first usable answer from the plan's LLMs: in order, hedged where configured."""
        if any(runtime.llm.hedge_after is not None for runtime in plan[:-1]):
            return await self._hedged(exchange, plan)
        # No hedging: one call at a time, in this task (no task to create on the hot path).
        for position, runtime in enumerate(plan):
            exchange.llm = runtime.llm.name
            try:
                return await self._try_llm(exchange, runtime)
            except (UpstreamFailure, TooManyRequests) as failure:
                retryable = isinstance(failure, TooManyRequests) or failure.retryable
                if not retryable or position + 1 == len(plan):
                    raise self._client_error(failure) from None
                self._note_fallback(exchange, runtime, failure, plan[position + 1:])
        raise AssertionError("a plan always has at least one LLM")

    async def _hedged(self, exchange: Exchange, plan: list[LLMRuntime]) -> Attempt:
        """Like the plain order, but an LLM silent for its ``hedge_after`` gets the next one started beside it."""
        running: dict[asyncio.Task[Attempt], LLMRuntime] = {}
        launched = 0

        def launch() -> LLMRuntime:
            nonlocal launched
            runtime = plan[launched]
            launched += 1
            exchange.llm = runtime.llm.name
            running[asyncio.ensure_future(self._try_llm(exchange, runtime))] = runtime
            return runtime

        newest = launch()
        try:
            while True:
                hedge_after = newest.llm.hedge_after if launched < len(plan) else None
                done, _ = await asyncio.wait(running, timeout=hedge_after, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    self.metrics.child(self.metrics.hedges, newest.llm.name).inc()
                    log.info("LLM %s has not answered in %gs, also asking %s", newest.llm.name, hedge_after,
                             plan[launched].llm.name)
                    newest = launch()
                    continue
                for task in done:
                    runtime = running.pop(task)
                    try:
                        attempt = task.result()
                    except (UpstreamFailure, TooManyRequests) as failure:
                        retryable = isinstance(failure, TooManyRequests) or failure.retryable
                        if not retryable or not (running or launched < len(plan)):
                            raise self._client_error(failure) from None
                        self._note_fallback(exchange, runtime, failure, plan[launched:])
                        continue
                    exchange.llm = runtime.llm.name
                    return attempt
                if not running:
                    newest = launch()  # the last failure above was not the route's last LLM
        finally:
            await self._drop(running)

    async def _drop(self, running: dict[asyncio.Task[Attempt], LLMRuntime]) -> None:
        """Cancel the calls that lost (their upstream sees the connection close) and free what they hold."""
        for task in running:
            task.cancel()
        for outcome in await asyncio.gather(*running, return_exceptions=True):
            if isinstance(outcome, Attempt):  # finished before its cancellation arrived
                outcome.finish("abandoned")

    def _note_fallback(self, exchange: Exchange, runtime: LLMRuntime, failure: UpstreamFailure | TooManyRequests,
                       rest: list[LLMRuntime]) -> None:
        name = runtime.llm.name
        reason = failure.metric_type if isinstance(failure, UpstreamFailure) else "concurrency_limit"
        self.metrics.child(self.metrics.fallbacks, exchange.policy_label, name, reason).inc()
        if rest:
            log.warning("LLM %s failed (%s), falling back to %s", name, reason, rest[0].llm.name)
        exchange.tried.append(name)

    async def _try_llm(self, exchange: Exchange, runtime: LLMRuntime) -> Attempt:
        """One LLM of the route, tried again after retryable failures as its ``retry`` settings allow."""
        retries = 0
        while True:
            try:
                return await self._attempt(exchange, runtime)
            except UpstreamFailure as failure:
                llm = runtime.llm
                if not failure.retryable or failure.kind == "circuit_open":
                    raise
                retry_after = parse_retry_after(failure.headers.get("Retry-After"), now=time.time())
                wait = retry_wait(llm.retry, retries, retry_after, random_share=self.random_share)
                if wait is None:
                    raise
                self.metrics.child(self.metrics.retries, llm.name, failure.metric_type).inc()
                log.info("LLM %s failed (%s), trying it again in %.3fs", llm.name, failure.metric_type, wait)
                await asyncio.sleep(wait)
                retries += 1

    async def _attempt(self, exchange: Exchange, runtime: LLMRuntime) -> Attempt:
        llm = runtime.llm
        if not runtime.breaker.admit():
            raise UpstreamFailure("circuit_open", llm.name, "is failing: its circuit is open")
        slot = self.limiter.slot(llm)
        if slot is not None:
            try:
                await slot.acquire()
            except BaseException:
                runtime.breaker.abandoned()
                raise
        replica = choose(runtime.replicas, llm.balancing, random_share=self.random_share)
        replica.outstanding += 1
        self.metrics.child(self.metrics.inflight, llm.name).inc()
        attempt = Attempt(runtime, replica, self.metrics, exchange.operation, time.perf_counter(),
                          slot.release if slot is not None else None)
        try:
            if exchange.stream:
                await self._open_stream(exchange, attempt)
            else:
                await self._fetch(exchange, attempt)
        except UpstreamFailure as failure:
            attempt.finish(failure_outcome(failure), failure.metric_type)
            raise
        except BaseException:
            attempt.finish("abandoned")
            raise
        attempt.ready_at = time.perf_counter()
        replica.observe_latency(attempt.ready_at - attempt.sent_at)
        return attempt

    async def _fetch(self, exchange: Exchange, attempt: Attempt) -> None:
        """A whole non-streamed answer, which must be a JSON object."""
        llm = attempt.llm
        payload = upstream_payload(exchange.body, llm.model, ask_usage=False)
        headers = request_headers(self.keys, llm, stream=False)
        async with first_token_deadline(llm):
            attempt.response = await send(self.session, attempt.endpoint, exchange.operation, payload, headers)
        try:
            attempt.raw = await read_body(attempt.response, llm, exchange.active.config.router.max_response_bytes)
        finally:
            attempt.response.release()
        attempt.parsed = _json_or_none(attempt.raw)
        if not isinstance(attempt.parsed, dict):
            raise UpstreamFailure("protocol", llm.name, f"answered HTTP {attempt.response.status} with a body that "
                                  "is not a JSON object")

    async def _open_stream(self, exchange: Exchange, attempt: Attempt) -> None:
        """Read a stream up to its first content event (or its end), within the first-token deadline."""
        llm = attempt.llm
        client_asked_usage = bool((exchange.body.get("stream_options") or {}).get("include_usage"))
        payload = upstream_payload(exchange.body, llm.model, ask_usage=not client_asked_usage)
        headers = request_headers(self.keys, llm, stream=True)
        relay = attempt.relay = StreamRelay(strip_usage=not client_asked_usage)
        limit = exchange.active.config.router.max_response_bytes
        held: list[bytes] = []
        async with first_token_deadline(llm):
            response = attempt.response = await send(self.session, attempt.endpoint, exchange.operation, payload,
                                                     headers)
            if "text/event-stream" not in response.headers.get("Content-Type", ""):
                raise UpstreamFailure("protocol", llm.name, "asked for a stream, got "
                                      f"{response.headers.get('Content-Type', 'no content type')}")
            while not (relay.saw_content or relay.saw_done):
                chunk = await _read_chunk(response, llm)
                out = relay.feed(chunk) if chunk else relay.flush()
                _check_stream(relay, llm, limit)
                if out:
                    held.append(out)
                if not chunk:
                    if not relay.saw_done:
                        raise UpstreamFailure("protocol", llm.name, "the stream ended before any content")
                    break
        attempt.first = b"".join(held)

    # ------------------------------------------------------------ delivering

    async def _reply(self, exchange: Exchange, attempt: Attempt) -> web.StreamResponse:
        assert attempt.response is not None
        received_at = attempt.ready_at
        self._count_usage(exchange, attempt.endpoint, attempt.parsed)
        if exchange.active.config.router.log_prompts:
            log.info("completion request_id=%s %s", exchange.request.get(REQUEST_ID_KEY),
                     attempt.raw.decode(errors="replace"))
        content_type = attempt.response.headers.get("Content-Type", "application/json")
        reply = web.Response(body=attempt.raw, status=attempt.response.status, headers={"Content-Type": content_type})
        pre_upstream = attempt.sent_at - exchange.started
        reply.headers.update(decision_headers(exchange, pre_upstream + time.perf_counter() - received_at))
        attempt.finish("success")
        await reply.prepare(exchange.request)
        await reply.write_eof()
        exchange.status = attempt.response.status
        self._observe_overhead(exchange, pre_upstream + time.perf_counter() - received_at)
        return reply

    async def _relay(self, exchange: Exchange, attempt: Attempt) -> web.StreamResponse:
        """Committed to this LLM: send the stream on as it arrives."""
        response, relay, endpoint = attempt.response, attempt.relay, attempt.endpoint
        assert response is not None and relay is not None
        limit = exchange.active.config.router.max_response_bytes
        pre_upstream = attempt.sent_at - exchange.started
        reply = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
            **decision_headers(exchange, pre_upstream)})
        exchange.status = 200
        try:
            await reply.prepare(exchange.request)
            await reply.write(attempt.first)
            self._observe_overhead(exchange, pre_upstream + time.perf_counter() - attempt.ready_at)
            if relay.saw_content:
                self.metrics.child(self.metrics.time_to_first_token, exchange.policy_label, endpoint.llm.name
                                   ).observe(time.perf_counter() - exchange.started)
            while True:
                try:
                    chunk = await _read_chunk(response, endpoint.llm)
                    out = relay.feed(chunk) if chunk else relay.flush()
                    if out:
                        await reply.write(out)  # the good events before a malformed one still go out
                    _check_stream(relay, endpoint.llm, limit)
                except UpstreamFailure as failure:
                    await self._end_with_error(exchange, reply, failure)
                    attempt.finish("failure", failure.metric_type)
                    return reply
                if not chunk:
                    break
        except ConnectionResetError:
            exchange.status = CLIENT_CLOSED
            return reply
        if not relay.saw_done:
            failure = UpstreamFailure("protocol", endpoint.llm.name, "the stream ended without [DONE]")
            await self._end_with_error(exchange, reply, failure)
            attempt.finish("failure", failure.metric_type)
            return reply
        attempt.finish("success")
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
        if failure.kind == "circuit_open":
            return NoRoute(detail, code="llm_circuit_open", headers={"Retry-After": "1"})
        if failure.kind == "status" and failure.status is not None:
            if failure.status == 429:
                return TooManyRequests(detail, code="upstream_rate_limited", headers=failure.headers)
            if failure.status < 500:
                return UpstreamRejected(failure)
            return UpstreamUnreachable(detail, code="upstream_error")
        return UpstreamUnreachable(detail, code="upstream_unreachable")


def _check_stream(relay: StreamRelay, llm: LLMConfig, limit: int) -> None:
    """Raise when the stream turned out malformed or an event grows past the size limit."""
    if relay.malformed is not None:
        # The event itself stays out of the message: it may hold completion text, which is never logged.
        raise UpstreamFailure("protocol", llm.name, "sent a malformed event (its data is neither a JSON object "
                              "nor [DONE])")
    if relay.pending_bytes > limit:
        raise too_large(llm, limit)


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
