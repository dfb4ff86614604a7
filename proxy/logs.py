"""Log lines: JSON (one object per line) or text, each stamped with the request id.

The request id lives in a context variable set by the app's middleware; every
line logged while a request is handled carries it, whichever module logs.
Structured fields go in ``extra={"fields": {...}}`` and become keys of the
JSON object (``key=value`` pairs in text). Nothing here decides what is
logged: prompts, completions and keys stay out unless ``router.log_prompts``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any, Literal

from aiohttp.http_exceptions import HttpProcessingError

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("llm_router_request_id", default=None)

LogFormat = Literal["json", "text"]

_RESERVED = frozenset({"ts", "level", "logger", "msg", "request_id", "exc"})


class RequestIdFilter(logging.Filter):
    """Stamps ``record.request_id`` from the context when the line is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs a request its parser refuses at ERROR with a traceback quoting
    the offending bytes, which can be a header carrying an API key. Keep the fact,
    drop the bytes: one warning line with the error's class."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = "refused a malformed HTTP request from %s: %s (status %s)"
            record.args = (record.args[0] if isinstance(record.args, tuple) and record.args else "?",
                           type(exc).__name__, exc.code)
            record.exc_info = None
            record.exc_text = None
            record.levelno = logging.WARNING
            record.levelname = "WARNING"
        return True


_MALFORMED_FILTER = MalformedRequestFilter()


def redact_library_logs() -> None:
    """Install the filters that keep request bytes out of library log lines (idempotent)."""
    server_log = logging.getLogger("aiohttp.server")
    if _MALFORMED_FILTER not in server_log.filters:
        server_log.addFilter(_MALFORMED_FILTER)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "request_id"?, <fields>..., "exc"?}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        for key, value in _fields(record).items():
            line[key if key not in _RESERVED else f"field_{key}"] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger> [<request id>] <message> key=value ...``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            text += f" request_id={request_id}"
        fields = _fields(record)
        if fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return text


def _timestamp(created: float) -> str:
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"


def log_handler(log_format: LogFormat, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    return handler


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Root logging for ``llm-router serve``: one handler, the chosen format."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(log_handler(log_format))
    root.setLevel(level.upper())
