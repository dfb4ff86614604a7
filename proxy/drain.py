"""Graceful drain: what the router does between SIGTERM and exiting.

Kubernetes sends SIGTERM while the Service may still route new connections to
the pod for a few seconds. So the phases are:

1. ``draining``: readiness answers 503 at once, requests are still served
   (each response asks the client to close its connection), for
   ``drain.delay_seconds``;
2. ``refusing``: new requests get 503 ``server_shutting_down``; requests in
   flight, streams included, get ``drain.timeout_seconds`` to finish;
3. requests still running then are interrupted: a started stream ends with an
   error event (and no ``[DONE]``), one not started gets the 503; the process exits.

Health and metrics endpoints stay answered throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web

from .config import DrainSettings
from .errors import RouterError, error_bytes
from .heap import freeze_long_lived
from .metrics import RouterMetrics

log = logging.getLogger(__name__)

Phase = Literal["serving", "draining", "refusing"]

UNTRACKED_PREFIXES = ("/health/", "/metrics")
"""Probes and scrapes: answered in every phase, never waited for."""

STREAM_RESPONSE = web.RequestKey("llm_router_stream_response", web.StreamResponse)

INTERRUPT_GRACE_SECONDS = 2.0
"""After interrupting, how long to wait for handlers to write their last bytes."""


class ShuttingDown(RouterError):
    status = 503
    error_type = "service_unavailable"


class Drain:
    """Requests in flight and the drain phase of one app."""

    def __init__(self, metrics: RouterMetrics | None = None) -> None:
        self.phase: Phase = "serving"
        self.metrics = metrics
        self._inflight: set[asyncio.Task[object]] = set()
        self._interrupted: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def begin(self) -> None:
        """Readiness false; requests still served."""
        if self.phase == "serving":
            self.phase = "draining"
            if self.metrics is not None:
                self.metrics.draining.set(1)

    def refuse(self) -> None:
        self.begin()
        self.phase = "refusing"

    async def wait_idle(self, seconds: float) -> bool:
        """Whether every request in flight finished within ``seconds``."""
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def interrupt(self) -> int:
        """Cancel every request still in flight; returns how many."""
        for task in self._inflight:
            self._interrupted.add(task)
            task.cancel("the router is shutting down")
        return len(self._inflight)

    def admit(self, request: web.Request) -> None:
        """Refuse a new request once refusing (probes and scrapes always pass)."""
        if self.phase == "refusing" and not request.path.startswith(UNTRACKED_PREFIXES):
            raise ShuttingDown("the router is shutting down; retry on another instance",
                               code="server_shutting_down", headers={"Connection": "close", "Retry-After": "1"})

    async def run(self, request: web.Request,
                  handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """``handler(request)``, counted in flight; when interrupted, the stream's error event or a 503."""
        if request.path.startswith(UNTRACKED_PREFIXES):
            return await handler(request)
        task = asyncio.current_task()
        assert task is not None
        self._track(task)
        try:
            return await handler(request)
        except asyncio.CancelledError:
            if task not in self._interrupted:
                raise
            task.uncancel()
            return await _interrupted_response(request)
        finally:
            self._untrack(task)

    def _track(self, task: asyncio.Task[object]) -> None:
        self._inflight.add(task)
        self._idle.clear()

    def _untrack(self, task: asyncio.Task[object]) -> None:
        self._inflight.discard(task)
        self._interrupted.discard(task)
        if not self._inflight:
            self._idle.set()


async def _interrupted_response(request: web.Request) -> web.StreamResponse:
    stream = request.get(STREAM_RESPONSE)
    if stream is None or not stream.prepared:
        raise ShuttingDown("the router shut down before this request finished", code="server_shutting_down",
                           headers={"Connection": "close"})
    event = error_bytes("the router shut down before this stream finished; no [DONE] follows",
                        "service_unavailable", code="server_shutting_down")
    with contextlib.suppress(ConnectionError, RuntimeError):
        await stream.write(b"data: " + event + b"\n\n")
        await stream.write_eof()
    return stream


def response_prepare_hook(drain: Drain) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """Remembers a request's stream (to end it on interruption); while draining,
    asks clients to reconnect (to another instance) after each response."""
    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        if not isinstance(response, web.Response):
            request[STREAM_RESPONSE] = response
        if drain.phase != "serving":
            response.force_close()
            response.headers["Connection"] = "close"  # headers were computed before this hook
    return on_prepare


async def drain_requests(drain: Drain, settings: DrainSettings, *, skip_delay: bool = False) -> None:
    """Run the drain phases; returns when no request is in flight (or all were interrupted)."""
    drain.begin()
    log.info("draining: readiness is false; still accepting requests for %.1fs", 0 if skip_delay
             else settings.delay_seconds, extra={"fields": {"inflight": drain.inflight}})
    if not skip_delay and settings.delay_seconds:
        await asyncio.sleep(settings.delay_seconds)
    drain.refuse()
    log.info("draining: refusing new requests; waiting up to %.1fs for %d in flight",
             settings.timeout_seconds, drain.inflight)
    if await drain.wait_idle(settings.timeout_seconds):
        log.info("drained: no request in flight")
        return
    interrupted = drain.interrupt()
    log.warning("drain budget spent: interrupted %d requests still in flight", interrupted)
    if not await drain.wait_idle(INTERRUPT_GRACE_SECONDS):
        log.error("%d requests did not end after interruption", drain.inflight)


async def serve_until_signalled(runner: web.AppRunner, drain: Drain, settings: DrainSettings, host: str,
                                port: int) -> None:
    """Serve until SIGTERM (drain fully) or SIGINT (drain without the delay), then clean up."""
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    frozen = freeze_long_lived()
    log.info("llm-router serving on http://%s:%d/v1", host, port)
    log.debug("froze %d long-lived objects out of the garbage collector's passes", frozen)
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()

    def on_signal(signum: signal.Signals) -> None:
        if not received.done():
            received.set_result(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        signum = await received
        log.info("received %s", signum.name)
        await drain_requests(drain, settings, skip_delay=signum == signal.SIGINT)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
