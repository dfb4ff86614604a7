"""Custom resources -> RouterConfig and per-object verdicts (``llm_router.operator.translate``), as a table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from llm_router.operator import names
from llm_router.operator.model_catalog import read_catalog
from llm_router.operator.translate import ConfigOptions, NamespaceResources, Translation, translate
from operator_resources import downstream_llm, routing_policy, rules_classifier

CATALOG = read_catalog(None)
LLMS = [downstream_llm("big", secret="big-key"), downstream_llm("small")]
SECRETS = {"big-key": frozenset({"api-key"}), "unrelated": frozenset({"token"})}


def run(llms: list[dict[str, Any]], policies: list[dict[str, Any]],
        secrets: dict[str, frozenset[str]] | None = None) -> Translation:
    return translate(NamespaceResources("team-a", llms, policies, SECRETS if secrets is None else secrets, CATALOG),
                     ConfigOptions(model_repository="/opt/llm-router/triton_models"))


@dataclass
class Case:
    name: str
    llms: list[dict[str, Any]]
    policies: list[dict[str, Any]]
    in_config: list[str]
    """Policies that end up in the config (sorted)."""
    verdicts: dict[tuple[str, str], tuple[str, str, str]] = field(default_factory=dict)
    """(kind, name) -> (condition, reason, a piece of the message) for the conditions that fail."""
    secrets: dict[str, frozenset[str]] | None = None


P, L = names.POLICY_KIND, names.LLM_KIND
STRONG_WEAK = {"strong": ["big", "small"], "weak": ["small"]}


def quality(**fields: Any) -> dict[str, Any]:
    return {"type": "Quality", "model": "quality_router", **fields}


def cost_quality(classifier: dict[str, Any], routes: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return routing_policy("cost", classifier=classifier, routes=STRONG_WEAK if routes is None else routes)

CASES = [
    Case("valid TaskRouter policy", LLMS, [routing_policy("tasks")], ["tasks"]),
    Case("valid Rules policy", LLMS,
         [routing_policy("rules", classifier=rules_classifier({"category": "code", "keywords": ["python"]}),
                         routes={"code": ["big"]})], ["rules"]),
    Case("invalid policy left out, the valid one stays", LLMS,
         [routing_policy("tasks"),
          routing_policy("broken", classifier=rules_classifier({"category": "code", "patterns": ["(unclosed"]}),
                         routes={"code": ["big"]})],
         ["tasks"], {(P, "broken"): ("Accepted", "Invalid", "invalid regular expression")}),
    Case("policy naming a missing LLM", LLMS,
         [routing_policy("tasks", routes={"Code Generation": ["huge", "big"]})], [],
         {(P, "tasks"): ("ResolvedRefs", "LLMNotFound", "['huge']")}),
    Case("missing Secret", LLMS, [routing_policy("tasks")], [],
         {(L, "big"): ("ResolvedRefs", "SecretNotFound", "'big-key'"),
          (P, "tasks"): ("ResolvedRefs", "LLMNotUsable", "['big']")}, secrets={}),
    Case("missing key in the Secret", [downstream_llm("big", secret="big-key", key="token"), LLMS[1]],
         [routing_policy("tasks")], [],
         {(L, "big"): ("ResolvedRefs", "SecretKeyNotFound", "no key 'token'"),
          (P, "tasks"): ("ResolvedRefs", "LLMNotUsable", "['big']")}),
    Case("unknown built-in category", LLMS,
         [routing_policy("tasks", routes={"Poetry": ["big"]})], [],
         {(P, "tasks"): ("Accepted", "UnknownCategory", "['Poetry']")}),
    Case("ComplexityRouter categories", LLMS,
         [routing_policy("complex", classifier={"type": "ComplexityRouter"}, routes={"Reasoning": ["big"]})],
         ["complex"]),
    Case("Custom model from the repository", LLMS,
         [routing_policy("bank", classifier={"type": "Custom", "model": "intent_router"},
                         routes={"card_arrival": ["big"]})], ["bank"]),
    Case("Custom model routed by its label groups", LLMS,
         [routing_policy("bank", classifier={"type": "Custom", "model": "intent_router"},
                         routes={"security": ["big"], "card_arrival": ["big"]})], ["bank"]),
    Case("Custom model not in the repository", LLMS,
         [routing_policy("bank", classifier={"type": "Custom", "model": "fraud_router"}, routes={"x": ["big"]})], [],
         {(P, "bank"): ("ResolvedRefs", "ClassifierModelNotFound", "'fraud_router'")}),
    Case("model given for a built-in classifier", LLMS,
         [routing_policy("tasks", classifier={"type": "TaskRouter", "model": "intent_router"})], [],
         {(P, "tasks"): ("Accepted", "Invalid", "only for types Custom and Quality")}),
    Case("Rules without rules", LLMS, [routing_policy("rules", classifier={"type": "Rules"})], [],
         {(P, "rules"): ("Accepted", "Invalid", "rules (at least one rule) is required")}),
    Case("Quality with a threshold", LLMS, [cost_quality(quality(threshold=0.5))], ["cost"]),
    Case("Quality with tiers", LLMS,
         [cost_quality(quality(tiers=[{"name": "top", "minScore": 0.7}, {"name": "mid", "minScore": 0.4},
                                      {"name": "low", "minScore": 0}]),
                       routes={"top": ["big"], "low": ["small"]})], ["cost"]),
    Case("Quality model not in the repository", LLMS, [cost_quality(quality(model="price_router", threshold=0.5))],
         [], {(P, "cost"): ("ResolvedRefs", "ClassifierModelNotFound", "'price_router'")}),
    Case("Quality naming a task model", LLMS, [cost_quality(quality(model="task_router", threshold=0.5))], [],
         {(P, "cost"): ("Accepted", "NotAQualityModel", "'task_router' is not a quality model")}),
    Case("Quality without model", LLMS, [cost_quality({"type": "Quality", "threshold": 0.5})], [],
         {(P, "cost"): ("Accepted", "Invalid", "spec.classifier.model is required for type Quality")}),
    Case("Quality with neither threshold nor tiers", LLMS, [cost_quality(quality())], [],
         {(P, "cost"): ("Accepted", "Invalid", "exactly one of spec.classifier.threshold")}),
    Case("Quality with threshold and tiers", LLMS,
         [cost_quality(quality(threshold=0.5, tiers=[{"name": "strong", "minScore": 0.5},
                                                     {"name": "weak", "minScore": 0}]))], [],
         {(P, "cost"): ("Accepted", "Invalid", "exactly one of spec.classifier.threshold")}),
    Case("Quality threshold over one", LLMS, [cost_quality(quality(threshold=1.5))], [],
         {(P, "cost"): ("Accepted", "Invalid", "spec.classifier.threshold: Input should be less than or equal to 1")}),
    Case("Quality tiers ascending", LLMS,
         [cost_quality(quality(tiers=[{"name": "weak", "minScore": 0}, {"name": "strong", "minScore": 0.5}]))], [],
         {(P, "cost"): ("Accepted", "Invalid",
                     "spec.classifier.tiers[1].minScore: tier scores must strictly descend")}),
    Case("Quality last tier above zero", LLMS,
         [cost_quality(quality(tiers=[{"name": "strong", "minScore": 0.6}, {"name": "weak", "minScore": 0.1}]))], [],
         {(P, "cost"): ("Accepted", "Invalid", "spec.classifier.tiers[1].minScore: the last tier's score must be 0")}),
    Case("Quality one tier", LLMS,
         [cost_quality(quality(tiers=[{"name": "strong", "minScore": 0}]), routes={"strong": ["big"]})], [],
         {(P, "cost"): ("Accepted", "Invalid", "spec.classifier.tiers: at least two tiers are needed")}),
    Case("Quality tier named twice", LLMS,
         [cost_quality(quality(tiers=[{"name": "strong", "minScore": 0.5}, {"name": "strong", "minScore": 0}]),
                       routes={"strong": ["big"]})], [],
         {(P, "cost"): ("Accepted", "Invalid", "spec.classifier.tiers[1].name: tier names must be distinct")}),
    Case("Quality middle tier out of order", LLMS,
         [cost_quality(quality(tiers=[{"name": "top", "minScore": 0.7}, {"name": "mid", "minScore": 0.2},
                                      {"name": "low", "minScore": 0.4}, {"name": "none", "minScore": 0}]),
                       routes={"top": ["big"], "none": ["small"]})], [],
         {(P, "cost"): ("Accepted", "Invalid",
                        "spec.classifier.tiers[2].minScore: tier scores must strictly descend from the strongest "
                        "tier, got [0.7, 0.2, 0.4, 0.0]")}),
    Case("Quality tier minScore not a number", LLMS,
         [cost_quality(quality(tiers=[{"name": "strong", "minScore": "high"}, {"name": "weak", "minScore": 0}]))],
         [], {(P, "cost"): ("Accepted", "Invalid",
                            "spec.classifier.tiers[0].minScore: Input should be a valid number")}),
    Case("Quality tier without minScore", LLMS,
         [cost_quality(quality(tiers=[{"name": "strong", "minScore": 0.5}, {"name": "weak"}]))], [],
         {(P, "cost"): ("Accepted", "Invalid", "spec.classifier.tiers[1].minScore: Field required")}),
    Case("Quality tier with a snake_case field", LLMS,
         [cost_quality(quality(tiers=[{"name": "strong", "min_score": 0.5}, {"name": "weak", "minScore": 0}]))], [],
         {(P, "cost"): ("Accepted", "Invalid", "spec.classifier.tiers[0] has unknown fields ['min_score']")}),
    Case("Quality route naming no tier", LLMS,
         [cost_quality(quality(threshold=0.5), routes={"strong": ["big"], "Chatbot": ["small"]})], [],
         {(P, "cost"): ("Accepted", "Invalid", "spec.routes: category 'Chatbot' is never returned")}),
    Case("threshold given to a TaskRouter", LLMS, [routing_policy("tasks", classifier={"type": "TaskRouter",
                                                                                       "threshold": 0.5})], [],
         {(P, "tasks"): ("Accepted", "Invalid", "only for type Quality, not TaskRouter")}),
    Case("two default policies: the older one wins", LLMS,
         [routing_policy("newer", default=True, created="2026-02-01T00:00:00Z"),
          routing_policy("older", default=True, created="2026-01-15T00:00:00Z")],
         ["older"], {(P, "newer"): ("Accepted", "ConflictingDefault", "'older'")}),
    Case("policy named like an LLM", LLMS, [routing_policy("big")], [],
         {(P, "big"): ("Accepted", "NameConflict", "also named 'big'")}),
    Case("invalid LLM spec", [downstream_llm("big", api_base="ftp://nowhere"), LLMS[1]],
         [routing_policy("tasks")], [],
         {(L, "big"): ("Accepted", "Invalid", "apiBase"), (P, "tasks"): ("ResolvedRefs", "LLMNotUsable", "['big']")}),
    Case("timeouts beyond total", [downstream_llm("big", secret="big-key", timeouts={"idleSeconds": 900,
                                                                                    "totalSeconds": 60}), LLMS[1]],
         [routing_policy("tasks")], [], {(L, "big"): ("Accepted", "Invalid", "exceeds timeouts.total"),
                                         (P, "tasks"): ("ResolvedRefs", "LLMNotUsable", "['big']")}),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_translation(case: Case) -> None:
    result = run(case.llms, case.policies, case.secrets)
    policies = [policy.name for policy in result.config.policies] if result.config else []
    assert policies == case.in_config
    for key, verdicts in result.results.items():
        failing = [v for v in (verdicts.accepted, verdicts.resolved_refs) if not v.status]
        if key in case.verdicts:
            condition, reason, fragment = case.verdicts[key]
            verdict = next(v for v in failing if v.type == condition)
            assert verdict.reason == reason
            assert fragment in verdict.message
        else:
            assert failing == [], key


def test_valid_config_maps_every_field() -> None:
    llms = [downstream_llm("big", secret="big-key", cost={"inputPerMillion": 0.88, "outputPerMillion": 1.5},
                           contextWindow=128000, maxConcurrency=8,
                           timeouts={"connectSeconds": 2, "firstTokenSeconds": 30, "totalSeconds": 300}),
            downstream_llm("small")]
    policies = [
        routing_policy("tasks", default=True, minConfidence=0.4, failureMode="Closed"),
        routing_policy("rules", classifier=rules_classifier(
            {"category": "code", "keywords": ["python"], "roles": ["user"], "lastMessageOnly": True, "user": None,
             "headers": {"x-team": "^a$"}, "weight": 2.0}), routes={"code": ["big", "small"]}),
    ]
    config = run(llms, policies).config
    assert config is not None
    big = config.llm("big")
    assert big.api_key.file == "/var/run/secrets/llm-router/big-key/api-key"
    assert (big.cost.input_per_million, big.cost.output_per_million) == (0.88, 1.5)
    assert (big.context_window, big.max_concurrency) == (128000, 8)
    assert (big.timeouts.connect, big.timeouts.first_token, big.timeouts.total, big.timeouts.idle) == (2, 30, 300, 60)
    assert config.llm("small").api_key is None
    tasks = config.policy("tasks")
    assert tasks.classifier.model == "task_router"
    assert (tasks.min_confidence, tasks.failure_mode) == (0.4, "closed")
    assert tasks.routes == {"Code Generation": ["big"], "Summarization": ["small"]}
    rule = config.policy("rules").classifier.rules[0]
    assert (rule.last_message_only, rule.roles, rule.headers, rule.weight) == (True, ["user"], {"x-team": "^a$"}, 2.0)
    assert config.router.default_policy == "tasks"
    assert config.router.classifier_backend.triton_url == "llm-router-triton.team-a.svc:8001"
    assert config.router.classifier_backend.model_repository == "/opt/llm-router/triton_models"


def test_mounts_and_served_models_follow_the_config() -> None:
    result = run([*LLMS, downstream_llm("spare", secret="big-key", key="other")],
                 [routing_policy("tasks"), routing_policy("rules", classifier=rules_classifier(),
                                                          routes={"code": ["big"]})],
                 secrets={"big-key": frozenset({"api-key", "other"})})
    assert result.secret_mounts == {"big-key": ("api-key", "other")}
    assert sorted(result.served_models) == ["task_router"]
    rules_only = run(LLMS, [routing_policy("rules", classifier=rules_classifier(), routes={"code": ["big"]})])
    assert rules_only.served_models == {}
    assert rules_only.config.router.classifier_backend.triton_url is None


def test_quality_policy_maps_to_the_proxys_quality_classifier() -> None:
    tiers = [{"name": "top", "minScore": 0.8}, {"name": "mid", "minScore": 0.35}, {"name": "low", "minScore": 0}]
    result = run(LLMS, [cost_quality(quality(threshold=0.42)),
                        routing_policy("tiered", classifier=quality(tiers=tiers),
                                       routes={"top": ["big"], "mid": ["big", "small"], "low": ["small"]})])
    assert result.config is not None
    assert result.config.policy("cost").model_dump(mode="json")["classifier"] == {
        "type": "quality", "model": "quality_router", "threshold": 0.42, "tiers": None}
    assert result.config.policy("cost").routes == STRONG_WEAK
    tiered = result.config.policy("tiered").classifier
    assert [(tier.name, tier.min_score) for tier in tiered.resolved_tiers] == [("top", 0.8), ("mid", 0.35),
                                                                                ("low", 0.0)]
    assert result.results[(P, "tiered")].categories == 3
    assert "classifier model 'quality_router' found" in result.results[(P, "cost")].resolved_refs.message
    # Triton serves the quality model like the other model classifiers.
    assert sorted(result.served_models) == ["quality_router"]
    info = result.served_models["quality_router"]
    assert (info.policy_type, info.classes, info.scores, info.is_quality) == ("quality", 3, 0, True)
    assert result.config.router.classifier_backend.triton_url == "llm-router-triton.team-a.svc:8001"


def test_only_quality_models_count_as_quality() -> None:
    assert sorted(name for name, info in CATALOG.items() if info.is_quality) == ["quality_router"]
    assert CATALOG["task_router"].policy_type == "task"


def test_deleted_llm_flips_the_policy_instead_of_a_dangling_route() -> None:
    policies = [routing_policy("tasks"), routing_policy("only-small", routes={"Summarization": ["small"]})]
    before = run(LLMS, policies)
    assert [policy.name for policy in before.config.policies] == ["only-small", "tasks"]
    after = run([LLMS[1]], policies)
    assert [policy.name for policy in after.config.policies] == ["only-small"]
    assert [llm.name for llm in after.config.llms] == ["small"]
    verdict = after.results[(P, "tasks")].resolved_refs
    assert (verdict.status, verdict.reason) == (False, "LLMNotFound")
    assert "['big']" in verdict.message


def test_no_valid_policy_means_no_config() -> None:
    result = run(LLMS, [routing_policy("tasks", routes={"Poetry": ["big"]})])
    assert result.config is None
    assert result.problem == "no RoutingPolicy in this namespace is valid"
    assert result.results[(L, "big")].valid
    assert run(LLMS, []).problem == "there is no RoutingPolicy in this namespace"


def test_status_messages_never_echo_spec_values() -> None:
    leaked = "sk-live-0123456789"
    result = run([downstream_llm("big", api_base=leaked), LLMS[1]], [routing_policy("tasks")])
    verdict = result.results[(L, "big")].accepted
    assert not verdict.status
    assert leaked not in verdict.message


def test_categories_count_routes() -> None:
    result = run(LLMS, [routing_policy("tasks")])
    assert result.results[(P, "tasks")].categories == 2


@pytest.mark.parametrize("spec", [None, "text", {"classifier": "TaskRouter"}, {"classifier": {"type": "Magic"}},
                                  {"classifier": {"type": "TaskRouter"}, "routes": {"a": ["big"]}},
                                  {"classifier": {"type": "TaskRouter"}, "routes": [{"category": "Chatbot"}],
                                   "defaultRoute": ["big"], "failureMode": "Sometimes"}])
def test_malformed_policy_specs_are_refused_not_raised(spec: Any) -> None:
    policy = routing_policy("odd")
    policy["spec"] = spec
    result = run(LLMS, [policy, routing_policy("tasks")])
    assert not result.results[(P, "odd")].accepted.status
    assert [policy.name for policy in result.config.policies] == ["tasks"]


def test_resilience_fields_map_to_the_proxy_config() -> None:
    llms = [downstream_llm("big", secret="big-key",
                           retry={"attempts": 2, "backoffBaseSeconds": 0.25, "backoffMaxSeconds": 4, "jitter": 0.1,
                                  "retryAfterCapSeconds": 10},
                           hedgeAfterSeconds=1.5,
                           circuitBreaker={"enabled": False, "failures": 3, "windowSeconds": 10, "openSeconds": 20,
                                           "halfOpenProbes": 2},
                           weight=90, endpoints=[{"apiBase": "http://canary.models.svc:8000/v1", "weight": 10},
                                                 {"apiBase": "https://replica.example.com/v1"}],
                           balancing="LatencyWeighted"),
            downstream_llm("small", retry={"attempts": 1})]
    config = run(llms, [routing_policy("tasks")]).config
    assert config is not None
    big = config.llm("big")
    assert (big.retry.attempts, big.retry.backoff_base, big.retry.backoff_max, big.retry.jitter,
            big.retry.retry_after_cap) == (2, 0.25, 4, 0.1, 10)
    assert big.hedge_after == 1.5
    breaker = big.circuit_breaker
    assert (breaker.enabled, breaker.failures, breaker.window_seconds, breaker.open_seconds,
            breaker.half_open_probes) == (False, 3, 10, 20, 2)
    assert big.weight == 90
    assert [(endpoint.base_url, endpoint.weight) for endpoint in big.endpoints] == [
        ("http://canary.models.svc:8000/v1", 10), ("https://replica.example.com/v1", 100)]
    assert big.balancing == "latency_weighted"
    # Unset fields stay unset: the proxy's defaults apply.
    small = config.llm("small")
    assert small.retry.attempts == 1 and small.retry.backoff_max == 2.0
    assert (small.hedge_after, small.weight, small.endpoints, small.balancing) == (None, 100, [],
                                                                                   "least_outstanding")
    assert small.circuit_breaker.failures == 5


@pytest.mark.parametrize(("spec", "fragment"), [
    ({"retry": {"attempts": 11}}, "spec.retry.attempts: Input should be less than or equal to 10"),
    ({"retry": {"backoffBaseSeconds": 5}}, "spec.retry.backoffBaseSeconds must not exceed"),
    ({"retry": {"jitter": 2}}, "spec.retry.jitter"),
    ({"retry": {"tries": 2}}, "spec.retry has unknown fields ['tries']"),
    ({"retry": 3}, "spec.retry must be an object"),
    ({"hedgeAfterSeconds": 0}, "spec.hedgeAfterSeconds: Input should be greater than 0"),
    ({"circuitBreaker": {"windowSeconds": 0}}, "spec.circuitBreaker.windowSeconds"),
    ({"circuitBreaker": {"halfOpenProbes": 101}}, "spec.circuitBreaker.halfOpenProbes"),
    ({"weight": 101}, "spec.weight: Input should be less than or equal to 100"),
    ({"endpoints": {"apiBase": "http://a/v1"}}, "spec.endpoints must be a list"),
    ({"endpoints": [{"apiBase": "ftp://a.example.com/v1"}]}, "spec.endpoints[0].apiBase"),
    ({"endpoints": [{"apiBase": "http://a/v1", "weight": -1}]}, "spec.endpoints[0].weight"),
    ({"endpoints": [{"apiBase": "https://llm.example.com/v1/"}]}, "spec.endpoints[0].apiBase repeats"),
    ({"endpoints": [{"apiBase": "http://a/v1"}, {"apiBase": "http://a/v1"}]}, "spec.endpoints[1].apiBase repeats"),
    ({"weight": 0, "endpoints": [{"apiBase": "http://a/v1", "weight": 0}]}, "no server would get traffic"),
    ({"balancing": "least_outstanding"}, "spec.balancing must be one of LeastOutstanding, LatencyWeighted"),
])
def test_invalid_resilience_values_are_refused_naming_the_field(spec: dict[str, Any], fragment: str) -> None:
    result = run([downstream_llm("big", secret="big-key", **spec), LLMS[1]], [routing_policy("tasks")])
    verdict = result.results[(L, "big")].accepted
    assert (verdict.status, verdict.reason) == (False, "Invalid")
    assert fragment in verdict.message
    assert result.results[(P, "tasks")].resolved_refs.reason == "LLMNotUsable"
    assert result.config is None


def test_endpoint_urls_are_not_echoed_in_messages() -> None:
    leaked = "http://user:sk-secret-pass@a.example.com/v1"
    result = run([downstream_llm("big", endpoints=[{"apiBase": leaked}, {"apiBase": leaked}]), LLMS[1]],
                 [routing_policy("tasks")])
    verdict = result.results[(L, "big")].accepted
    assert not verdict.status
    assert "sk-secret-pass" not in verdict.message
