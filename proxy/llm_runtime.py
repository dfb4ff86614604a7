"""Live state per LLM: its circuit breaker and its replicas' load.

Owned by the ``ConfigHolder`` and keyed by LLM name (replicas by base URL), so
it survives config reloads for every LLM that is still configured: a reload
neither closes an open circuit nor forgets the requests in flight.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .balancing import Replica
from .circuit_breaker import CircuitBreaker, CircuitState, Transition
from .config import LLMConfig, RouterConfig
from .metrics import RouterMetrics
from .upstream import Endpoint

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LLMRuntime:
    llm: LLMConfig
    breaker: CircuitBreaker
    replicas: tuple[Replica, ...]

    @property
    def in_flight(self) -> int:
        return sum(replica.outstanding for replica in self.replicas)

    def snapshot(self) -> dict[str, Any]:
        """This LLM as ``GET /health/llms`` lists it."""
        breaker = self.breaker
        return {
            "name": self.llm.name,
            "model": self.llm.model,
            "circuit": {"state": breaker.state.label, "consecutive_failures": breaker.consecutive_failures,
                        "retry_in_seconds": round(breaker.retry_in(), 3)},
            "in_flight": self.in_flight,
            "endpoints": [{"api_base": replica.endpoint.base_url, "weight": replica.weight,
                           "in_flight": replica.outstanding,
                           "latency_ms": round(replica.latency * 1000, 3) if replica.latency else None}
                          for replica in self.replicas],
        }


class LLMRuntimes:
    """Every configured LLM's ``LLMRuntime``, updated in place on reloads."""

    def __init__(self, metrics: RouterMetrics) -> None:
        self.metrics = metrics
        self.by_name: dict[str, LLMRuntime] = {}

    def update(self, config: RouterConfig) -> dict[str, LLMRuntime]:
        """Bring the state in line with ``config``; returns it by LLM name."""
        current: dict[str, LLMRuntime] = {}
        for llm in config.llms:
            runtime = self.by_name.get(llm.name)
            replicas = self._replicas(llm, runtime.replicas if runtime else ())
            if runtime is None:
                breaker = CircuitBreaker(llm.circuit_breaker, on_transition=self._transition_hook(llm.name))
                runtime = LLMRuntime(llm, breaker, replicas)
                self.metrics.child(self.metrics.circuit_state, llm.name).set(CircuitState.CLOSED)
            else:
                runtime.llm, runtime.replicas = llm, replicas
                runtime.breaker.settings = llm.circuit_breaker
            current[llm.name] = runtime
        self.by_name = current
        return current

    @staticmethod
    def _replicas(llm: LLMConfig, previous: tuple[Replica, ...]) -> tuple[Replica, ...]:
        known = {replica.endpoint.base_url: replica for replica in previous}
        replicas = []
        for base_url, weight in [(llm.base_url, llm.weight),
                                 *((replica.base_url, replica.weight) for replica in llm.endpoints)]:
            endpoint = Endpoint.of(llm, base_url)
            replica = known.get(base_url)
            if replica is None:
                replica = Replica(endpoint, weight)
            else:
                replica.endpoint, replica.weight = endpoint, weight
            replicas.append(replica)
        return tuple(replicas)

    def _transition_hook(self, name: str) -> Transition:
        metrics = self.metrics

        def moved(previous: CircuitState, state: CircuitState) -> None:
            metrics.child(metrics.circuit_state, name).set(state)
            metrics.child(metrics.circuit_transitions, name, state.label).inc()
            log.warning("circuit of LLM %s: %s -> %s", name, previous.label, state.label)
        return moved
