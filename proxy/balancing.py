"""Choosing among equivalent servers (replicas) of one LLM.

Each replica has a weight (0..100) and live load: requests outstanding and an
exponentially weighted moving average of its latency. The choice minimises a
score per unit of weight; ties, which is every choice on an idle LLM, are
split at random in proportion to the weights, so a 90/10 canary split holds
at low load and under load the outstanding requests settle in proportion to
the weights. O(replicas) per request: a handful of float operations.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from .upstream import Endpoint

Balancing = Literal["least_outstanding", "latency_weighted"]

LATENCY_SMOOTHING = 0.2
"""Weight of the newest sample in the latency average."""


@dataclass(eq=False, slots=True)
class Replica:
    endpoint: Endpoint
    weight: int
    outstanding: int = 0
    latency: float = 0.0
    """Moving average of seconds to the answer's start (0 until measured)."""

    def observe_latency(self, seconds: float) -> None:
        self.latency = seconds if self.latency == 0.0 else self.latency + LATENCY_SMOOTHING * (seconds - self.latency)


def score(replica: Replica, balancing: Balancing) -> float:
    """Lower is better; only for replicas with a weight."""
    if balancing == "latency_weighted":
        return replica.latency * (replica.outstanding + 1) / replica.weight
    return replica.outstanding / replica.weight


def choose(replicas: Sequence[Replica], balancing: Balancing, *,
           random_share: Callable[[], float] = random.random) -> Replica:
    """The replica for the next request. At least one replica has a weight (the config guarantees it)."""
    if len(replicas) == 1:
        return replicas[0]
    best: list[Replica] = []
    best_score = float("inf")
    for replica in replicas:
        if not replica.weight:
            continue
        value = score(replica, balancing)
        if value < best_score:
            best_score, best = value, [replica]
        elif value == best_score:
            best.append(replica)
    if len(best) == 1:
        return best[0]
    point = random_share() * sum(replica.weight for replica in best)
    for replica in best:
        point -= replica.weight
        if point < 0:
            return replica
    return best[-1]
