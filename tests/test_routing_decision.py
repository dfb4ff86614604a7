"""The routing decision as pure functions: target selection, mapping a classification to a
route, the rule classifier, and the conversation text classifiers see."""

from __future__ import annotations

from typing import Any

import pytest
from llm_router.proxy.classifiers import (
    Classification,
    ClassifierInput,
    ClassifierUnavailable,
    RuleClassifier,
    build_classifier,
)
from llm_router.proxy.config import ClassifierBackend, PolicyConfig, RouterConfig, RulesClassifierRef
from llm_router.proxy.conversation import Turn, chat_turns, prompt_turns
from llm_router.proxy.errors import InvalidRequest, NoRoute
from llm_router.proxy.routing import (
    RouteDecision,
    Target,
    decide,
    decide_classified,
    decide_classifier_failed,
    select_target,
    valid_models,
)
from multidict import CIMultiDict

LLMS = [{"name": name, "api_base": f"http://{name}.local/v1", "model": f"{name}-id"}
        for name in ("fast", "strong", "router")]

TASKS = {
    "name": "tasks",
    "classifier": {"type": "rules", "rules": [
        {"category": "code", "keywords": ["python", "bug"]},
        {"category": "summary", "keywords": ["summarize"]},
        {"category": "chat", "keywords": ["hello"]},
    ]},
    "routes": {"code": ["strong", "fast"], "summary": ["fast", "strong"]},
    "default_route": ["fast"],
    "min_confidence": 0.6,
}
CHEAP = {
    "name": "cheap",
    "classifier": {"type": "rules", "rules": [{"category": "any", "patterns": ["."]}]},
    "routes": {"any": ["fast"]},
    "default_route": ["fast"],
    "failure_mode": "closed",
}


def make_config(*, default_policy: str | None = "tasks") -> RouterConfig:
    return RouterConfig.model_validate({"router": {"default_policy": default_policy}, "llms": LLMS,
                                        "policies": [TASKS, CHEAP]})


WITH_DEFAULT = make_config()
WITHOUT_DEFAULT = make_config(default_policy=None)
ALL_MODELS = ["router:tasks", "router:cheap", "fast", "strong", "router"]


# ------------------------------------------------------------ select_target

NIM = "nim-llm-router"

# (body, config) -> (policy name, llm name, manual category)
SELECTED = [
    pytest.param({NIM: {"policy": "tasks"}}, WITH_DEFAULT, ("tasks", None, None), id="nim-policy"),
    pytest.param({NIM: {"policy": "cheap", "routing_strategy": "triton"}}, WITH_DEFAULT, ("cheap", None, None),
                 id="nim-triton"),
    pytest.param({NIM: {"policy": "cheap", "routing_strategy": ""}}, WITH_DEFAULT, ("cheap", None, None),
                 id="nim-empty-strategy-is-triton"),
    pytest.param({NIM: {"policy": "tasks", "routing_strategy": "triton", "model": "code"}}, WITH_DEFAULT,
                 ("tasks", None, None), id="nim-triton-ignores-model"),
    pytest.param({NIM: {"policy": "tasks", "routing_strategy": "manual", "model": "summary"}}, WITH_DEFAULT,
                 ("tasks", None, "summary"), id="nim-manual"),
    pytest.param({"model": "strong", NIM: {"policy": "cheap"}}, WITH_DEFAULT, ("cheap", None, None),
                 id="nim-policy-beats-model"),
    pytest.param({"model": "strong", NIM: {}}, WITH_DEFAULT, (None, "strong", None), id="nim-without-policy"),
    pytest.param({"model": "strong", NIM: {"policy": ""}}, WITH_DEFAULT, (None, "strong", None),
                 id="nim-empty-policy"),
    pytest.param({"model": "router:cheap"}, WITH_DEFAULT, ("cheap", None, None), id="router-prefix"),
    pytest.param({"model": "router:tasks"}, WITHOUT_DEFAULT, ("tasks", None, None),
                 id="router-prefix-no-default"),
    pytest.param({"model": "fast"}, WITH_DEFAULT, (None, "fast", None), id="direct"),
    pytest.param({"model": "strong"}, WITHOUT_DEFAULT, (None, "strong", None), id="direct-no-default"),
    pytest.param({"model": "router"}, WITH_DEFAULT, (None, "router", None), id="llm-named-router-wins"),
    pytest.param({"model": ""}, WITH_DEFAULT, ("tasks", None, None), id="empty-model-default-policy"),
    pytest.param({}, WITH_DEFAULT, ("tasks", None, None), id="no-model-default-policy"),
    pytest.param({"model": None}, WITH_DEFAULT, ("tasks", None, None), id="null-model-default-policy"),
]


