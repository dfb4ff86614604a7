"""Errors in the OpenAI format: ``{"error": {"message", "type", "param", "code"}}``.

Handlers raise ``RouterError``; one middleware turns it (and anything
unexpected) into a JSON response with the right status. Messages never carry
prompts, completions or keys.
"""

from __future__ import annotations

import json
from typing import Any


class RouterError(Exception):
    """An error answered to the client in the OpenAI error shape."""

    status = 500
    error_type = "server_error"
    raw_body: bytes | None = None
    """An upstream's own OpenAI-format error body, passed on as it came."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.error_type, param=self.param, code=self.code)


class InvalidRequest(RouterError):
    status = 400
    error_type = "invalid_request_error"


class NotFound(RouterError):
    status = 404
    error_type = "invalid_request_error"


class MethodNotAllowed(RouterError):
    status = 405
    error_type = "invalid_request_error"


class PayloadTooLarge(RouterError):
    status = 413
    error_type = "invalid_request_error"


class TooManyRequests(RouterError):
    status = 429
    error_type = "rate_limit_error"


class UpstreamUnreachable(RouterError):
    status = 502
    error_type = "upstream_error"


class UpstreamTimeout(RouterError):
    status = 504
    error_type = "upstream_error"


class NoRoute(RouterError):
    status = 503
    error_type = "service_unavailable"


def error_body(message: str, error_type: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_bytes(message: str, error_type: str, *, param: str | None = None, code: str | None = None) -> bytes:
    return json.dumps(error_body(message, error_type, param=param, code=code)).encode()
