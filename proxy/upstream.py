"""Calls to downstream LLMs: one pooled aiohttp session, per-LLM deadlines,
concurrency limits, and failures sorted into what the router can act on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from yarl import URL

from .api_keys import KeyResolver
from .config import LLMConfig
from .errors import TooManyRequests

Operation = Literal["chat", "text_completion"]
PATHS: dict[Operation, str] = {"chat": "/chat/completions", "text_completion": "/completions"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Everything about one LLM that does not change between requests."""

    llm: LLMConfig
    base_url: str
    urls: dict[Operation, URL]
    """Parsed once: aiohttp would otherwise parse a string URL on every request."""
    timeout: aiohttp.ClientTimeout

    @classmethod
    def of(cls, llm: LLMConfig, base_url: str | None = None) -> Endpoint:
        """The LLM at its ``api_base``, or at ``base_url`` (one of its ``endpoints``)."""
        base = base_url or llm.base_url
        t = llm.timeouts
        # sock_read bounds each wait for bytes: the idle deadline. The first
        # token's deadline is enforced around the first read by the caller.
        timeout = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.idle)
        return cls(llm, base, {op: URL(base + path) for op, path in PATHS.items()}, timeout)


class UpstreamFailure(Exception):
    """A call that produced no usable answer. ``retryable`` failures move on
    to the next LLM of the route."""

    def __init__(self, kind: Literal["connect", "timeout", "status", "protocol", "circuit_open"], llm: str,
                 detail: str, *,
                 status: int | None = None, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{llm}: {detail}")
        self.kind = kind
        self.llm = llm
        self.detail = detail
        self.status = status
        self.body = body
        self.headers = headers or {}

    @property
    def retryable(self) -> bool:
        return self.kind != "status" or self.status == 429 or (self.status or 0) >= 500

    @property
    def llm_at_fault(self) -> bool:
        """Counts against the LLM's circuit breaker: not a refusal of the request, not a rate limit."""
        return self.kind in ("connect", "timeout", "protocol") or (self.status or 0) >= 500

    @property
    def metric_type(self) -> str:
        return f"http_{self.status}" if self.kind == "status" else self.kind

    def upstream_message(self) -> str | None:
        """The LLM's own error message, when it sent one in the OpenAI shape."""
        try:
            error = json.loads(self.body).get("error")
        except (ValueError, AttributeError):
            return None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"][:500]
        return None


class ConcurrencyLimiter:
    """``max_concurrency`` per LLM: a bounded wait for a slot, then 429."""

    def __init__(self) -> None:
        self._semaphores: dict[tuple[str, int], asyncio.Semaphore] = {}

    def slot(self, llm: LLMConfig) -> _Slot | None:
        if llm.max_concurrency is None:
            return None
        key = (llm.name, llm.max_concurrency)
        semaphore = self._semaphores.get(key)
        if semaphore is None:
            semaphore = self._semaphores[key] = asyncio.Semaphore(llm.max_concurrency)
        return _Slot(semaphore, llm)


class _Slot:
    def __init__(self, semaphore: asyncio.Semaphore, llm: LLMConfig) -> None:
        self._semaphore = semaphore
        self._llm = llm

    async def acquire(self) -> None:
        try:
            await asyncio.wait_for(self._semaphore.acquire(), self._llm.timeouts.queue)
        except TimeoutError:
            raise TooManyRequests(
                f"LLM {self._llm.name!r} is at its limit of {self._llm.max_concurrency} concurrent requests",
                code="llm_concurrency_limit", headers={"Retry-After": "1"}) from None

    def release(self) -> None:
        self._semaphore.release()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


def new_session() -> aiohttp.ClientSession:
    """The one pooled client session of a router process."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60, enable_cleanup_closed=True)
    # No cookie jar: a cookie one LLM sets must never ride along on another client's request.
    return aiohttp.ClientSession(connector=connector, auto_decompress=True, trust_env=False,
                                 cookie_jar=aiohttp.DummyCookieJar(), skip_auto_headers=("User-Agent",))


def request_headers(keys: KeyResolver, llm: LLMConfig, stream: bool) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
        # Compression would hold back stream chunks and costs CPU on loopback.
        "Accept-Encoding": "identity",
        "User-Agent": "llm-router",
    }
    key = keys.key(llm.api_key)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


async def send(session: aiohttp.ClientSession, endpoint: Endpoint, operation: Operation, payload: bytes,
               headers: dict[str, str]) -> aiohttp.ClientResponse:
    """Send a request and return once the response headers are in. A non-2xx
    answer is read and raised as a failure. The caller bounds the wait with
    the first-token deadline (``first_token_deadline``)."""
    llm = endpoint.llm
    try:
        response = await session.post(endpoint.urls[operation], data=payload, headers=headers,
                                      timeout=endpoint.timeout, allow_redirects=False)
    except TimeoutError:
        raise UpstreamFailure("timeout", llm.name, "timed out connecting or waiting for the response") from None
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamFailure("connect", llm.name, f"cannot connect: {exc.strerror or exc.__class__.__name__}") \
            from None
    except (aiohttp.ClientError, ConnectionError) as exc:
        raise UpstreamFailure("connect", llm.name, f"connection failed: {exc.__class__.__name__}") from None
    if response.status >= 400:
        body = await _read_error_body(response)
        retry_after = response.headers.get("Retry-After")
        raise UpstreamFailure("status", llm.name, f"answered HTTP {response.status}", status=response.status,
                              body=body, headers={"Retry-After": retry_after} if retry_after else None)
    return response


@asynccontextmanager
async def first_token_deadline(llm: LLMConfig) -> AsyncIterator[None]:
    """Bound the wait for the start of an answer by ``timeouts.first_token``."""
    try:
        async with asyncio.timeout(llm.timeouts.first_token):
            yield
    except TimeoutError:
        raise UpstreamFailure("timeout", llm.name,
                              f"no answer within the first-token deadline ({llm.timeouts.first_token:g}s)") from None


async def read_body(response: aiohttp.ClientResponse, llm: LLMConfig, limit: int) -> bytes:
    """The whole body of a non-streaming answer, within the idle and total deadlines and ``limit`` bytes."""
    if (response.content_length or 0) > limit:
        raise too_large(llm, limit)
    try:
        body = bytearray()
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > limit:
                raise too_large(llm, limit)
        return bytes(body)
    except TimeoutError:
        raise UpstreamFailure("timeout", llm.name, "timed out reading the response body") from None
    except (aiohttp.ClientError, ConnectionError) as exc:
        raise UpstreamFailure("protocol", llm.name, f"response cut off: {exc.__class__.__name__}") from None


def too_large(llm: LLMConfig, limit: int) -> UpstreamFailure:
    return UpstreamFailure("protocol", llm.name, f"answered more than {limit} bytes (router.max_response_bytes)")


async def _read_error_body(response: aiohttp.ClientResponse, limit: int = 64 * 1024) -> bytes:
    try:
        return await response.content.read(limit)
    except (aiohttp.ClientError, TimeoutError):
        return b""
    finally:
        response.release()


def usage_of(body: Any) -> dict[str, Any] | None:
    usage = body.get("usage") if isinstance(body, dict) else None
    return usage if isinstance(usage, dict) else None