@pytest.mark.parametrize(("body", "config", "expected"), SELECTED)
def test_select_target(body: dict[str, Any], config: RouterConfig,
                       expected: tuple[str | None, str | None, str | None]) -> None:
    target = select_target(body, config)
    got = (target.policy.name if target.policy else None, target.llm.name if target.llm else None,
           target.manual_category)
    assert got == expected


def test_router_alias_means_default_policy() -> None:
    config = RouterConfig.model_validate({"router": {"default_policy": "cheap"}, "llms": LLMS[:2],
                                          "policies": [TASKS, CHEAP]})
    assert select_target({"model": "router"}, config) == Target(policy=config.policy("cheap"))


# (body, config) -> (param, code, message)
REFUSED = [
    pytest.param({NIM: {"policy": "tasks", "routing_strategy": "manual", "model": "poetry"}}, WITH_DEFAULT,
                 (f"{NIM}.model", "unknown_category",
                  f"manual routing needs '{NIM}.model' to name a category of policy 'tasks'; got 'poetry', "
                  "valid: ['code', 'summary']"), id="manual-bad-category"),
    pytest.param({NIM: {"policy": "tasks", "routing_strategy": "manual", "model": "chat"}}, WITH_DEFAULT,
                 (f"{NIM}.model", "unknown_category",
                  f"manual routing needs '{NIM}.model' to name a category of policy 'tasks'; got 'chat', "
                  "valid: ['code', 'summary']"), id="manual-unrouted-category"),
    pytest.param({NIM: {"policy": "tasks", "routing_strategy": "manual"}}, WITH_DEFAULT,
                 (f"{NIM}.model", "unknown_category",
                  f"manual routing needs '{NIM}.model' to name a category of policy 'tasks'; got '', "
                  "valid: ['code', 'summary']"), id="manual-no-category"),
    pytest.param({NIM: {"policy": "nope"}}, WITH_DEFAULT,
                 (f"{NIM}.policy", "policy_not_found", "unknown policy 'nope'; valid policies: ['tasks', 'cheap']"),
                 id="nim-unknown-policy"),
    pytest.param({"model": "router:nope"}, WITH_DEFAULT,
                 ("model", "policy_not_found", "unknown policy 'nope'; valid policies: ['tasks', 'cheap']"),
                 id="router-prefix-unknown-policy"),
    pytest.param({"model": "router:"}, WITH_DEFAULT,
                 ("model", "policy_not_found", "unknown policy ''; valid policies: ['tasks', 'cheap']"),
                 id="router-prefix-empty"),
    pytest.param({"model": "gpt-4o"}, WITH_DEFAULT,
                 ("model", "model_not_found", f"unknown model 'gpt-4o'; use one of: {ALL_MODELS}"),
                 id="unknown-model"),
    pytest.param({"model": "FAST"}, WITH_DEFAULT,
                 ("model", "model_not_found", f"unknown model 'FAST'; use one of: {ALL_MODELS}"),
                 id="names-are-case-sensitive"),
    pytest.param({"model": ""}, WITHOUT_DEFAULT,
                 ("model", "model_not_found",
                  f"unknown model ''; use one of: {ALL_MODELS} (this router has no default policy)"),
                 id="empty-model-no-default"),
    pytest.param({}, WITHOUT_DEFAULT,
                 ("model", "model_not_found",
                  f"unknown model ''; use one of: {ALL_MODELS} (this router has no default policy)"),
                 id="no-model-no-default"),
]


