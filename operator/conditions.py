"""Status conditions in the ``metav1.Condition`` shape, kept as plain data.

``lastTransitionTime`` moves only when a condition's status changes: a reconcile
that reaches the same verdict with another message keeps the old time, so the
time says since when a condition has held, and an unchanged verdict yields an
identical status (which is then not written at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ACCEPTED = "Accepted"
RESOLVED_REFS = "ResolvedRefs"
READY = "Ready"
CONDITION_TYPES = (ACCEPTED, RESOLVED_REFS, READY)
MAX_MESSAGE = 32768
"""``metav1.Condition.message`` is limited to 32768 characters."""


@dataclass(frozen=True)
class Verdict:
    """One condition as decided by a reconcile, before it is dated."""

    type: str
    status: bool
    reason: str
    message: str


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(previous: list[dict[str, Any]] | None, verdicts: list[Verdict], generation: int,
                     now: str) -> list[dict[str, Any]]:
    """The conditions to write: one per verdict, in the verdicts' order, dated ``now`` when the status
    changed (or the condition is new) and keeping the previous time otherwise. Conditions of other types
    (written by someone else) are kept as they are."""
    by_type = {condition.get("type"): condition for condition in previous or []}
    merged: list[dict[str, Any]] = []
    for verdict in verdicts:
        status = "True" if verdict.status else "False"
        old = by_type.get(verdict.type)
        kept_time = old.get("lastTransitionTime") if old is not None and old.get("status") == status else None
        merged.append({
            "type": verdict.type,
            "status": status,
            "reason": verdict.reason,
            "message": verdict.message[:MAX_MESSAGE],
            "observedGeneration": generation,
            "lastTransitionTime": kept_time or now,
        })
    ours = {verdict.type for verdict in verdicts}
    merged += [condition for kind, condition in by_type.items() if kind not in ours]
    return merged


def condition(conditions: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((item for item in conditions if item.get("type") == kind), None)
