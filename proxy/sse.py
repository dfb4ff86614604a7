"""Watching a server-sent-event stream while relaying it.

The relay forwards each complete event as soon as it has arrived (a partial
event waits for its end), and notes what the router needs: when the first
content arrived, the token usage, whether ``[DONE]`` was seen. When the router
asked for usage on the client's behalf, the usage is taken out again so the
client gets exactly the stream it asked for.
"""

from __future__ import annotations

import json
import re
from typing import Any

_EVENT_END = re.compile(rb"\r?\n\r?\n")
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_CONTENT = re.compile(rb'"(?:content|text|reasoning_content|refusal)"\s*:\s*"(?!")|"tool_calls"\s*:\s*\[\s*\{')
_NULL_USAGE = re.compile(rb'(,\s*"usage"\s*:\s*null(?=\s*[,}]))|("usage"\s*:\s*null\s*,)')
"""A ``"usage": null`` member. Inside a JSON string its quotes would be escaped,
so this only ever matches the member itself."""
_DONE = re.compile(rb"^data:\s*\[DONE\]\s*$", re.MULTILINE)


class StreamRelay:
    def __init__(self, *, strip_usage: bool) -> None:
        self.strip_usage = strip_usage
        self.usage: dict[str, Any] | None = None
        self.saw_content = False
        self.content_events = 0
        """Events carrying content: one token each for servers that stream
        token by token (llama.cpp, vLLM); the estimate when no usage comes."""
        self.saw_done = False
        self.events = 0
        self.malformed: bytes | None = None
        """The first event whose data is neither a JSON object nor ``[DONE]``
        (neither it nor anything after it is passed on: the stream is broken)."""
        self._pending = b""

    @property
    def pending_bytes(self) -> int:
        """Size of the unfinished event held back, to bound it."""
        return len(self._pending)

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to send to the client now, given the next chunk from upstream."""
        data = self._pending + chunk if self._pending else chunk
        end = 0
        out: list[bytes] = []
        for match in _EVENT_END.finditer(data):
            event = data[end:match.end()]
            end = match.end()
            kept = self._event(event)
            if kept:
                out.append(kept)
        self._pending = data[end:]
        return b"".join(out)

    def flush(self) -> bytes:
        """Whatever is left when the upstream stream ends (an unterminated event)."""
        rest, self._pending = self._pending, b""
        return self._event(rest) if rest.strip() else b""

    def _event(self, event: bytes) -> bytes:
        # Substring checks first: the regexes run only on the few events they can match.
        self.events += 1
        if self.malformed is not None:
            return b""  # the stream is broken: nothing after it goes out
        data_at = event.find(b"data:")
        if data_at >= 0:
            data = event[data_at + 5:].strip()
            if not (data[:1] == b"{" and data[-1:] == b"}") and data != b"[DONE]":
                if self.malformed is None:
                    self.malformed = event[:200]
                return b""
        if _CONTENT.search(event):
            self.saw_content = True
            self.content_events += 1
        elif b"[DONE]" in event and _DONE.search(event):
            self.saw_done = True
            return event
        if b'"usage"' not in event:
            return event
        if _USAGE_OBJECT.search(event):
            return self._take_usage(event)
        if self.strip_usage:
            stripped = event.replace(b',"usage":null', b"")
            return _NULL_USAGE.sub(b"", stripped) if b'"usage"' in stripped else stripped
        return event

    def _take_usage(self, event: bytes) -> bytes:
        payload = _data_of(event)
        if not isinstance(payload, dict) or not isinstance(payload.get("usage"), dict):
            return event
        self.usage = payload["usage"]
        if not self.strip_usage:
            return event
        if not payload.get("choices"):
            return b""  # the usage-only chunk the client did not ask for
        payload.pop("usage")
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _data_of(event: bytes) -> Any:
    lines = [line[5:].lstrip() for line in event.splitlines() if line.startswith(b"data:")]
    try:
        return json.loads(b"\n".join(lines))
    except ValueError:
        return None
