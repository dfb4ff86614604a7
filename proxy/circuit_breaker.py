"""A circuit breaker per LLM: a plain state machine over an injected clock.

closed --(``failures`` consecutive failures within ``window_seconds``)--> open
open --(``open_seconds`` passed, checked when a request asks)--> half-open
half-open --(a probe succeeds)--> closed;  half-open --(a probe fails)--> open

Consecutive, not counted over a sliding window: a success resets the count,
so a busy LLM with a low error rate is never cut off by its ordinary errors.
Every call is O(1); the forwarder asks ``admit()`` before a call and reports
exactly one of ``succeeded()``, ``failed()`` or ``abandoned()`` after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum

from .config import CircuitBreakerConfig


class CircuitState(IntEnum):
    """Values of the ``llm_router_circuit_state`` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


Transition = Callable[[CircuitState, CircuitState], None]


class CircuitBreaker:
    def __init__(self, settings: CircuitBreakerConfig, *, clock: Callable[[], float] = time.monotonic,
                 on_transition: Transition | None = None) -> None:
        self.settings = settings
        self._clock = clock
        self._on_transition = on_transition
        self.state = CircuitState.CLOSED
        self.consecutive_failures = 0
        self._first_failure_at = 0.0
        self.opened_at = 0.0
        self._probes = 0
        """Probes in flight while half-open."""

    def admit(self) -> bool:
        """May a request go to this LLM now? A ``True`` in half-open state takes a probe slot."""
        if self.state is CircuitState.CLOSED or not self.settings.enabled:
            return True
        if self.state is CircuitState.OPEN:
            if self._clock() - self.opened_at < self.settings.open_seconds:
                return False
            self._move(CircuitState.HALF_OPEN)
        if self._probes >= self.settings.half_open_probes:
            return False
        self._probes += 1
        return True

    def available(self) -> bool:
        """Would ``admit()`` say yes now? Changes nothing."""
        if self.state is CircuitState.CLOSED or not self.settings.enabled:
            return True
        if self.state is CircuitState.OPEN:
            return self._clock() - self.opened_at >= self.settings.open_seconds
        return self._probes < self.settings.half_open_probes

    def succeeded(self) -> None:
        self.consecutive_failures = 0
        if self.state is CircuitState.HALF_OPEN:
            self._probes = 0
            self._move(CircuitState.CLOSED)

    def failed(self) -> None:
        if not self.settings.enabled:
            return
        now = self._clock()
        if self.state is CircuitState.HALF_OPEN:
            self._open(now)
            return
        if self.state is CircuitState.OPEN:
            return  # a call admitted before the circuit opened: it is open already
        if self.consecutive_failures == 0 or now - self._first_failure_at > self.settings.window_seconds:
            self.consecutive_failures = 0
            self._first_failure_at = now
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.settings.failures:
            self._open(now)

    def abandoned(self) -> None:
        """The call ended without telling anything about the LLM (the client left, the LLM refused the request)."""
        if self.state is CircuitState.HALF_OPEN and self._probes:
            self._probes -= 1

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a probe through (0 unless open)."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self.opened_at + self.settings.open_seconds - self._clock())

    def _open(self, now: float) -> None:
        self.opened_at = now
        self.consecutive_failures = 0
        self._probes = 0
        self._move(CircuitState.OPEN)

    def _move(self, state: CircuitState) -> None:
        previous, self.state = self.state, state
        if self._on_transition is not None and previous is not state:
            self._on_transition(previous, state)