@pytest.mark.parametrize(("body", "config", "expected"), REFUSED)
def test_select_target_refused(body: dict[str, Any], config: RouterConfig, expected: tuple[str, str, str]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        select_target(body, config)
    error = caught.value
    assert (error.param, error.code, error.message) == expected
    assert error.status == 400


def test_valid_models() -> None:
    assert valid_models(WITH_DEFAULT) == ALL_MODELS


# --------------------------------------------------------- decide_classified

POLICY = WITH_DEFAULT.policy("tasks")
assert POLICY is not None


def decision(policy: str | None, category: str | None, confidence: float | None, route: str, reason: str,
             candidates: tuple[str, ...], confidences: dict[str, float] | None = None) -> RouteDecision:
    return RouteDecision(policy=policy, category=category, confidence=confidence, route=route,
                         reason=reason,  # type: ignore[arg-type]
                         candidates=candidates, confidences=confidences or {}, classifier="rules",
                         classification_seconds=0.25)


CLASSIFIED = [
    pytest.param(Classification("code", {"code": 1.0}),
                 decision("tasks", "code", 1.0, "code", "classified", ("strong", "fast"), {"code": 1.0}),
                 id="classified"),
    pytest.param(Classification("summary", {"summary": 0.6, "code": 0.4}),
                 decision("tasks", "summary", 0.6, "summary", "classified", ("fast", "strong"),
                          {"summary": 0.6, "code": 0.4}), id="at-threshold"),
    pytest.param(Classification("code", {"code": 0.5, "summary": 0.5}),
                 decision("tasks", "code", 0.5, "default", "low_confidence", ("fast",),
                          {"code": 0.5, "summary": 0.5}), id="low-confidence"),
    pytest.param(Classification(None, {}),
                 decision("tasks", None, None, "default", "no_match", ("fast",)), id="no-match"),
    pytest.param(Classification("chat", {"chat": 1.0}),
                 decision("tasks", "chat", 1.0, "default", "unrouted_category", ("fast",), {"chat": 1.0}),
                 id="unrouted-category"),
    pytest.param(Classification("poetry", {"poetry": 0.9}),
                 decision("tasks", "poetry", 0.9, "default", "unrouted_category", ("fast",), {"poetry": 0.9}),
                 id="unknown-category"),
]


@pytest.mark.parametrize(("result", "expected"), CLASSIFIED)
def test_decide_classified(result: Classification, expected: RouteDecision) -> None:
    assert decide_classified(POLICY, result, classifier="rules", seconds=0.25) == expected


GROUPED = PolicyConfig.model_validate({
    "name": "support", "classifier": {"type": "model", "model": "intent_router"},
    "routes": {"security": ["strong"], "lost_or_stolen_card": ["strong", "fast"]}, "default_route": ["fast"],
    "min_confidence": 0.5})


@pytest.mark.parametrize(("result", "route", "reason", "candidates"), [
    pytest.param(Classification("compromised_card", {"compromised_card": 0.4, "lost_or_stolen_card": 0.3},
                                group="security", group_confidence=0.7),
                 "security", "classified", ("strong",), id="the group's route, its summed confidence"),
    pytest.param(Classification("lost_or_stolen_card", {"lost_or_stolen_card": 0.6}, group="security",
                                group_confidence=0.9),
                 "lost_or_stolen_card", "classified", ("strong", "fast"), id="a label's own route wins"),
    pytest.param(Classification("compromised_card", {"compromised_card": 0.3}, group="security",
                                group_confidence=0.4),
                 "default", "low_confidence", ("fast",), id="the threshold applies to the group"),
    pytest.param(Classification("top_up_failed", {"top_up_failed": 0.9}, group="top_up", group_confidence=0.95),
                 "default", "unrouted_category", ("fast",), id="an unrouted group"),
])
def test_a_grouped_model_routes_by_group(result: Classification, route: str, reason: str,
                                         candidates: tuple[str, ...]) -> None:
    got = decide_classified(GROUPED, result, classifier="embedded", seconds=0.0)
    assert (got.category, got.route, got.reason, got.candidates) == (result.category, route, reason, candidates)


def test_decision_as_dict() -> None:
    got = decide_classified(POLICY, Classification("code", {"code": 1.0}), classifier="rules", seconds=0.0012345)
    assert got.as_dict() == {
        "policy": "tasks", "category": "code", "confidence": 1.0, "confidences": {"code": 1.0}, "scores": {},
        "route": "code", "reason": "classified", "chosen_llm": "strong", "fallbacks": ["fast"],
        "classifier": "rules", "classification_ms": 1.234}


def test_classifier_failed_open() -> None:
    assert decide_classifier_failed(POLICY, classifier="rules", seconds=0.25) == \
        decision("tasks", None, None, "default", "classifier_failed", ("fast",))


def test_classifier_failed_closed() -> None:
    cheap = WITH_DEFAULT.policy("cheap")
    assert cheap is not None
    with pytest.raises(NoRoute) as caught:
        decide_classifier_failed(cheap, classifier="rules", seconds=0.25)
    error = caught.value
    assert (error.status, error.error_type, error.code, error.message) == (
        503, "service_unavailable", "classifier_unavailable",
        "policy 'cheap' could not classify the request and fails closed")


class BrokenClassifier:
    kind = "broken"
    categories: list[str] = []

    async def classify(self, request: ClassifierInput) -> Classification:
        raise TimeoutError("backend down")


@pytest.mark.parametrize(("policy", "expected"), [
    pytest.param("tasks", ("default", "classifier_failed", ("fast",)), id="open"),
    pytest.param("cheap", NoRoute, id="closed"),
])
async def test_decide_with_failing_classifier(policy: str, expected: Any) -> None:
    target = Target(policy=WITH_DEFAULT.policy(policy))
    if expected is NoRoute:
        with pytest.raises(NoRoute):
            await decide(target, BrokenClassifier(), [Turn("user", "hi")], {}, None)
        return
    got = await decide(target, BrokenClassifier(), [Turn("user", "hi")], {}, None)
    assert (got.route, got.reason, got.candidates, got.classifier) == (*expected, "broken")


@pytest.mark.parametrize(("target", "text", "expected"), [
    pytest.param(Target(llm=WITH_DEFAULT.llm("strong")), "python bug", (None, None, "direct", "direct", ("strong",)),
                 id="direct"),
    pytest.param(Target(policy=POLICY, manual_category="summary"), "python bug",
                 ("tasks", "summary", "summary", "manual", ("fast", "strong")), id="manual"),
    pytest.param(Target(policy=POLICY), "python bug", ("tasks", "code", "code", "classified", ("strong", "fast")),
                 id="classified"),
    pytest.param(Target(policy=POLICY), "nothing here", ("tasks", None, "default", "no_match", ("fast",)),
                 id="no-match"),
])
async def test_decide(target: Target, text: str, expected: tuple[Any, ...]) -> None:
    classifier = RuleClassifier(POLICY.classifier)
    got = await decide(target, classifier, [Turn("user", text)], {}, None)
    assert (got.policy, got.category, got.route, got.reason, got.candidates) == expected


# ---------------------------------------------------------- RuleClassifier


def classify(rules: list[dict[str, Any]], turns: list[tuple[str, str]], headers: Any = None,
             user: str | None = None) -> tuple[str | None, dict[str, float]]:
    classifier = RuleClassifier(RulesClassifierRef.model_validate({"type": "rules", "rules": rules}))
    result = classifier.classify_now(ClassifierInput([Turn(role, text) for role, text in turns], headers or {}, user))
    return result.category, result.confidences


def rule(rules: list[dict[str, Any]], turns: list[tuple[str, str]], expected: tuple[str | None, dict[str, float]],
         headers: Any = None, user: str | None = None, *, id: str) -> Any:
    return pytest.param(rules, turns, expected, headers, user, id=id)


CODE = {"category": "code", "keywords": ["python", "c++", "unit test", "tl;dr"]}
U = "user"

RULE_CASES = [
    # keywords: whole words or phrases, case-insensitive
    rule([CODE], [(U, "Write Python please")], ("code", {"code": 1.0}), id="keyword-case-insensitive"),
    rule([CODE], [(U, "python.")], ("code", {"code": 1.0}), id="keyword-before-punctuation"),
    rule([CODE], [(U, "pythonic style")], (None, {}), id="keyword-not-a-prefix"),
    rule([CODE], [(U, "cpython internals")], (None, {}), id="keyword-not-a-suffix"),
    rule([CODE], [(U, "my_python_var")], (None, {}), id="keyword-underscore-is-a-word-char"),
    rule([CODE], [(U, "is C++ hard?")], ("code", {"code": 1.0}), id="keyword-with-symbols"),
    rule([CODE], [(U, "abc++")], (None, {}), id="keyword-symbols-not-inside-word"),
    rule([CODE], [(U, "write a UNIT TEST")], ("code", {"code": 1.0}), id="keyword-phrase"),
    rule([CODE], [(U, "unit  test")], (None, {}), id="keyword-phrase-exact-spacing"),
    rule([CODE], [(U, "TL;DR: it works")], ("code", {"code": 1.0}), id="keyword-tldr"),
    rule([{"category": "x", "keywords": ["a.b"]}], [(U, "axb")], (None, {}), id="keyword-is-literal"),
    # patterns: regular expressions, case-insensitive
    rule([{"category": "code", "patterns": [r"\bdef \w+\("]}], [(U, "DEF main(): pass")],
                 ("code", {"code": 1.0}), id="pattern-case-insensitive"),
    rule([{"category": "code", "patterns": ["```"]}], [(U, "see ```x```")], ("code", {"code": 1.0}),
                 id="pattern-fence"),
    rule([{"category": "qa", "patterns": [r"^(what|why)\b.*\?"]}], [(U, "so, what is it?")], (None, {}),
                 id="pattern-anchor-start-of-text"),
    rule([{"category": "qa", "patterns": [r"^(what|why)\b.*\?"]}], [(U, "Why is the sky blue?")],
                 ("qa", {"qa": 1.0}), id="pattern-anchor-match"),
    rule([{"category": "x", "patterns": ["nope", "y+es"]}], [(U, "yyes")], ("x", {"x": 1.0}),
                 id="pattern-any-of"),
    rule([{"category": "x", "keywords": ["alpha"], "patterns": ["beta"]}], [(U, "beta only")],
                 ("x", {"x": 1.0}), id="keywords-or-patterns"),
    # roles and last_message_only
    rule([{**CODE, "roles": ["user"]}], [("system", "you know python"), (U, "hi")], (None, {}),
                 id="roles-exclude-system"),
    rule([{**CODE, "roles": ["system"]}], [("system", "you know python"), (U, "hi")],
                 ("code", {"code": 1.0}), id="roles-system-only"),
    rule([CODE], [("system", "you know python"), (U, "hi")], ("code", {"code": 1.0}), id="no-roles-all"),
    rule([{**CODE, "roles": ["tool"]}], [("assistant", "python"), ("tool", "python output")],
                 ("code", {"code": 1.0}), id="roles-tool"),
    rule([{**CODE, "last_message_only": True}], [(U, "python?"), ("assistant", "sure"), (U, "thanks")],
                 (None, {}), id="last-message-only-any-role"),
    rule([{**CODE, "roles": ["user"], "last_message_only": True}],
                 [(U, "thanks"), (U, "python?"), ("assistant", "ok")], ("code", {"code": 1.0}),
                 id="last-message-of-selected-roles"),
    rule([{**CODE, "roles": ["user"], "last_message_only": True}],
                 [(U, "python?"), (U, "thanks"), ("assistant", "python")], (None, {}),
                 id="last-user-message-without-keyword"),
    rule([{**CODE, "roles": ["developer"], "last_message_only": True}], [(U, "python")], (None, {}),
                 id="last-message-no-selected-turns"),
    rule([{"category": "x", "keywords": ["end start"]}], [(U, "the end"), (U, "start here")], (None, {}),
                 id="turns-joined-by-newline"),
    rule([{"category": "x", "patterns": [r"end\nstart"]}], [(U, "the end"), (U, "start here")],
                 ("x", {"x": 1.0}), id="turns-newline-pattern"),
    # headers and user
    rule([{"category": "support", "headers": {"X-Team": "^support$"}}], [(U, "hi")],
                 ("support", {"support": 1.0}), {"x-team": "support"}, None, id="header-match"),
    rule([{"category": "support", "headers": {"X-Team": "^support$"}}], [(U, "hi")],
                 ("support", {"support": 1.0}), CIMultiDict({"X-TEAM": "support"}), None,
                 id="header-case-insensitive-name"),
    rule([{"category": "support", "headers": {"x-team": "^support$"}}], [(U, "hi")], (None, {}),
                 {"x-team": "Support"}, None, id="header-value-case-sensitive"),
    rule([{"category": "support", "headers": {"x-team": "support"}}], [(U, "hi")],
                 ("support", {"support": 1.0}), {"x-team": "eu-support-2"}, None, id="header-value-search"),
    rule([{"category": "support", "headers": {"x-team": "."}}], [(U, "hi")], (None, {}), {}, None,
                 id="header-absent"),
    rule([{"category": "vip", "headers": {"x-team": "a", "x-tier": "gold"}}], [(U, "hi")], (None, {}),
                 {"x-team": "a"}, None, id="headers-all-required"),
    rule([{"category": "vip", "headers": {"x-tier": "gold"}, "keywords": ["python"]}], [(U, "hi")],
                 (None, {}), {"x-tier": "gold"}, None, id="header-and-keyword-both-required"),
    rule([{"category": "cust", "user": "^cust-"}], [(U, "hi")], ("cust", {"cust": 1.0}), {}, "cust-42",
                 id="user-match"),
    rule([{"category": "cust", "user": "^cust-"}], [(U, "hi")], (None, {}), {}, "staff-1",
                 id="user-no-match"),
    rule([{"category": "cust", "user": ".*"}], [(U, "hi")], (None, {}), {}, None, id="user-absent"),
    rule([{"category": "cust", "user": "^cust-", "keywords": ["refund"]}], [(U, "a refund")],
                 ("cust", {"cust": 1.0}), {}, "cust-1", id="user-and-keyword"),
    # weights, confidences, ties
    rule([{"category": "code", "keywords": ["python"], "weight": 3},
                  {"category": "summary", "keywords": ["summarize"]}],
                 [(U, "summarize this python")], ("code", {"code": 0.75, "summary": 0.25}), id="weights"),
    rule([{"category": "code", "keywords": ["python"]}, {"category": "code", "keywords": ["bug"]},
                  {"category": "summary", "keywords": ["summarize"]}],
                 [(U, "summarize the python bug")], ("code", {"code": 2 / 3, "summary": 1 / 3}),
                 id="rules-of-a-category-add-up"),
    rule([{"category": "code", "keywords": ["python"]}, {"category": "summary", "keywords": ["summarize"]}],
                 [(U, "summarize the python")], ("code", {"code": 0.5, "summary": 0.5}), id="tie-first-rule-wins"),
    rule([{"category": "summary", "keywords": ["summarize"]}, {"category": "code", "keywords": ["python"]}],
                 [(U, "summarize the python")], ("summary", {"summary": 0.5, "code": 0.5}),
                 id="tie-order-reversed"),
    rule([{"category": "a", "keywords": ["zzz"]}, {"category": "b", "keywords": ["python"]},
                  {"category": "a", "keywords": ["python"]}],
                 [(U, "python")], ("b", {"b": 0.5, "a": 0.5}), id="tie-first-matching-rule-wins"),
    rule([CODE], [(U, "")], (None, {}), id="empty-text"),
    rule([CODE], [], (None, {}), id="no-turns"),
]


@pytest.mark.parametrize(("rules", "turns", "expected", "headers", "user"), RULE_CASES)
def test_rule_classifier(rules: list[dict[str, Any]], turns: list[tuple[str, str]],
                         expected: tuple[str | None, dict[str, float]], headers: Any, user: str | None) -> None:
    category, confidences = classify(rules, turns, headers, user)
    assert category == expected[0]
    assert confidences == pytest.approx(expected[1])
    assert list(confidences) == list(expected[1])


async def test_rule_classifier_async_and_build() -> None:
    policy = PolicyConfig.model_validate(TASKS)
    classifier = build_classifier(policy, ClassifierBackend())
    assert classifier.kind == "rules"
    assert classifier.categories == ["code", "summary", "chat"]
    result = await classifier.classify(ClassifierInput([Turn("user", "a python bug")], {}))
    assert (result.category, result.confidence, result.confidences) == ("code", 1.0, {"code": 1.0})


@pytest.mark.parametrize(("result", "confidence"), [
    pytest.param(Classification("a", {"a": 0.7, "b": 0.3}), 0.7, id="winner"),
    pytest.param(Classification(None, {}), 0.0, id="none"),
    pytest.param(Classification("c", {"a": 1.0}), 0.0, id="category-without-confidence"),
])
def test_classification_confidence(result: Classification, confidence: float) -> None:
    assert result.confidence == confidence


# ------------------------------------------------------------ conversation

TURNS = [
    pytest.param([{"role": "user", "content": "hello"}], [Turn("user", "hello")], id="string"),
    pytest.param([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                 [Turn("system", "be brief"), Turn("user", "hi")], id="several"),
    pytest.param([{"role": "user", "content": ""}], [Turn("user", "")], id="empty-string"),
    pytest.param([{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}],
        [Turn("user", "What is in this picture?\n[image_url]")], id="text-and-image"),
    pytest.param([{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "file", "file": {"file_id": "f-1"}}, {"foo": 1}]}],
        [Turn("user", "[input_audio]\n[file]\n[content]")], id="other-parts-as-markers"),
    pytest.param([{"role": "user", "content": ["plain", {"text": "untyped"}, {"type": "text", "text": 42},
                                               {"type": "text"}]}],
                 [Turn("user", "plain\nuntyped\n42")], id="string-untyped-and-odd-text-parts"),
    pytest.param([{"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't"}]}],
                 [Turn("assistant", "I can't")], id="refusal-part"),
    pytest.param([{"role": "assistant", "content": None, "refusal": "No."}], [Turn("assistant", "No.")],
                 id="refusal-field"),
    pytest.param([{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}],
        [Turn("assistant", "[tool call get_weather] {\"city\": \"Paris\"}")], id="tool-call"),
    pytest.param([{"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"function": {"name": "a", "arguments": {"x": "é"}}}, {"function": {"name": "b"}}, "junk",
        {"function": "junk"}]}],
        [Turn("assistant", "Let me check.\n[tool call a] {\"x\": \"é\"}\n[tool call b] ")],
        id="content-and-tool-calls"),
    pytest.param([{"role": "tool", "tool_call_id": "call_1", "content": "22°C and sunny"}],
                 [Turn("tool", "22°C and sunny")], id="tool-message"),
    pytest.param([{"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "22°C"}]}],
                 [Turn("tool", "22°C")], id="tool-message-parts"),
    pytest.param([{"role": "function", "name": "f", "content": None}], [Turn("function", "")],
                 id="function-null-content"),
    pytest.param([{"content": "no role"}], [Turn("", "no role")], id="missing-role"),
]


@pytest.mark.parametrize(("messages", "expected"), TURNS)
def test_chat_turns(messages: list[dict[str, Any]], expected: list[Turn]) -> None:
    assert chat_turns(messages) == expected


@pytest.mark.parametrize(("prompt", "expected"), [
    pytest.param("hi", [Turn("user", "hi")], id="string"),
    pytest.param(["a", "b"], [Turn("user", "a"), Turn("user", "b")], id="strings"),
    pytest.param([1, 2, 3], [Turn("user", "")], id="tokens"),
    pytest.param([[1, 2], [3]], [Turn("user", "")], id="token-arrays"),
])
def test_prompt_turns(prompt: Any, expected: list[Turn]) -> None:
    assert prompt_turns(prompt) == expected


class _Failing:
    kind = "embedded"
    categories: list[str] = []

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def classify(self, request: ClassifierInput) -> Classification:
        raise self.error


@pytest.mark.parametrize(("error", "logged"), [
    (ClassifierUnavailable("model 'task_router': no embedding within 200 ms"), "no embedding within 200 ms"),
    (RuntimeError("the user wrote: my secret diary"), "RuntimeError"),
])
async def test_a_failing_classifier_is_logged_without_the_prompt(error: Exception, logged: str,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    turns = [Turn("user", "my secret diary")]
    with caplog.at_level("WARNING", logger="llm_router.proxy.routing"):
        got = await decide(Target(policy=POLICY), _Failing(error), turns, CIMultiDict(), None)
    assert got.reason == "classifier_failed" and got.candidates == ("fast",)
    [record] = caplog.records
    assert "'tasks'" in record.getMessage() and logged in record.getMessage()
    assert "secret diary" not in record.getMessage()
