"""``classifier_text``: a whole conversation in one encoder-sized text, latest user turn first."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st
from llm_router.proxy.conversation import (
    _WORD,
    CLASSIFIER_TOKEN_HINT,
    CONTEXT_FLOOR,
    MAX_CHARS_PER_WORD,
    Turn,
    classifier_text,
)


def words(text: str) -> int:
    return len(_WORD.findall(text))


def test_a_single_prompt_is_unchanged() -> None:
    assert classifier_text([Turn("user", "  Write a haiku about rain.  ")]) == "Write a haiku about rain."


def test_nothing_gives_an_empty_text() -> None:
    assert classifier_text([]) == ""
    assert classifier_text([Turn("user", "")]) == ""


def test_the_latest_user_turn_comes_first_then_system_then_recent_turns() -> None:
    turns = [
        Turn("system", "You are a coding assistant."),
        Turn("user", "Write a function that sorts a list."),
        Turn("assistant", "def sort(xs): return sorted(xs)"),
        Turn("user", "Now make it generic over any iterable, and explain the complexity of the approach."),
    ]
    text = classifier_text(turns)
    latest, context = text.split("\n\n")
    assert latest == turns[-1].text
    lines = context.split("\n")
    assert lines[0] == "system: You are a coding assistant."
    assert lines[1].startswith("assistant: def sort")
    assert lines[2].startswith("user: Write a function")


def test_turns_after_the_latest_user_turn_are_context() -> None:
    turns = [Turn("user", "What is the weather in Paris?"), Turn("assistant", ""),
             Turn("tool", "[tool call get_weather] {\"city\": \"Paris\"}")]
    text = classifier_text(turns)
    assert text.startswith("What is the weather in Paris?\n\ntool: [tool call get_weather]")


def test_without_a_user_turn_the_last_turn_leads() -> None:
    assert classifier_text([Turn("system", "Be brief."), Turn("assistant", "Hello!")]).startswith("Hello!\n\n")


def test_a_long_system_prompt_cannot_drown_a_short_question() -> None:
    system = "You are ACME's helpful assistant. Always be polite and concise. " * 40
    text = classifier_text([Turn("system", system), Turn("user", "Translate 'good morning' into German.")])
    latest, context = text.split("\n\n")
    assert latest == "Translate 'good morning' into German."
    assert words(context) <= CONTEXT_FLOOR + 2  # + "system", ":"


def test_context_never_outweighs_the_latest_turn_beyond_the_floor() -> None:
    question = "Explain how a hash map handles collisions, with an example in Java and a comparison to Python. " * 2
    history = [Turn("user" if index % 2 else "assistant", f"Earlier message number {index}. " * 30)
               for index in range(50)]
    text = classifier_text([*history, Turn("user", question)])
    latest, context = text.split("\n\n")
    assert latest == question.strip()
    assert words(context) <= max(CONTEXT_FLOOR, words(latest)) + 2 * len(context.split("\n"))
    assert context.split("\n")[0].startswith("user: Earlier message number 49.")  # most recent first


def test_a_long_latest_turn_keeps_its_beginning_and_its_end() -> None:
    document = "lorem ipsum dolor sit amet " * 400
    prompt = f"Summarize the following report for an executive audience.\n{document}\nWhat are the three risks?"
    text = classifier_text([Turn("system", "You are helpful."), Turn("user", prompt)])
    assert text.startswith("Summarize the following report for an executive audience.")
    assert text.endswith("What are the three risks?")
    assert " ... " in text
    assert words(text) <= CLASSIFIER_TOKEN_HINT


def test_the_budget_is_a_parameter() -> None:
    text = classifier_text([Turn("user", "one two three four five six seven eight nine ten " * 10)],
                           max_tokens_hint=30)
    assert words(text) <= 30


def test_a_huge_conversation_is_cheap() -> None:
    turns = [Turn("user" if index % 2 else "assistant", "some words here " * 2000) for index in range(10_000)]
    started = time.perf_counter()
    text = classifier_text(turns)
    assert time.perf_counter() - started < 0.05
    assert words(text) <= CLASSIFIER_TOKEN_HINT


def test_a_blob_without_spaces_is_cut_too() -> None:
    started = time.perf_counter()
    text = classifier_text([Turn("user", "Decode this: " + "QUJD" * 500_000 + " and tell me what it says")])
    assert time.perf_counter() - started < 0.05  # reads only the beginning and the end of the 2 MB
    assert text.startswith("Decode this: QUJD")
    assert text.endswith("and tell me what it says")
    assert len(text) <= CLASSIFIER_TOKEN_HINT * MAX_CHARS_PER_WORD + 5


@given(st.lists(st.tuples(st.sampled_from(["system", "user", "assistant", "tool", "developer"]),
                          st.text(max_size=400)), max_size=12),
       st.integers(min_value=1, max_value=300))
def test_always_within_budget_and_leads_with_the_latest_user_turn(raw: list[tuple[str, str]], budget: int) -> None:
    turns = [Turn(role, text) for role, text in raw]
    text = classifier_text(turns, max_tokens_hint=budget)
    # The context lines add their "role:" labels (two words each) on top of the budget.
    assert words(text) <= budget + 2 * text.count("\n") + 3
    users = [turn for turn in turns if turn.role == "user"]
    if users and words(users[-1].text) <= budget:
        assert text.startswith(users[-1].text.strip())
