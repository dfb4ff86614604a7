"""Per-client token buckets, driven by an explicit clock: bursts, steady rates, token debt, Retry-After."""

from __future__ import annotations

import pytest
from llm_router.proxy.rate_limits import ClientLimiter, Limits, RateLimiter, Refusal


def admitted(limiter: ClientLimiter, now: float, times: int) -> int:
    return sum(limiter.admit(now) is None for _ in range(times))


def test_a_full_minute_may_burst_then_the_rate_is_steady() -> None:
    limiter = ClientLimiter(Limits(requests_per_minute=60), now=0.0)
    assert admitted(limiter, 0.0, 100) == 60
    assert limiter.admit(0.5) == Refusal("requests_per_minute", pytest.approx(0.5))
    assert admitted(limiter, 1.0, 5) == 1  # one request per second refills
    assert admitted(limiter, 11.0, 20) == 10


def test_refill_never_exceeds_a_minute() -> None:
    limiter = ClientLimiter(Limits(requests_per_minute=6), now=0.0)
    assert admitted(limiter, 3600.0, 100) == 6


def test_refusal_takes_nothing() -> None:
    limiter = ClientLimiter(Limits(requests_per_minute=1), now=0.0)
    assert limiter.admit(0.0) is None
    for _ in range(10):
        assert limiter.admit(30.0) is not None  # refused tries do not push the next admission back
    assert limiter.admit(60.0) is None


def test_tokens_are_charged_after_the_call_and_checked_before_the_next() -> None:
    limiter = ClientLimiter(Limits(tokens_per_minute=600), now=0.0)
    assert limiter.admit(0.0) is None
    limiter.charge_tokens(500, 0.0)
    assert limiter.admit(0.0) is None  # 100 left: still admitted
    limiter.charge_tokens(700, 0.0)  # into debt: -600
    refusal = limiter.admit(0.0)
    assert refusal is not None
    assert refusal.limit == "tokens_per_minute"
    assert refusal.retry_after == pytest.approx(60.1)  # from -600 back to +1 token at 10 tokens/s
    assert refusal.retry_after_header == "61"
    assert limiter.admit(60.0) is not None  # out of debt, but nothing to spend yet
    assert limiter.admit(60.2) is None


def test_both_limits_token_limit_refuses_first_without_taking_a_request() -> None:
    limiter = ClientLimiter(Limits(requests_per_minute=2, tokens_per_minute=10), now=0.0)
    assert limiter.admit(0.0) is None
    limiter.charge_tokens(50, 0.0)
    assert limiter.admit(0.0).limit == "tokens_per_minute"  # type: ignore[union-attr]
    assert limiter.requests is not None
    assert limiter.requests.level == pytest.approx(1.0)


@pytest.mark.parametrize(("seconds", "header"), [
    pytest.param(0.0, "1", id="never-zero"),
    pytest.param(0.01, "1", id="rounds-up"),
    pytest.param(1.0, "1", id="whole"),
    pytest.param(1.2, "2", id="fraction-up"),
])
def test_retry_after_header(seconds: float, header: str) -> None:
    assert Refusal("requests_per_minute", seconds).retry_after_header == header


def test_registry_keeps_buckets_per_client_and_resets_on_new_limits() -> None:
    registry = RateLimiter()
    assert registry.limiter("free", Limits(), 0.0) is None
    first = registry.limiter("a", Limits(requests_per_minute=1), 0.0)
    assert first is not None
    assert first.admit(0.0) is None
    assert registry.limiter("a", Limits(requests_per_minute=1), 1.0) is first
    assert registry.limiter("b", Limits(requests_per_minute=1), 1.0) is not first
    changed = registry.limiter("a", Limits(requests_per_minute=2), 2.0)
    assert changed is not first
    assert changed is not None
    assert admitted(changed, 2.0, 5) == 2
