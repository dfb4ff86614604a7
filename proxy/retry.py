"""When to try the same LLM again: backoff with jitter, and ``Retry-After``."""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Callable

from .config import RetryConfig


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date
    (RFC 9110 10.2.3); ``None`` when absent or unreadable. ``now`` is a Unix time."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def backoff_delay(settings: RetryConfig, retry_index: int, *, random_share: Callable[[], float] = random.random
                  ) -> float:
    """The wait before retry ``retry_index`` (0-based) when the LLM gave no ``Retry-After``."""
    ceiling = min(settings.backoff_max, settings.backoff_base * 2 ** min(retry_index, 30))
    return ceiling * (1 - settings.jitter * random_share())


def retry_wait(settings: RetryConfig, retry_index: int, retry_after: float | None, *,
               random_share: Callable[[], float] = random.random) -> float | None:
    """How long to wait before trying the same LLM again; ``None``: not again, move on.

    ``retry_index`` counts the retries already made on this LLM."""
    if retry_index >= settings.attempts:
        return None
    if retry_after is not None:
        return retry_after if retry_after <= settings.retry_after_cap else None
    return backoff_delay(settings, retry_index, random_share=random_share)
