"""The pure decisions behind resilience: retry waits, Retry-After, replica choice, context-window estimates,
and the validation of the new config fields."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from llm_router.proxy.balancing import Replica, choose
from llm_router.proxy.config import LLMConfig, RetryConfig
from llm_router.proxy.context_window import estimate_tokens, fitting, too_long
from llm_router.proxy.retry import backoff_delay, parse_retry_after, retry_wait
from llm_router.proxy.upstream import Endpoint
from pydantic import ValidationError

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z

# ---------------------------------------------------------------- Retry-After

RETRY_AFTER = [
    ("absent", None, None),
    ("empty", "", None),
    ("seconds", "7", 7.0),
    ("fractional seconds", "0.25", 0.25),
    ("spaces", "  3 ", 3.0),
    ("negative clamps to zero", "-5", 0.0),
    ("http date in the future", "Tue, 14 Nov 2023 22:13:30 GMT", 10.0),
    ("http date in the past", "Tue, 14 Nov 2023 22:00:00 GMT", 0.0),
    ("garbage", "soon", None),
    ("infinity", "inf", None),
    ("not a number", "nan", None),
]


@pytest.mark.parametrize(("value", "expected"), [case[1:] for case in RETRY_AFTER],
                         ids=[case[0] for case in RETRY_AFTER])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


# ---------------------------------------------------------------- retry waits

def test_backoff_doubles_up_to_its_maximum_without_jitter() -> None:
    settings = RetryConfig(attempts=10, backoff_base=0.1, backoff_max=1.0, jitter=0)
    assert [backoff_delay(settings, n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


@pytest.mark.parametrize("share", [0.0, 0.3, 0.999])
def test_jitter_shortens_by_at_most_its_share(share: float) -> None:
    settings = RetryConfig(attempts=3, backoff_base=1.0, backoff_max=10, jitter=0.5)
    assert backoff_delay(settings, 1, random_share=lambda: share) == pytest.approx(2.0 * (1 - 0.5 * share))


def test_huge_retry_index_does_not_overflow() -> None:
    settings = RetryConfig(attempts=10, backoff_base=1, backoff_max=3, jitter=0)
    assert backoff_delay(settings, 10_000) == 3


RETRY_WAITS = [
    # (id, settings, retries made, Retry-After, expected wait or None = move on)
    ("no retries configured", {}, 0, None, None),
    ("no retries configured, even with Retry-After", {}, 0, 0.1, None),
    ("first retry backs off", {"attempts": 2, "jitter": 0}, 0, None, 0.1),
    ("second retry backs off longer", {"attempts": 2, "jitter": 0}, 1, None, 0.2),
    ("retries used up", {"attempts": 2, "jitter": 0}, 2, None, None),
    ("Retry-After within the cap is waited exactly", {"attempts": 1, "retry_after_cap": 5}, 0, 4.0, 4.0),
    ("Retry-After at the cap", {"attempts": 1, "retry_after_cap": 5}, 0, 5.0, 5.0),
    ("Retry-After over the cap moves on now", {"attempts": 1, "retry_after_cap": 5}, 0, 30.0, None),
    ("Retry-After 0 retries at once", {"attempts": 1}, 0, 0.0, 0.0),
]


@pytest.mark.parametrize(("settings", "retries", "retry_after", "expected"), [case[1:] for case in RETRY_WAITS],
                         ids=[case[0] for case in RETRY_WAITS])
def test_retry_wait(settings: dict, retries: int, retry_after: float | None, expected: float | None) -> None:
    wait = retry_wait(RetryConfig(**settings), retries, retry_after, random_share=lambda: 0.0)
    assert wait == (pytest.approx(expected) if expected is not None else None)


# ---------------------------------------------------------------- balancing

LLM = LLMConfig(name="m", api_base="http://a.invalid/v1", model="m")


def replicas(*specs: tuple[int, int, float]) -> list[Replica]:
    """(weight, outstanding, latency) each."""
    return [Replica(Endpoint.of(LLM, f"http://r{index}.invalid/v1"), weight, outstanding, latency)
            for index, (weight, outstanding, latency) in enumerate(specs)]


def picked(pool: list[Replica], balancing: str, share: float = 0.0) -> int:
    return pool.index(choose(pool, balancing, random_share=lambda: share))  # type: ignore[arg-type]


CHOICES = [
    # (id, replicas, balancing, random share, index chosen)
    ("the only replica", [(100, 9, 9.0)], "least_outstanding", 0.9, 0),
    ("fewest outstanding", [(100, 3, 0), (100, 1, 0), (100, 2, 0)], "least_outstanding", 0.0, 1),
    ("outstanding per unit of weight", [(100, 4, 0), (50, 1, 0)], "least_outstanding", 0.0, 1),
    ("weight 0 never chosen", [(0, 0, 0), (100, 50, 0)], "least_outstanding", 0.0, 1),
    ("idle tie split by weight: low share", [(90, 0, 0), (10, 0, 0)], "least_outstanding", 0.5, 0),
    ("idle tie split by weight: high share", [(90, 0, 0), (10, 0, 0)], "least_outstanding", 0.95, 1),
    ("latency_weighted prefers the faster", [(100, 0, 0.5), (100, 0, 0.1)], "latency_weighted", 0.0, 1),
    ("latency_weighted counts load too", [(100, 0, 0.5), (100, 9, 0.1)], "latency_weighted", 0.0, 0),
    ("latency_weighted tries an unmeasured replica", [(100, 0, 0.2), (100, 0, 0.0)], "latency_weighted", 0.0, 1),
]


@pytest.mark.parametrize(("specs", "balancing", "share", "expected"), [case[1:] for case in CHOICES],
                         ids=[case[0] for case in CHOICES])
def test_choose(specs: list[tuple[int, int, float]], balancing: str, share: float, expected: int) -> None:
    assert picked(replicas(*specs), balancing, share) == expected


def test_canary_split_follows_the_weights_when_idle() -> None:
    pool = replicas((90, 0, 0), (10, 0, 0))
    shares = (index / 1000 for index in range(1000))
    counts = Counter(picked(pool, "least_outstanding", share) for share in shares)
    assert counts == {0: 900, 1: 100}


def test_under_load_outstanding_settles_in_proportion_to_weights() -> None:
    pool = replicas((75, 0, 0), (25, 0, 0))
    shares = itertools.cycle([0.1, 0.6, 0.9, 0.3])
    for _ in range(400):
        choose(pool, "least_outstanding", random_share=lambda: next(shares)).outstanding += 1
    assert [replica.outstanding for replica in pool] == [300, 100]


def test_latency_average_moves_toward_new_samples() -> None:
    replica = replicas((100, 0, 0))[0]
    replica.observe_latency(1.0)
    assert replica.latency == 1.0
    replica.observe_latency(2.0)
    assert replica.latency == pytest.approx(1.2)


# ---------------------------------------------------------------- context window

ESTIMATES = [
    ("one short message", {"messages": [{"role": "user", "content": "x" * 40}]}, 10 + 4),
    ("rounds up", {"messages": [{"role": "user", "content": "abcde"}]}, 2 + 4),
    ("several messages", {"messages": [{"role": "system", "content": "x" * 8},
                                       {"role": "user", "content": "y" * 8}]}, 4 + 8),
    ("text parts count, images do not", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "x" * 12}, {"type": "image_url", "image_url": {"url": "data:" + "A" * 999}}]}]},
     3 + 4),
    ("max_tokens reserved", {"messages": [{"role": "user", "content": "x" * 4}], "max_tokens": 100}, 1 + 4 + 100),
    ("max_completion_tokens preferred", {"messages": [{"role": "user", "content": "x" * 4}],
                                         "max_completion_tokens": 50, "max_tokens": 100}, 1 + 4 + 50),
    ("tool call without content", {"messages": [{"role": "assistant", "content": None}]}, 4),
    ("completions prompt", {"prompt": "x" * 400}, 100),
    ("completions prompt list", {"prompt": ["x" * 4, "y" * 4], "max_tokens": 6}, 2 + 6),
]


@pytest.mark.parametrize(("body", "expected"), [case[1:] for case in ESTIMATES], ids=[case[0] for case in ESTIMATES])
def test_estimate_tokens(body: dict, expected: int) -> None:
    assert estimate_tokens(body) == expected


def test_fitting_keeps_order_and_unknown_windows() -> None:
    small = LLMConfig(name="small", api_base="http://s.invalid/v1", model="s", context_window=1000)
    big = LLMConfig(name="big", api_base="http://b.invalid/v1", model="b", context_window=100_000)
    unknown = LLMConfig(name="unknown", api_base="http://u.invalid/v1", model="u")
    assert fitting([small, big, unknown], 1000) == [small, big, unknown]
    assert fitting([small, big, unknown], 1001) == [big, unknown]
    error = too_long(200_000, [small, big])
    assert (error.status, error.code) == (400, "context_length_exceeded")
    assert "200000" in error.message and "100000" in error.message


# ---------------------------------------------------------------- config

BAD_CONFIG = [
    ("negative retry attempts", {"retry": {"attempts": -1}}, "retry.attempts"),
    ("jitter above one", {"retry": {"jitter": 2}}, "retry.jitter"),
    ("unknown retry field", {"retry": {"tries": 2}}, "retry.tries"),
    ("zero hedge delay", {"hedge_after": 0}, "hedge_after"),
    ("zero breaker failures", {"circuit_breaker": {"failures": 0}}, "circuit_breaker.failures"),
    ("weight over 100", {"endpoints": [{"api_base": "http://b.invalid/v1", "weight": 101}]}, "endpoints.0.weight"),
    ("unknown balancing", {"balancing": "random"}, "balancing"),
    ("duplicate replica", {"endpoints": [{"api_base": "http://a.invalid/v1"}]}, "each api_base may appear once"),
    ("all weights zero", {"weight": 0, "endpoints": [{"api_base": "http://b.invalid/v1", "weight": 0}]},
     "every weight is 0"),
]


@pytest.mark.parametrize(("extra", "mentions"), [case[1:] for case in BAD_CONFIG], ids=[case[0] for case in BAD_CONFIG])
def test_bad_resilience_config_names_the_field(extra: dict, mentions: str) -> None:
    with pytest.raises(ValidationError) as info:
        LLMConfig.model_validate({"name": "a", "api_base": "http://a.invalid/v1", "model": "a", **extra})
    text = str(info.value)
    locations = [".".join(str(part) for part in error["loc"]) for error in info.value.errors()]
    assert mentions in text or mentions in locations


def test_resilience_defaults_are_safe() -> None:
    llm = LLMConfig(name="a", api_base="http://a.invalid/v1", model="a")
    assert llm.retry.attempts == 0  # fail over to the next LLM straight away
    assert llm.hedge_after is None
    assert llm.circuit_breaker.enabled and llm.circuit_breaker.failures == 5
    assert (llm.endpoints, llm.weight, llm.balancing) == ([], 100, "least_outstanding")
