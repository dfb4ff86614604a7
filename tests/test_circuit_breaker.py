"""The circuit breaker as a plain state machine: a fake clock, a script of events, the states it goes through."""

from __future__ import annotations

import pytest
from llm_router.proxy.circuit_breaker import CircuitBreaker, CircuitState
from llm_router.proxy.config import CircuitBreakerConfig

CLOSED, HALF_OPEN, OPEN = CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(settings: dict, script: list[str]) -> tuple[list[object], list[tuple[CircuitState, CircuitState]]]:
    """Play ``script`` against a breaker. Steps: ``f`` failed, ``s`` succeeded, ``x`` abandoned,
    ``a`` admit (records its answer), ``v`` available (records its answer), ``t<seconds>`` time passes,
    ``?`` record the state. Returns the recorded values and the transitions seen."""
    clock = Clock()
    transitions: list[tuple[CircuitState, CircuitState]] = []
    breaker = CircuitBreaker(CircuitBreakerConfig(**settings), clock=clock,
                             on_transition=lambda old, new: transitions.append((old, new)))
    seen: list[object] = []
    for step in script:
        if step == "f":
            breaker.failed()
        elif step == "s":
            breaker.succeeded()
        elif step == "x":
            breaker.abandoned()
        elif step == "a":
            seen.append(breaker.admit())
        elif step == "v":
            seen.append(breaker.available())
        elif step.startswith("t"):
            clock.now += float(step[1:])
        elif step == "?":
            seen.append(breaker.state)
        else:
            raise AssertionError(step)
    return seen, transitions


THREE = {"failures": 3, "window_seconds": 10, "open_seconds": 5, "half_open_probes": 1}

CASES = [
    # (id, settings, script, recorded values, transitions)
    ("starts closed and admits", THREE, ["?", "a", "v"], [CLOSED, True, True], []),
    ("two failures stay closed", THREE, ["f", "f", "?", "a"], [CLOSED, True], []),
    ("three consecutive failures open", THREE, ["f", "f", "f", "?", "a", "v"], [OPEN, False, False],
     [(CLOSED, OPEN)]),
    ("a success resets the count", THREE, ["f", "f", "s", "f", "f", "?"], [CLOSED], []),
    ("failures spread beyond the window do not open", THREE, ["f", "t6", "f", "t6", "f", "?"], [CLOSED], []),
    ("the window restarts at the first failure after it", THREE, ["f", "t11", "f", "f", "f", "?"], [OPEN],
     [(CLOSED, OPEN)]),
    ("open until open_seconds pass", THREE, ["f", "f", "f", "t4.9", "a", "?"], [False, OPEN], [(CLOSED, OPEN)]),
    ("then half-open with one probe", THREE, ["f", "f", "f", "t5", "v", "a", "?", "a", "v"],
     [True, True, HALF_OPEN, False, False], [(CLOSED, OPEN), (OPEN, HALF_OPEN)]),
    ("a probe success closes", THREE, ["f", "f", "f", "t5", "a", "s", "?", "a", "a"], [True, CLOSED, True, True],
     [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]),
    ("a probe failure opens again for open_seconds", THREE, ["f", "f", "f", "t5", "a", "f", "?", "t4", "a", "t1",
                                                              "a"],
     [True, OPEN, False, True], [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (OPEN, HALF_OPEN)]),
    ("an abandoned probe frees its slot", THREE, ["f", "f", "f", "t5", "a", "a", "x", "a", "?"],
     [True, False, True, HALF_OPEN], [(CLOSED, OPEN), (OPEN, HALF_OPEN)]),
    ("half_open_probes admits that many at once", {**THREE, "half_open_probes": 2},
     ["f", "f", "f", "t5", "a", "a", "a"], [True, True, False], [(CLOSED, OPEN), (OPEN, HALF_OPEN)]),
    ("a late failure of a call admitted before opening changes nothing", THREE,
     ["f", "f", "f", "f", "f", "?", "t5", "a"], [OPEN, True], [(CLOSED, OPEN), (OPEN, HALF_OPEN)]),
    ("a late success while open does not close", THREE, ["f", "f", "f", "s", "?"], [OPEN], [(CLOSED, OPEN)]),
    ("after closing, counting starts afresh", THREE, ["f", "f", "f", "t5", "a", "s", "f", "f", "?", "f", "?"],
     [True, CLOSED, OPEN], [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED), (CLOSED, OPEN)]),
    ("failures: 1 opens at once", {**THREE, "failures": 1}, ["f", "?"], [OPEN], [(CLOSED, OPEN)]),
    ("disabled never opens", {**THREE, "enabled": False}, ["f", "f", "f", "f", "?", "a", "v"], [CLOSED, True, True],
     []),
    ("abandoned calls do not count either way", THREE, ["f", "f", "x", "x", "f", "?"], [OPEN], [(CLOSED, OPEN)]),
]


@pytest.mark.parametrize(("settings", "script", "seen", "transitions"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_breaker(settings: dict, script: list[str], seen: list[object],
                 transitions: list[tuple[CircuitState, CircuitState]]) -> None:
    assert run(settings, script) == (seen, transitions)


def test_retry_in_counts_down_while_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker(CircuitBreakerConfig(**THREE), clock=clock)
    assert breaker.retry_in() == 0.0
    for _ in range(3):
        breaker.failed()
    clock.now += 2
    assert breaker.retry_in() == pytest.approx(3.0)
    clock.now += 10
    assert breaker.retry_in() == 0.0


def test_state_labels_and_gauge_values() -> None:
    assert [(state.label, int(state)) for state in CircuitState] == [("closed", 0), ("half-open", 1), ("open", 2)]
