"""Limits on what a client may send: header size, read deadlines, and the
HTTP server options that enforce them while parsing.

Two layers. aiohttp's parser caps one header line at ``max_header_bytes``
and closes connections idle (or stuck in their headers) past
``header_read_timeout_seconds``; a request over the parser's cap gets aiohttp's
own plain-text 400 and a closed connection. Within that, the middleware checks
the total of all headers and answers 431 in the OpenAI error format. Body
size and read time are checked while the body is read (413, 408).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .config import RequestLimits
from .errors import RouterError

MAX_HEADER_COUNT = 128
LINGERING_SECONDS = 1.0


class HeadersTooLarge(RouterError):
    status = 431
    error_type = "invalid_request_error"


class RequestTimeout(RouterError):
    status = 408
    error_type = "invalid_request_error"


def header_bytes(raw_headers: Iterable[tuple[bytes, bytes]]) -> int:
    """Bytes of all header names and values (as ``name: value\\r\\n``)."""
    return sum(len(name) + len(value) + 4 for name, value in raw_headers)


def check_headers(raw_headers: Iterable[tuple[bytes, bytes]], limits: RequestLimits) -> None:
    size = header_bytes(raw_headers)
    if size > limits.max_header_bytes:
        raise HeadersTooLarge(f"the request headers have {size} bytes; the limit is {limits.max_header_bytes}",
                              code="headers_too_large", headers={"Connection": "close"})


def server_options(limits: RequestLimits) -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner`` that make aiohttp's parser enforce ``limits``."""
    return {
        "max_line_size": limits.max_header_bytes,
        "max_field_size": limits.max_header_bytes,
        "max_headers": MAX_HEADER_COUNT,
        "keepalive_timeout": limits.header_read_timeout_seconds,
        # After an early answer (413, 408) aiohttp reads and drops the rest of the body before
        # closing; a slow client must not hold the connection for its default 10 s.
        "lingering_time": LINGERING_SECONDS,
    }
