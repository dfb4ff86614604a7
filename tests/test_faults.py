"""The fault-injection suite: every scenario of ``fault_scenarios.SCENARIOS`` against a real router, asserting
what the client saw (status, answering LLM, stream ending, error code, text) and when, against the configured
deadlines. ``bench/faults.py`` prints the same scenarios as a timing table."""

from __future__ import annotations

import pytest
from fault_scenarios import HUGE, SCENARIOS, Scenario, run


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario.name for scenario in SCENARIOS])
async def test_fault(scenario: Scenario) -> None:
    seen, primary, backup = await run(scenario)
    expect = scenario.expect
    assert (seen.status, seen.ending) == (expect.status, expect.ending), seen.describe()
    if expect.llm is not None:
        assert seen.llm == expect.llm
        hedged = "hedge_after" in scenario.primary  # the primary lost a race, it did not fail
        assert seen.fallbacks == ("primary" if expect.llm == "backup" and not hedged else "")
        assert seen.loser_cancelled == hedged
    if expect.code is not None:
        assert seen.code == expect.code
    if expect.text == "primary":
        assert seen.text == primary.text()
    elif expect.text == "backup":
        assert seen.text == backup.text()
    elif expect.text == "partial":
        assert seen.text == "one two "  # what came before the break, and nothing made up after it
    assert scenario.at_least <= seen.seconds <= scenario.bound, (
        f"{scenario.name}: {seen.seconds:.3f}s, expected within [{scenario.at_least}, {scenario.bound}]")


async def test_retry_after_is_honoured_on_the_same_llm() -> None:
    scenario = next(s for s in SCENARIOS if s.name.startswith("HTTP 429, Retry-After: 1 "))
    _, primary, backup = await run(scenario)
    assert len(primary.received) == 2 and not backup.received
    assert primary.received[1].at - primary.received[0].at >= 0.95


async def test_open_circuits_answer_without_calling_any_llm() -> None:
    scenario = next(s for s in SCENARIOS if s.name.endswith("circuits open"))
    seen, primary, backup = await run(scenario)
    assert seen.seconds < 0.5
    assert len(primary.received) == len(backup.received) == scenario.warm_up


async def test_huge_answer_arrives_intact() -> None:
    scenario = next(s for s in SCENARIOS if s.name == "huge response within the limit (8 MB)")
    seen, _, _ = await run(scenario)
    assert len(seen.text) == HUGE and set(seen.text) == {"x"}
