"""Per-client request and token limits: token buckets with an injected clock.

A bucket holds up to a minute's allowance and refills continuously, so a
client may burst its whole per-minute allowance and then proceeds at the
steady rate. Requests take one unit before the call. Tokens are only known
after the call (the usage the LLM reported), so they are charged then and the
bucket may go into debt; the next request waits until it is out of debt.
Nothing here reads a clock or does I/O: callers pass ``now`` (seconds, any
monotonic origin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WINDOW_SECONDS = 60.0


@dataclass(slots=True)
class TokenBucket:
    capacity: float
    """Units per minute; also the most that can accumulate."""
    level: float
    updated: float

    @classmethod
    def full(cls, per_minute: float, now: float) -> TokenBucket:
        return cls(float(per_minute), float(per_minute), now)

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.capacity / WINDOW_SECONDS)
            self.updated = now

    def seconds_until(self, level: float) -> float:
        """How long until the bucket holds ``level`` units (0 when it already does)."""
        missing = level - self.level
        return max(0.0, missing * WINDOW_SECONDS / self.capacity)


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was refused and when to try again."""

    limit: str
    """``requests_per_minute`` or ``tokens_per_minute``."""
    retry_after: float
    """Seconds until the request would be admitted."""

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up (``Retry-After`` takes no fractions), at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class ClientLimiter:
    """The buckets of one client."""

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self.requests = (TokenBucket.full(limits.requests_per_minute, now)
                         if limits.requests_per_minute is not None else None)
        self.tokens = (TokenBucket.full(limits.tokens_per_minute, now)
                       if limits.tokens_per_minute is not None else None)

    def admit(self, now: float) -> Refusal | None:
        """Take one request from the allowance, or say why not (taking nothing)."""
        if self.tokens is not None:
            self.tokens.refill(now)
            if self.tokens.level <= 0:
                return Refusal("tokens_per_minute", self.tokens.seconds_until(min(1.0, self.tokens.capacity)))
        if self.requests is not None:
            self.requests.refill(now)
            if self.requests.level < 1:
                return Refusal("requests_per_minute", self.requests.seconds_until(1.0))
            self.requests.level -= 1
        return None

    def charge_tokens(self, tokens: int, now: float) -> None:
        """Count the tokens a call used (prompt plus completion, as reported)."""
        if self.tokens is not None and tokens > 0:
            self.tokens.refill(now)
            self.tokens.level -= tokens


class RateLimiter:
    """Limiters by client name. A client whose limits change (a new keys file)
    starts afresh with full buckets."""

    def __init__(self) -> None:
        self._clients: dict[str, ClientLimiter] = {}

    def limiter(self, name: str, limits: Limits, now: float) -> ClientLimiter | None:
        if limits.requests_per_minute is None and limits.tokens_per_minute is None:
            return None
        current = self._clients.get(name)
        if current is None or current.limits != limits:
            current = self._clients[name] = ClientLimiter(limits, now)
        return current
