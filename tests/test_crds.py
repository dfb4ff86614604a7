"""The CRDs in crds/ and the example resources in manifests/.

No API server runs here, so ``crd_schema`` reproduces what it checks: structural schemas,
defaulting, the OpenAPI checks and every CEL rule (evaluated with cel-python). The CRD objects
themselves are validated with ``kubernetes-validate`` against the oldest and newest Kubernetes
versions we support. Each CEL rule has a case that passes and one that fails with its exact message;
``test_every_rule_has_a_passing_and_a_failing_case`` fails when a new rule comes without them.
"""

from __future__ import annotations

import copy
import re
import typing
from dataclasses import dataclass, field
from typing import Any

import kubernetes_validate
import pytest
from crd_schema import (
    MANIFEST_DIR,
    Problem,
    apply_defaults,
    free_form_paths,
    load_crds,
    load_yaml_documents,
    rule_results,
    schema_rules,
    storage_schema,
    structural_violations,
    validate,
)
from llm_router.proxy.config import (
    NAME_PATTERN,
    STRONG_TIER,
    WEAK_TIER,
    CircuitBreakerConfig,
    LLMConfig,
    QualityClassifierRef,
    QualityTier,
    ReplicaConfig,
    RetryConfig,
    RuleMatch,
    Timeouts,
)
from llm_router.proxy.model_classifier import DEFAULT_MODEL_REPOSITORY, load_head
from pydantic import BaseModel

CRDS = load_crds()
KINDS = ("DownstreamLLM", "RoutingPolicy")
GROUP = "llm-router.io"
API_VERSION = f"{GROUP}/v1alpha1"
OLDEST_KUBERNETES = "1.28.0"
NEWEST_KUBERNETES = kubernetes_validate.latest_version()


def resource(kind: str, spec: dict[str, Any], name: str = "example") -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, "namespace": "team-a"}, "spec": spec}


def llm_spec(**fields: Any) -> dict[str, Any]:
    return {"apiBase": "https://integrate.api.nvidia.com/v1", "model": "meta/llama-3.1-8b-instruct", **fields}


def policy_spec(**fields: Any) -> dict[str, Any]:
    return {
        "classifier": {"type": "TaskRouter"},
        "routes": [{"category": "Code Generation", "llms": ["big", "small"]}],
        "defaultRoute": ["small"],
        **fields,
    }


def rules_classifier(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Rules", "rules": list(rules)}


# ------------------------------------------------------------ the agreed shape


@pytest.mark.parametrize(("kind", "plural", "short_names"), [
    ("DownstreamLLM", "downstreamllms", ["dllm", "llm"]),
    ("RoutingPolicy", "routingpolicies", ["rpol", "policy"]),
])
def test_crd_names_scope_and_version(kind: str, plural: str, short_names: list[str]) -> None:
    crd = CRDS[kind]
    assert crd["metadata"]["name"] == f"{plural}.{GROUP}"
    assert crd["spec"]["group"] == GROUP
    assert crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (kind, plural, short_names)
    assert names["categories"] == ["llm-router"]
    [version] = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


READY = '.status.conditions[?(@.type=="Ready")].status'


@pytest.mark.parametrize(("kind", "columns"), [
    ("DownstreamLLM", [("Model", ".spec.model"), ("API Base", ".spec.apiBase"), ("Ready", READY),
                       ("Age", ".metadata.creationTimestamp")]),
    ("RoutingPolicy", [("Classifier", ".spec.classifier.type"), ("Categories", ".status.categories"),
                       ("Default", ".spec.default"), ("Ready", READY), ("Age", ".metadata.creationTimestamp")]),
])
def test_printer_columns(kind: str, columns: list[tuple[str, str]]) -> None:
    [version] = CRDS[kind]["spec"]["versions"]
    assert [(column["name"], column["jsonPath"]) for column in version["additionalPrinterColumns"]] == columns


@pytest.mark.parametrize("kind", KINDS)
def test_status_has_conditions_keyed_by_type_and_observed_generation(kind: str) -> None:
    status = storage_schema(CRDS[kind])["properties"]["status"]
    assert status["properties"]["observedGeneration"]["type"] == "integer"
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["properties"]) == {"type", "status", "observedGeneration", "lastTransitionTime", "reason",
                                       "message"}
    assert item["required"] == ["type", "status", "lastTransitionTime", "reason", "message"]


@pytest.mark.parametrize("kind", KINDS)
def test_status_written_by_the_operator_validates(kind: str) -> None:
    obj = resource(kind, llm_spec() if kind == "DownstreamLLM" else policy_spec())
    condition = {"type": "Ready", "status": "True", "reason": "Applied", "message": "in config revision 0123abcd",
                 "observedGeneration": 3, "lastTransitionTime": "2026-11-23T04:00:00Z"}
    obj["status"] = {"observedGeneration": 3, "conditions": [condition, {**condition, "type": "Accepted"}]}
    assert validate(obj, CRDS[kind]) == []
    unknown_status = copy.deepcopy(obj)
    unknown_status["status"]["conditions"].append({**condition, "type": "Degraded", "status": "Maybe"})
    assert [(problem.path, problem.kind) for problem in validate(unknown_status, CRDS[kind])] == [
        ("status.conditions[2].status", "enum")]
    same_type_twice = copy.deepcopy(obj)
    same_type_twice["status"]["conditions"].append({**condition, "status": "False"})
    assert [(problem.path, problem.kind) for problem in validate(same_type_twice, CRDS[kind])] == [
        ("status.conditions[2]", "duplicate")]


@pytest.mark.parametrize("kind", KINDS)
def test_only_kopfs_bookkeeping_is_free_form(kind: str) -> None:
    assert free_form_paths(storage_schema(CRDS[kind])) == ["status.kopf"]
    obj = resource(kind, llm_spec() if kind == "DownstreamLLM" else policy_spec())
    obj["status"] = {"kopf": {"progress": {"reconcile": {"retries": 1, "success": False}}, "dummy": "2026-11-23"}}
    assert validate(obj, CRDS[kind]) == []
    obj["status"] = {"phase": "Ready"}
    problems = validate(obj, CRDS[kind])
    assert [(problem.path, problem.kind) for problem in problems] == [("status.phase", "unknown-field")]


# ------------------------------------------------------------------ structural


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural_and_bounded(kind: str) -> None:
    assert structural_violations(storage_schema(CRDS[kind])) == []


def _root(**spec_properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"spec": {"type": "object", "properties": spec_properties}}}


@pytest.mark.parametrize(("name", "schema", "violation"), [
    ("type missing", _root(a={"maxLength": 3}), "spec.a: no type"),
    ("properties with additionalProperties",
     {"type": "object", "properties": {"spec": {"type": "object", "properties": {}, "additionalProperties": {
         "type": "string", "maxLength": 1}, "maxProperties": 1}}},
     "spec: properties and additionalProperties together"),
    ("unbounded string", _root(a={"type": "string"}), "spec.a: string without maxLength"),
    ("unbounded array", _root(a={"type": "array", "items": {"type": "integer"}}), "spec.a: array without maxItems"),
    ("unbounded map", _root(a={"type": "object", "additionalProperties": {"type": "integer"}}),
     "spec.a: map without maxProperties"),
    ("unbounded string in a list", _root(a={"type": "array", "maxItems": 2, "items": {"type": "string"}}),
     "spec.a[*]: string without maxLength"),
    ("metadata beyond name", {"type": "object", "properties": {"metadata": {"type": "object", "properties": {
        "labels": {"type": "object", "maxProperties": 1,
                   "additionalProperties": {"type": "string", "maxLength": 1}}}}}},
     "metadata.labels: only name and generateName may be constrained"),
    ("type inside anyOf", _root(a={"type": "string", "maxLength": 1, "anyOf": [{"type": "string"}]}),
     "spec.a: type inside anyOf"),
    ("list-map key not required", _root(a={
        "type": "array", "maxItems": 1, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
        "items": {"type": "object", "properties": {"k": {"type": "string", "maxLength": 1}}}}),
     "spec.a: list-map key 'k' must be required or defaulted"),
    ("reason not allowed", _root(a={"type": "integer", "x-kubernetes-validations": [
        {"rule": "self > 0", "message": "positive", "reason": "FieldValueNotSupported"}]}),
     "spec.a: rule 'self > 0' has reason 'FieldValueNotSupported'"),
    ("fieldPath not in the schema", _root(a={"type": "object", "properties": {}, "x-kubernetes-validations": [
        {"rule": "true", "message": "m", "fieldPath": ".b"}]}),
     "spec.a: rule 'true' has fieldPath '.b', which is not in its schema"),
    ("message on two lines", _root(a={"type": "integer", "x-kubernetes-validations": [
        {"rule": "self > 0", "message": "a\nb"}]}), "spec.a: rule 'self > 0' needs a one-line message"),
    ("rule that does not parse", _root(a={"type": "integer", "x-kubernetes-validations": [
        {"rule": "self >", "message": "m"}]}), "spec.a: rule 'self >' does not parse"),
    ("default that does not validate", _root(a={"type": "integer", "minimum": 1, "default": 0}),
     "spec.a: default 0 does not validate"),
])
def test_structural_checker_reports(name: str, schema: dict[str, Any], violation: str) -> None:
    violations = structural_violations(schema)
    assert any(found.startswith(violation) for found in violations), violations


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
@pytest.mark.parametrize("kind", KINDS)
def test_crd_object_validates_with_kubernetes_validate(kind: str, version: str) -> None:
    kubernetes_validate.validate(CRDS[kind], version, strict=True)


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
def test_kubernetes_validate_refuses_a_misspelt_crd(version: str) -> None:
    crd = copy.deepcopy(CRDS["DownstreamLLM"])
    timeouts = storage_schema(crd)["properties"]["spec"]["properties"]["timeouts"]
    timeouts["x-kubernetes-validations"][0]["mesage"] = timeouts["x-kubernetes-validations"][0].pop("message")
    with pytest.raises(kubernetes_validate.ValidationError, match="mesage"):
        kubernetes_validate.validate(crd, version, strict=True)


# --------------------------------------------------------------------- examples


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, document) for path in sorted(MANIFEST_DIR.glob("*.yaml")) if path.name != "kustomization.yaml"
            for document in load_yaml_documents(path)]


def examples_of(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in example_documents() if document["kind"] == kind]


@pytest.mark.parametrize(("file", "document"), [
    pytest.param(file, document, id=f"{document['kind']}/{document['metadata']['name']}")
    for file, document in example_documents() if document["kind"] in KINDS
])
def test_example_resource_is_accepted(file: str, document: dict[str, Any]) -> None:
    assert document["apiVersion"] == API_VERSION
    assert validate(document, CRDS[document["kind"]]) == []


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
def test_example_secret_is_a_valid_placeholder(version: str) -> None:
    [secret] = examples_of("Secret")
    kubernetes_validate.validate(secret, version, strict=True)
    assert secret["stringData"] == {"api-key": "REPLACE_ME"}
    assert "data" not in secret


def test_kustomization_lists_every_example_file() -> None:
    [kustomization] = load_yaml_documents(MANIFEST_DIR / "kustomization.yaml")
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    files = sorted(path.name for path in MANIFEST_DIR.glob("*.yaml") if path.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files
    assert len(set(kustomization["resources"])) == len(kustomization["resources"])


def test_examples_are_the_nvidia_catalog_llms() -> None:
    llms = {document["metadata"]["name"]: document["spec"] for document in examples_of("DownstreamLLM")}
    assert {spec["model"] for spec in llms.values()} == {
        "meta/llama-3.1-70b-instruct", "meta/llama-3.1-8b-instruct",
        "mistralai/mixtral-8x22b-instruct-v0.1", "deepseek-ai/deepseek-r1"}
    assert {spec["apiBase"] for spec in llms.values()} == {"https://integrate.api.nvidia.com/v1"}
    for spec in llms.values():
        assert spec["cost"]["inputPerMillion"] > 0 and spec["cost"]["outputPerMillion"] > 0
        assert spec["contextWindow"] >= 32_000


def test_examples_reference_only_what_they_define() -> None:
    llm_names = {document["metadata"]["name"] for document in examples_of("DownstreamLLM")}
    secrets = {document["metadata"]["name"]: document for document in examples_of("Secret")}
    for llm in examples_of("DownstreamLLM"):
        ref = apply_defaults(llm, storage_schema(CRDS["DownstreamLLM"]))["spec"]["apiKeySecretRef"]
        assert ref["key"] in secrets[ref["name"]]["stringData"]
    policies = examples_of("RoutingPolicy")
    for policy in policies:
        spec = policy["spec"]
        named = {llm for route in spec["routes"] for llm in route["llms"]} | set(spec["defaultRoute"])
        assert named <= llm_names, policy["metadata"]["name"]
    assert sorted(policy["metadata"]["name"] for policy in policies) == ["complexity-router", "cost-quality",
                                                                         "intent-router", "task-router"]
    assert [policy["metadata"]["name"] for policy in policies if policy["spec"].get("default")] == ["task-router"]
    # The proxy refuses a config where one name is both an LLM and a policy.
    assert not llm_names & {policy["metadata"]["name"] for policy in policies}


@pytest.mark.parametrize(("policy_name", "model", "all_routed"), [
    ("task-router", "task_router", True),
    ("complexity-router", "complexity_router", True),
    ("intent-router", "intent_router", False),
])
def test_example_policy_routes_categories_its_model_returns(policy_name: str, model: str, all_routed: bool) -> None:
    """The proxy refuses a route its model never returns (``load_head`` reads triton_models/)."""
    [policy] = [document for document in examples_of("RoutingPolicy") if document["metadata"]["name"] == policy_name]
    categories = load_head(DEFAULT_MODEL_REPOSITORY, model).route_names  # labels, then any label groups
    routed = [route["category"] for route in policy["spec"]["routes"]]
    assert set(routed) <= set(categories)
    if all_routed:
        assert sorted(routed) == sorted(categories)
    if policy["spec"]["classifier"]["type"] == "Custom":
        assert policy["spec"]["classifier"]["model"] == model


def test_cost_quality_example_routes_the_tiers_of_a_quality_model() -> None:
    [policy] = [document for document in examples_of("RoutingPolicy") if document["metadata"]["name"] == "cost-quality"]
    classifier = policy["spec"]["classifier"]
    assert classifier["type"] == "Quality"
    assert load_head(DEFAULT_MODEL_REPOSITORY, classifier["model"]).policy_type == "quality"
    assert 0 < classifier["threshold"] < 1 and "tiers" not in classifier
    routes = {route["category"]: route["llms"] for route in policy["spec"]["routes"]}
    assert sorted(routes) == sorted([STRONG_TIER, WEAK_TIER])
    assert (routes[STRONG_TIER][0], routes[WEAK_TIER][0]) == ("llama-3-1-70b", "llama-3-1-8b")


# ------------------------------------------------------------------ CEL rules


@dataclass(frozen=True)
class RuleCase:
    """One row: an object, the rule it exercises (by its message) and the exact outcome."""

    name: str
    kind: str
    spec: dict[str, Any]
    rule: str
    rejected_with: list[tuple[str, str]] = field(default_factory=list)
    """``(path, message)`` of every problem; empty: accepted, and the rule was evaluated and held."""


def _message(kind: str, start: str) -> str:
    """The message of the one rule of ``kind`` whose message starts with ``start``."""
    messages = [rule.message for rule in schema_rules(storage_schema(CRDS[kind])) if rule.message.startswith(start)]
    assert len(messages) == 1, f"{kind}: expected one rule whose message starts with {start!r}, found {messages}"
    return messages[0]


SCHEME = _message("DownstreamLLM", "apiBase must start with")
BASE_URL = _message("DownstreamLLM", "apiBase must be a base URL")
CONNECT = _message("DownstreamLLM", "timeouts.connectSeconds")
FIRST_TOKEN = _message("DownstreamLLM", "timeouts.firstTokenSeconds")
IDLE = _message("DownstreamLLM", "timeouts.idleSeconds")
BACKOFF = _message("DownstreamLLM", "retry.backoffBaseSeconds")
ENDPOINT_SCHEME = _message("DownstreamLLM", "endpoints[].apiBase must start with")
ENDPOINT_URL = _message("DownstreamLLM", "endpoints[].apiBase must be a base URL")
ENDPOINT_NOT_API_BASE = _message("DownstreamLLM", "endpoints must not repeat spec.apiBase")
SOME_WEIGHT = _message("DownstreamLLM", "with endpoints, at least one weight")
MODEL_REQUIRED = _message("RoutingPolicy", "classifier.model is required")
MODEL_FORBIDDEN = _message("RoutingPolicy", "classifier.model is only allowed")
RULES_REQUIRED = _message("RoutingPolicy", "classifier.rules is required")
RULES_FORBIDDEN = _message("RoutingPolicy", "classifier.rules is only allowed")
RULE_CONDITION = _message("RoutingPolicy", "a rule needs at least one condition")
TASK_CATEGORIES = _message("RoutingPolicy", "routes of a TaskRouter policy")
COMPLEXITY_CATEGORIES = _message("RoutingPolicy", "routes of a ComplexityRouter policy")
RULES_CATEGORIES = _message("RoutingPolicy", "routes of a Rules policy")
ROUTE_UNIQUE = _message("RoutingPolicy", "a route must not name")
DEFAULT_UNIQUE = _message("RoutingPolicy", "defaultRoute must not name")
QUALITY_TIERING = _message("RoutingPolicy", "a Quality classifier needs exactly one")
QUALITY_ONLY = _message("RoutingPolicy", "classifier.threshold and classifier.tiers are only allowed")
TIERS_DESCEND = _message("RoutingPolicy", "classifier.tiers must be ordered")
LAST_TIER_ZERO = _message("RoutingPolicy", "the last of classifier.tiers")
QUALITY_CATEGORIES = _message("RoutingPolicy", "routes of a Quality policy")

CODE_RULE = {"category": "code", "keywords": ["python"]}
STRONG_WEAK = [{"category": "strong", "llms": ["big"]}, {"category": "weak", "llms": ["small"]}]


def quality_classifier(**fields: Any) -> dict[str, Any]:
    return {"type": "Quality", "model": "quality_router", **fields}


def tiers(*scores: float) -> list[dict[str, Any]]:
    return [{"name": f"t{index}", "minScore": score} for index, score in enumerate(scores)]


def tier_routes(count: int) -> list[dict[str, Any]]:
    return [{"category": f"t{index}", "llms": ["big"]} for index in range(count)]

RULE_CASES = [
    # DownstreamLLM: apiBase
    RuleCase("http on loopback", "DownstreamLLM", llm_spec(apiBase="http://127.0.0.1:8101/v1"), SCHEME),
    RuleCase("ftp scheme", "DownstreamLLM", llm_spec(apiBase="ftp://files.example.com/v1"), SCHEME,
             [("spec.apiBase", SCHEME)]),
    RuleCase("no scheme at all", "DownstreamLLM", llm_spec(apiBase="integrate.api.nvidia.com/v1"), SCHEME,
             [("spec.apiBase", SCHEME), ("spec.apiBase", BASE_URL)]),
    RuleCase("base URL with host and path", "DownstreamLLM", llm_spec(apiBase="https://integrate.api.nvidia.com/v1"),
             BASE_URL),
    RuleCase("base URL with port, no path", "DownstreamLLM", llm_spec(apiBase="http://vllm.models.svc:8000"), BASE_URL),
    RuleCase("query string", "DownstreamLLM", llm_spec(apiBase="https://api.example.com/v1?key=abc"), BASE_URL,
             [("spec.apiBase", BASE_URL)]),
    RuleCase("no host", "DownstreamLLM", llm_spec(apiBase="https:///v1"), BASE_URL, [("spec.apiBase", BASE_URL)]),
    RuleCase("space in the URL", "DownstreamLLM", llm_spec(apiBase="https://api.example.com/my v1"), BASE_URL,
             [("spec.apiBase", BASE_URL)]),
    # DownstreamLLM: timeouts ordered against total (unset ones take the proxy's defaults)
    RuleCase("connect equal to total", "DownstreamLLM",
             llm_spec(timeouts={"connectSeconds": 10, "firstTokenSeconds": 10, "idleSeconds": 10, "totalSeconds": 10}),
             CONNECT),
    RuleCase("integers compare with decimals", "DownstreamLLM",
             llm_spec(timeouts={"connectSeconds": 5, "firstTokenSeconds": 5.5, "idleSeconds": 5.5,
                                "totalSeconds": 5.5}), CONNECT),
    RuleCase("connect over total", "DownstreamLLM",
             llm_spec(timeouts={"connectSeconds": 30, "firstTokenSeconds": 10, "idleSeconds": 10, "totalSeconds": 20}),
             CONNECT, [("spec.timeouts.connectSeconds", CONNECT)]),
    RuleCase("first token within default total", "DownstreamLLM", llm_spec(timeouts={"firstTokenSeconds": 600}),
             FIRST_TOKEN),
    RuleCase("first token over total", "DownstreamLLM", llm_spec(timeouts={"firstTokenSeconds": 120,
                                                                           "totalSeconds": 100}),
             FIRST_TOKEN, [("spec.timeouts.firstTokenSeconds", FIRST_TOKEN)]),
    RuleCase("idle below default total", "DownstreamLLM", llm_spec(timeouts={"idleSeconds": 0.5}), IDLE),
    RuleCase("idle over default total", "DownstreamLLM", llm_spec(timeouts={"idleSeconds": 700}), IDLE,
             [("spec.timeouts.idleSeconds", IDLE)]),
    RuleCase("total under every default", "DownstreamLLM", llm_spec(timeouts={"totalSeconds": 3}), IDLE,
             [("spec.timeouts.connectSeconds", CONNECT), ("spec.timeouts.firstTokenSeconds", FIRST_TOKEN),
              ("spec.timeouts.idleSeconds", IDLE)]),
    # DownstreamLLM: retry backoff ordered (unset ones take the proxy's defaults)
    RuleCase("backoff base equal to max", "DownstreamLLM",
             llm_spec(retry={"backoffBaseSeconds": 1, "backoffMaxSeconds": 1}), BACKOFF),
    RuleCase("backoff base within default max", "DownstreamLLM", llm_spec(retry={"backoffBaseSeconds": 1.5}),
             BACKOFF),
    RuleCase("retry with attempts only", "DownstreamLLM", llm_spec(retry={"attempts": 2}), BACKOFF),
    RuleCase("backoff base over max", "DownstreamLLM",
             llm_spec(retry={"backoffBaseSeconds": 3, "backoffMaxSeconds": 1}), BACKOFF,
             [("spec.retry.backoffBaseSeconds", BACKOFF)]),
    RuleCase("backoff max under default base", "DownstreamLLM", llm_spec(retry={"backoffMaxSeconds": 0.05}),
             BACKOFF, [("spec.retry.backoffBaseSeconds", BACKOFF)]),
    # DownstreamLLM: endpoints
    RuleCase("endpoint on loopback", "DownstreamLLM",
             llm_spec(endpoints=[{"apiBase": "http://127.0.0.1:8102/v1", "weight": 10}]), ENDPOINT_SCHEME),
    RuleCase("endpoint with ftp", "DownstreamLLM", llm_spec(endpoints=[{"apiBase": "ftp://files.example.com/v1"}]),
             ENDPOINT_SCHEME, [("spec.endpoints[0].apiBase", ENDPOINT_SCHEME)]),
    RuleCase("endpoint base URL with port", "DownstreamLLM",
             llm_spec(endpoints=[{"apiBase": "http://vllm-canary.models.svc:8000/v1"}]), ENDPOINT_URL),
    RuleCase("endpoint with a query", "DownstreamLLM",
             llm_spec(endpoints=[{"apiBase": "https://a.example.com/v1"}, {"apiBase": "https://b.example.com/v1?x=1"}]),
             ENDPOINT_URL, [("spec.endpoints[1].apiBase", ENDPOINT_URL)]),
    RuleCase("endpoints other than apiBase", "DownstreamLLM",
             llm_spec(endpoints=[{"apiBase": "https://canary.example.com/v1"}]), ENDPOINT_NOT_API_BASE),
    RuleCase("endpoint repeating apiBase", "DownstreamLLM",
             llm_spec(endpoints=[{"apiBase": "https://canary.example.com/v1"},
                                 {"apiBase": "https://integrate.api.nvidia.com/v1"}]),
             ENDPOINT_NOT_API_BASE, [("spec.endpoints", ENDPOINT_NOT_API_BASE)]),
    RuleCase("apiBase drained, endpoint by default weight", "DownstreamLLM",
             llm_spec(weight=0, endpoints=[{"apiBase": "https://canary.example.com/v1"}]), SOME_WEIGHT),
    RuleCase("weight 0 without endpoints", "DownstreamLLM", llm_spec(weight=0, endpoints=[]), SOME_WEIGHT),
    RuleCase("every weight 0", "DownstreamLLM",
             llm_spec(weight=0, endpoints=[{"apiBase": "https://canary.example.com/v1", "weight": 0}]), SOME_WEIGHT,
             [("spec.weight", SOME_WEIGHT)]),
    # RoutingPolicy: classifier fields by type
    RuleCase("Custom with model", "RoutingPolicy",
             policy_spec(classifier={"type": "Custom", "model": "intent_router"},
                         routes=[{"category": "lost_or_stolen_card", "llms": ["big"]}]), MODEL_REQUIRED),
    RuleCase("Custom without model", "RoutingPolicy",
             policy_spec(classifier={"type": "Custom"}, routes=[{"category": "lost_or_stolen_card", "llms": ["big"]}]),
             MODEL_REQUIRED, [("spec.classifier.model", MODEL_REQUIRED)]),
    RuleCase("TaskRouter without model", "RoutingPolicy", policy_spec(), MODEL_FORBIDDEN),
    RuleCase("TaskRouter with model", "RoutingPolicy",
             policy_spec(classifier={"type": "TaskRouter", "model": "task_router"}), MODEL_FORBIDDEN,
             [("spec.classifier.model", MODEL_FORBIDDEN)]),
    RuleCase("Rules with rules", "RoutingPolicy",
             policy_spec(classifier=rules_classifier(CODE_RULE), routes=[{"category": "code", "llms": ["big"]}]),
             RULES_REQUIRED),
    RuleCase("Rules without rules", "RoutingPolicy",
             policy_spec(classifier={"type": "Rules"}, routes=[{"category": "code", "llms": ["big"]}]),
             RULES_REQUIRED, [("spec.classifier.rules", RULES_REQUIRED)]),
    RuleCase("ComplexityRouter without rules", "RoutingPolicy",
             policy_spec(classifier={"type": "ComplexityRouter"}, routes=[{"category": "Reasoning", "llms": ["big"]}]),
             RULES_FORBIDDEN),
    RuleCase("Custom with rules", "RoutingPolicy",
             policy_spec(classifier={"type": "Custom", "model": "intent_router", "rules": [CODE_RULE]}),
             RULES_FORBIDDEN, [("spec.classifier.rules", RULES_FORBIDDEN)]),
    # RoutingPolicy: each rule of a Rules classifier has a condition
    RuleCase("rule with headers only", "RoutingPolicy",
             policy_spec(classifier=rules_classifier({"category": "support", "headers": {"x-team": "^support$"}}),
                         routes=[{"category": "support", "llms": ["big"]}]), RULE_CONDITION),
    RuleCase("rule with user only", "RoutingPolicy",
             policy_spec(classifier=rules_classifier({"category": "vip", "user": "^vip-"}),
                         routes=[{"category": "vip", "llms": ["big"]}]), RULE_CONDITION),
    RuleCase("rule without condition", "RoutingPolicy",
             policy_spec(classifier=rules_classifier(CODE_RULE, {"category": "code", "weight": 2}),
                         routes=[{"category": "code", "llms": ["big"]}]),
             RULE_CONDITION, [("spec.classifier.rules[1]", RULE_CONDITION)]),
    RuleCase("rule with empty lists only", "RoutingPolicy",
             policy_spec(classifier=rules_classifier({"category": "code", "keywords": [], "patterns": [],
                                                      "headers": {}}),
                         routes=[{"category": "code", "llms": ["big"]}]),
             RULE_CONDITION, [("spec.classifier.rules[0]", RULE_CONDITION)]),
    # RoutingPolicy: routes use categories the classifier returns
    RuleCase("TaskRouter Unknown category", "RoutingPolicy",
             policy_spec(routes=[{"category": "Unknown", "llms": ["small"]}]), TASK_CATEGORIES),
    RuleCase("TaskRouter with a complexity category", "RoutingPolicy",
             policy_spec(routes=[{"category": "Code Generation", "llms": ["big"]},
                                 {"category": "Reasoning", "llms": ["big"]}]),
             TASK_CATEGORIES, [("spec.routes", TASK_CATEGORIES)]),
    RuleCase("ComplexityRouter Few-Shot", "RoutingPolicy",
             policy_spec(classifier={"type": "ComplexityRouter"}, routes=[{"category": "Few-Shot", "llms": ["big"]}]),
             COMPLEXITY_CATEGORIES),
    RuleCase("ComplexityRouter with a task category", "RoutingPolicy",
             policy_spec(classifier={"type": "ComplexityRouter"},
                         routes=[{"category": "Code Generation", "llms": ["big"]}]),
             COMPLEXITY_CATEGORIES, [("spec.routes", COMPLEXITY_CATEGORIES)]),
    RuleCase("Rules route named by a rule", "RoutingPolicy",
             policy_spec(classifier=rules_classifier(CODE_RULE, {"category": "support", "user": "^support-"}),
                         routes=[{"category": "code", "llms": ["big"]}, {"category": "support", "llms": ["small"]}]),
             RULES_CATEGORIES),
    RuleCase("Rules route no rule names", "RoutingPolicy",
             policy_spec(classifier=rules_classifier(CODE_RULE),
                         routes=[{"category": "code", "llms": ["big"]}, {"category": "support", "llms": ["small"]}]),
             RULES_CATEGORIES, [("spec.routes", RULES_CATEGORIES)]),
    # RoutingPolicy: no LLM twice in a route
    RuleCase("route with distinct LLMs", "RoutingPolicy",
             policy_spec(routes=[{"category": "Chatbot", "llms": ["a", "b", "c"]}]), ROUTE_UNIQUE),
    RuleCase("route with an LLM twice", "RoutingPolicy",
             policy_spec(routes=[{"category": "Chatbot", "llms": ["a"]},
                                 {"category": "Rewrite", "llms": ["a", "b", "a"]}]),
             ROUTE_UNIQUE, [("spec.routes[1].llms", ROUTE_UNIQUE)]),
    RuleCase("default route with distinct LLMs", "RoutingPolicy", policy_spec(defaultRoute=["small", "big"]),
             DEFAULT_UNIQUE),
    RuleCase("default route with an LLM twice", "RoutingPolicy", policy_spec(defaultRoute=["small", "small"]),
             DEFAULT_UNIQUE, [("spec.defaultRoute", DEFAULT_UNIQUE)]),
    # RoutingPolicy: Quality classifiers
    RuleCase("Quality with model", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(threshold=0.5), routes=STRONG_WEAK), MODEL_REQUIRED),
    RuleCase("Quality without model", "RoutingPolicy",
             policy_spec(classifier={"type": "Quality", "threshold": 0.5}, routes=STRONG_WEAK), MODEL_REQUIRED,
             [("spec.classifier.model", MODEL_REQUIRED)]),
    RuleCase("Quality with threshold", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(threshold=0.3), routes=STRONG_WEAK), QUALITY_TIERING),
    RuleCase("Quality with tiers", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(tiers=tiers(0.7, 0.4, 0)), routes=tier_routes(3)),
             QUALITY_TIERING),
    RuleCase("Quality with neither threshold nor tiers", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(), routes=STRONG_WEAK), QUALITY_TIERING,
             [("spec.classifier", QUALITY_TIERING)]),
    RuleCase("Quality with threshold and tiers", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(threshold=0.5, tiers=tiers(0.5, 0)), routes=tier_routes(2)),
             QUALITY_TIERING, [("spec.classifier", QUALITY_TIERING)]),
    RuleCase("Custom without threshold or tiers", "RoutingPolicy",
             policy_spec(classifier={"type": "Custom", "model": "intent_router"},
                         routes=[{"category": "card_arrival", "llms": ["big"]}]), QUALITY_ONLY),
    RuleCase("TaskRouter with a threshold", "RoutingPolicy",
             policy_spec(classifier={"type": "TaskRouter", "threshold": 0.5}), QUALITY_ONLY,
             [("spec.classifier", QUALITY_ONLY)]),
    RuleCase("eight descending tiers", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(tiers=tiers(0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.2, 0)),
                         routes=tier_routes(8)), TIERS_DESCEND),
    RuleCase("tiers with an equal minScore", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(tiers=tiers(0.6, 0.6, 0)), routes=tier_routes(3)),
             TIERS_DESCEND, [("spec.classifier.tiers", TIERS_DESCEND)]),
    RuleCase("tiers weakest first", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(tiers=[{"name": "weak", "minScore": 0},
                                                              {"name": "strong", "minScore": 0.5}]),
                         routes=STRONG_WEAK),
             TIERS_DESCEND, [("spec.classifier.tiers", TIERS_DESCEND), ("spec.classifier.tiers", LAST_TIER_ZERO)]),
    RuleCase("last tier at zero", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(tiers=tiers(0.5, 0)), routes=tier_routes(2)), LAST_TIER_ZERO),
    RuleCase("last tier above zero", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(tiers=tiers(0.7, 0.2)), routes=tier_routes(2)),
             LAST_TIER_ZERO, [("spec.classifier.tiers", LAST_TIER_ZERO)]),
    RuleCase("Quality routes strong and weak", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(threshold=0.5), routes=STRONG_WEAK), QUALITY_CATEGORIES),
    RuleCase("Quality routes a tier by name", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(tiers=tiers(0.7, 0.4, 0)), routes=tier_routes(2)),
             QUALITY_CATEGORIES),
    RuleCase("threshold policy routes a task category", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(threshold=0.5),
                         routes=[*STRONG_WEAK, {"category": "Chatbot", "llms": ["big"]}]),
             QUALITY_CATEGORIES, [("spec.routes", QUALITY_CATEGORIES)]),
    RuleCase("tiered policy routes strong", "RoutingPolicy",
             policy_spec(classifier=quality_classifier(tiers=tiers(0.5, 0)), routes=STRONG_WEAK),
             QUALITY_CATEGORIES, [("spec.routes", QUALITY_CATEGORIES)]),
]


@pytest.mark.parametrize("case", RULE_CASES, ids=lambda case: case.name)
def test_rule_case(case: RuleCase) -> None:
    crd = CRDS[case.kind]
    obj = resource(case.kind, case.spec)
    problems = validate(obj, crd)
    assert [(problem.path, problem.message) for problem in problems] == case.rejected_with
    assert all(problem.kind == "cel" for problem in problems)
    schema = storage_schema(crd)
    results = [result for result in rule_results(apply_defaults(obj, schema), schema)
               if result.rule.message == case.rule]
    assert [result.error for result in results if result.error is not None] == []
    outcomes = {result.passed for result in results}
    if case.rejected_with:
        assert False in outcomes
    else:
        assert outcomes == {True}, "the rule must have been evaluated on this object, and held"


def test_every_rule_has_a_passing_and_a_failing_case() -> None:
    rules = {(kind, rule.message) for kind in KINDS for rule in schema_rules(storage_schema(CRDS[kind]))}
    passing = {(case.kind, case.rule) for case in RULE_CASES if not case.rejected_with}
    failing = {(case.kind, case.rule) for case in RULE_CASES
               if any(message == case.rule for _, message in case.rejected_with)}
    assert rules - passing == set(), "rules without a passing case"
    assert rules - failing == set(), "rules without a failing case that reports their message"
    assert {(case.kind, case.rule) for case in RULE_CASES} <= rules, "cases for rules that no longer exist"


@pytest.mark.parametrize("kind", KINDS)
def test_rule_messages_are_unique(kind: str) -> None:
    messages = [rule.message for rule in schema_rules(storage_schema(CRDS[kind]))]
    assert len(messages) == len(set(messages))


@pytest.mark.parametrize(("classifier_type", "model", "message"), [
    ("TaskRouter", "task_router", TASK_CATEGORIES),
    ("ComplexityRouter", "complexity_router", COMPLEXITY_CATEGORIES),
])
def test_builtin_category_rules_match_the_models(classifier_type: str, model: str, message: str) -> None:
    """The categories in the CEL rule and its message are exactly what the built-in model returns."""
    categories = load_head(DEFAULT_MODEL_REPOSITORY, model).route_names  # labels, then any label groups
    assert message.split(": ", 1)[1].split(", ") == categories
    every_route = policy_spec(classifier={"type": classifier_type},
                              routes=[{"category": category, "llms": ["big"]} for category in categories])
    assert validate(resource("RoutingPolicy", every_route), CRDS["RoutingPolicy"]) == []
    lowercase = policy_spec(classifier={"type": classifier_type},
                            routes=[{"category": categories[0].lower(), "llms": ["big"]}])
    assert [problem.message for problem in validate(resource("RoutingPolicy", lowercase), CRDS["RoutingPolicy"])] \
        == [message]


def test_transition_rules_see_old_self_only_on_update() -> None:
    """The evaluator's oldSelf handling (no rule of ours is a transition rule yet)."""
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"model": {
        "type": "string", "maxLength": 8,
        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "model is immutable"}]}}}}}
    crd = {"spec": {"versions": [{"storage": True, "schema": {"openAPIV3Schema": schema}}]}}
    assert validate({"spec": {"model": "a"}}, crd) == []
    assert validate({"spec": {"model": "a"}}, crd, old={"spec": {"model": "a"}}) == []
    assert validate({"spec": {"model": "b"}}, crd, old={"spec": {"model": "a"}}) == [
        Problem("spec.model", "model is immutable", "cel")]


# ---------------------------------------------------- enums, bounds, defaults


@dataclass(frozen=True)
class SchemaCase:
    name: str
    kind: str
    spec: dict[str, Any]
    path: str
    check: str
    """The JSON Schema keyword that refuses it (``duplicate``/``unknown-field`` for the API server's own checks)."""


def _routes(count: int) -> list[dict[str, Any]]:
    return [{"category": f"c{index}", "llms": ["big"]} for index in range(count)]


SCHEMA_CASES = [
    SchemaCase("apiBase missing", "DownstreamLLM", {"model": "m"}, "spec.apiBase", "required"),
    SchemaCase("empty model", "DownstreamLLM", llm_spec(model=""), "spec.model", "minLength"),
    SchemaCase("model too long", "DownstreamLLM", llm_spec(model="m" * 257), "spec.model", "maxLength"),
    SchemaCase("negative cost", "DownstreamLLM", llm_spec(cost={"inputPerMillion": -1}),
               "spec.cost.inputPerMillion", "minimum"),
    SchemaCase("context window zero", "DownstreamLLM", llm_spec(contextWindow=0), "spec.contextWindow", "minimum"),
    SchemaCase("fractional concurrency", "DownstreamLLM", llm_spec(maxConcurrency=1.5), "spec.maxConcurrency", "type"),
    SchemaCase("connect timeout zero", "DownstreamLLM", llm_spec(timeouts={"connectSeconds": 0}),
               "spec.timeouts.connectSeconds", "exclusiveMinimum"),
    SchemaCase("total timeout over two hours", "DownstreamLLM", llm_spec(timeouts={"totalSeconds": 7201}),
               "spec.timeouts.totalSeconds", "maximum"),
    SchemaCase("queue timeout negative", "DownstreamLLM", llm_spec(timeouts={"queueSeconds": -1}),
               "spec.timeouts.queueSeconds", "minimum"),
    SchemaCase("Secret name not a DNS name", "DownstreamLLM", llm_spec(apiKeySecretRef={"name": "Nvidia_Key"}),
               "spec.apiKeySecretRef.name", "pattern"),
    SchemaCase("Secret name missing", "DownstreamLLM", llm_spec(apiKeySecretRef={"key": "token"}),
               "spec.apiKeySecretRef.name", "required"),
    SchemaCase("inline API key", "DownstreamLLM", llm_spec(apiKey="nvapi-secret"), "spec.apiKey", "unknown-field"),
    SchemaCase("misspelt field", "DownstreamLLM", llm_spec(timeouts={"totalSecond": 5}),
               "spec.timeouts.totalSecond", "unknown-field"),
    SchemaCase("eleven retries", "DownstreamLLM", llm_spec(retry={"attempts": 11}), "spec.retry.attempts", "maximum"),
    SchemaCase("jitter over one", "DownstreamLLM", llm_spec(retry={"jitter": 1.5}), "spec.retry.jitter", "maximum"),
    SchemaCase("hedge at zero", "DownstreamLLM", llm_spec(hedgeAfterSeconds=0), "spec.hedgeAfterSeconds",
               "exclusiveMinimum"),
    SchemaCase("breaker without failures", "DownstreamLLM", llm_spec(circuitBreaker={"failures": 0}),
               "spec.circuitBreaker.failures", "minimum"),
    SchemaCase("breaker window zero", "DownstreamLLM", llm_spec(circuitBreaker={"windowSeconds": 0}),
               "spec.circuitBreaker.windowSeconds", "exclusiveMinimum"),
    SchemaCase("snake_case breaker field", "DownstreamLLM", llm_spec(circuitBreaker={"half_open_probes": 2}),
               "spec.circuitBreaker.half_open_probes", "unknown-field"),
    SchemaCase("weight over 100", "DownstreamLLM", llm_spec(weight=101), "spec.weight", "maximum"),
    SchemaCase("endpoint weight negative", "DownstreamLLM",
               llm_spec(endpoints=[{"apiBase": "https://b.example.com/v1", "weight": -1}]),
               "spec.endpoints[0].weight", "minimum"),
    SchemaCase("endpoint without apiBase", "DownstreamLLM", llm_spec(endpoints=[{"weight": 5}]),
               "spec.endpoints[0].apiBase", "required"),
    SchemaCase("endpoint twice", "DownstreamLLM",
               llm_spec(endpoints=[{"apiBase": "https://b.example.com/v1"}, {"apiBase": "https://b.example.com/v1",
                                                                              "weight": 5}]),
               "spec.endpoints[1]", "duplicate"),
    SchemaCase("17 endpoints", "DownstreamLLM",
               llm_spec(endpoints=[{"apiBase": f"https://e{index}.example.com/v1"} for index in range(17)]),
               "spec.endpoints", "maxItems"),
    SchemaCase("balancing in snake_case", "DownstreamLLM", llm_spec(balancing="least_outstanding"),
               "spec.balancing", "enum"),
    SchemaCase("unknown classifier type", "RoutingPolicy", policy_spec(classifier={"type": "Regex"}),
               "spec.classifier.type", "enum"),
    SchemaCase("classifier type missing", "RoutingPolicy", policy_spec(classifier={}), "spec.classifier.type",
               "required"),
    SchemaCase("model name with a slash", "RoutingPolicy",
               policy_spec(classifier={"type": "Custom", "model": "team/intent"}), "spec.classifier.model", "pattern"),
    SchemaCase("failure mode not Open or Closed", "RoutingPolicy", policy_spec(failureMode="open"),
               "spec.failureMode", "enum"),
    SchemaCase("confidence over one", "RoutingPolicy", policy_spec(minConfidence=1.5), "spec.minConfidence", "maximum"),
    SchemaCase("no routes", "RoutingPolicy", policy_spec(routes=[]), "spec.routes", "minItems"),
    SchemaCase("65 routes", "RoutingPolicy", policy_spec(classifier={"type": "Custom", "model": "m"},
                                                         routes=_routes(65)), "spec.routes", "maxItems"),
    SchemaCase("category twice", "RoutingPolicy",
               policy_spec(routes=[{"category": "Chatbot", "llms": ["a"]}, {"category": "Chatbot", "llms": ["b"]}]),
               "spec.routes[1]", "duplicate"),
    SchemaCase("route without LLMs", "RoutingPolicy", policy_spec(routes=[{"category": "Chatbot", "llms": []}]),
               "spec.routes[0].llms", "minItems"),
    SchemaCase("nine fallbacks", "RoutingPolicy",
               policy_spec(routes=[{"category": "Chatbot", "llms": [f"l{i}" for i in range(9)]}]),
               "spec.routes[0].llms", "maxItems"),
    SchemaCase("default route missing", "RoutingPolicy",
               {"classifier": {"type": "TaskRouter"}, "routes": _routes(1)}, "spec.defaultRoute", "required"),
    SchemaCase("unknown role", "RoutingPolicy",
               policy_spec(classifier=rules_classifier({**CODE_RULE, "roles": ["admin"]})),
               "spec.classifier.rules[0].roles[0]", "enum"),
    SchemaCase("role twice", "RoutingPolicy",
               policy_spec(classifier=rules_classifier({**CODE_RULE, "roles": ["user", "user"]})),
               "spec.classifier.rules[0].roles[1]", "duplicate"),
    SchemaCase("zero weight", "RoutingPolicy", policy_spec(classifier=rules_classifier({**CODE_RULE, "weight": 0})),
               "spec.classifier.rules[0].weight", "exclusiveMinimum"),
    SchemaCase("threshold over one", "RoutingPolicy", policy_spec(classifier=quality_classifier(threshold=1.2),
                                                                  routes=STRONG_WEAK),
               "spec.classifier.threshold", "maximum"),
    SchemaCase("one tier", "RoutingPolicy", policy_spec(classifier=quality_classifier(tiers=tiers(0)),
                                                        routes=tier_routes(1)), "spec.classifier.tiers", "minItems"),
    SchemaCase("nine tiers", "RoutingPolicy",
               policy_spec(classifier=quality_classifier(tiers=tiers(*[0.9 - index / 10 for index in range(8)], 0)),
                           routes=tier_routes(2)), "spec.classifier.tiers", "maxItems"),
    SchemaCase("tier named twice", "RoutingPolicy",
               policy_spec(classifier=quality_classifier(tiers=[{"name": "a", "minScore": 0.5},
                                                                {"name": "a", "minScore": 0}]),
                           routes=[{"category": "a", "llms": ["big"]}]), "spec.classifier.tiers[1]", "duplicate"),
    SchemaCase("tier without minScore", "RoutingPolicy",
               policy_spec(classifier=quality_classifier(tiers=[{"name": "a", "minScore": 0.5}, {"name": "b"}]),
                           routes=[{"category": "a", "llms": ["big"]}]),
               "spec.classifier.tiers[1].minScore", "required"),
    SchemaCase("snake_case tier field", "RoutingPolicy",
               policy_spec(classifier=quality_classifier(tiers=[{"name": "a", "minScore": 0.5},
                                                                {"name": "b", "min_score": 0, "minScore": 0}]),
                           routes=[{"category": "a", "llms": ["big"]}]),
               "spec.classifier.tiers[1].min_score", "unknown-field"),
    SchemaCase("snake_case field", "RoutingPolicy",
               policy_spec(classifier=rules_classifier({**CODE_RULE, "last_message_only": True})),
               "spec.classifier.rules[0].last_message_only", "unknown-field"),
]


@pytest.mark.parametrize("case", SCHEMA_CASES, ids=lambda case: case.name)
def test_schema_case_is_refused_at_its_field(case: SchemaCase) -> None:
    problems = validate(resource(case.kind, case.spec), CRDS[case.kind])
    assert [(problem.path, problem.kind) for problem in problems] == [(case.path, case.check)]


def test_inline_key_is_not_echoed_in_the_problem() -> None:
    [problem] = validate(resource("DownstreamLLM", llm_spec(apiKey="nvapi-secret")), CRDS["DownstreamLLM"])
    assert "nvapi-secret" not in problem.message


@pytest.mark.parametrize("kind", KINDS)
def test_name_longer_than_63_is_refused(kind: str) -> None:
    spec = llm_spec() if kind == "DownstreamLLM" else policy_spec()
    assert validate(resource(kind, spec, name="a" * 63), CRDS[kind]) == []
    problems = validate(resource(kind, spec, name="a" * 64), CRDS[kind])
    assert [(problem.path, problem.kind) for problem in problems] == [("metadata.name", "maxLength")]


def test_downstream_llm_defaults() -> None:
    obj = resource("DownstreamLLM", llm_spec(apiKeySecretRef={"name": "nvidia-api-key"}))
    spec = apply_defaults(obj, storage_schema(CRDS["DownstreamLLM"]))["spec"]
    assert spec["apiKeySecretRef"] == {"name": "nvidia-api-key", "key": "api-key"}
    assert spec["cost"] == {"inputPerMillion": 0, "outputPerMillion": 0}
    assert "timeouts" not in spec  # unset timeouts take the proxy's defaults
    assert "apiKeySecretRef" not in apply_defaults(resource("DownstreamLLM", llm_spec()),
                                                   storage_schema(CRDS["DownstreamLLM"]))["spec"]


def test_routing_policy_defaults() -> None:
    obj = resource("RoutingPolicy", policy_spec(classifier=rules_classifier({**CODE_RULE, "user": None}),
                                                routes=[{"category": "code", "llms": ["big"]}]))
    spec = apply_defaults(obj, storage_schema(CRDS["RoutingPolicy"]))["spec"]
    assert (spec["failureMode"], spec["minConfidence"], spec["default"]) == ("Open", 0, False)
    assert spec["classifier"]["rules"] == [{**CODE_RULE, "lastMessageOnly": False, "weight": 1}]
    assert validate(obj, CRDS["RoutingPolicy"]) == []


# ------------------------------------------- agreement with the proxy's contract


def _bounds(metadata: list[Any]) -> dict[str, float]:
    return {name: getattr(item, name) for item in metadata for name in ("gt", "ge", "lt", "le")
            if getattr(item, name, None) is not None}


@pytest.mark.parametrize(("crd_field", "proxy_field"), [
    ("connectSeconds", "connect"), ("firstTokenSeconds", "first_token"), ("idleSeconds", "idle"),
    ("totalSeconds", "total"), ("queueSeconds", "queue"),
])
def test_timeout_bounds_and_defaults_match_the_proxy(crd_field: str, proxy_field: str) -> None:
    timeouts = storage_schema(CRDS["DownstreamLLM"])["properties"]["spec"]["properties"]["timeouts"]
    node = timeouts["properties"][crd_field]
    bounds = _bounds(Timeouts.model_fields[proxy_field].metadata)
    lower = "gt" if node.get("exclusiveMinimum") else "ge"
    assert bounds == {lower: node["minimum"], "le": node["maximum"]}
    default = getattr(Timeouts(), proxy_field)
    assert f"(default {default:g})" in node["description"]
    defaults_in_rules = {float(value) for rule in timeouts["x-kubernetes-validations"]
                         for name, value in re.findall(r"has\(self\.(\w+)\) \? self\.\w+ : ([\d.]+)", rule["rule"])
                         if name == crd_field}
    assert defaults_in_rules <= {default}
    if crd_field != "queueSeconds":
        assert defaults_in_rules == {default}


def test_name_and_pattern_limits_match_the_proxy() -> None:
    policy = storage_schema(CRDS["RoutingPolicy"])["properties"]["spec"]["properties"]
    assert policy["classifier"]["properties"]["model"]["pattern"] == NAME_PATTERN
    llm = storage_schema(CRDS["DownstreamLLM"])["properties"]["spec"]["properties"]
    model_bounds = {type(item).__name__: item for item in LLMConfig.model_fields["model"].metadata}
    assert (llm["model"]["minLength"], llm["model"]["maxLength"]) == (model_bounds["MinLen"].min_length,
                                                                      model_bounds["MaxLen"].max_length)
    rule = policy["classifier"]["properties"]["rules"]["items"]["properties"]
    [roles] = typing.get_args(RuleMatch.model_fields["roles"].annotation)
    assert rule["roles"]["items"]["enum"] == list(typing.get_args(roles))
    assert rule["weight"]["default"] == RuleMatch.model_fields["weight"].default
    for kind in KINDS:
        name = storage_schema(CRDS[kind])["properties"]["metadata"]["properties"]["name"]
        assert name["maxLength"] == 63 and re.fullmatch(NAME_PATTERN, "a" * 63)


def _spec_node(*path: str) -> dict[str, Any]:
    node = storage_schema(CRDS["DownstreamLLM"])["properties"]["spec"]
    for part in path:
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


RESILIENCE_FIELDS = [
    (("retry", "attempts"), RetryConfig, "attempts"),
    (("retry", "backoffBaseSeconds"), RetryConfig, "backoff_base"),
    (("retry", "backoffMaxSeconds"), RetryConfig, "backoff_max"),
    (("retry", "jitter"), RetryConfig, "jitter"),
    (("retry", "retryAfterCapSeconds"), RetryConfig, "retry_after_cap"),
    (("hedgeAfterSeconds",), LLMConfig, "hedge_after"),
    (("circuitBreaker", "failures"), CircuitBreakerConfig, "failures"),
    (("circuitBreaker", "windowSeconds"), CircuitBreakerConfig, "window_seconds"),
    (("circuitBreaker", "openSeconds"), CircuitBreakerConfig, "open_seconds"),
    (("circuitBreaker", "halfOpenProbes"), CircuitBreakerConfig, "half_open_probes"),
    (("weight",), LLMConfig, "weight"),
    (("endpoints", "[]", "weight"), ReplicaConfig, "weight"),
]


@pytest.mark.parametrize(("path", "model", "proxy_field"), RESILIENCE_FIELDS,
                         ids=[".".join(path) for path, _, _ in RESILIENCE_FIELDS])
def test_resilience_bounds_and_defaults_match_the_proxy(path: tuple[str, ...], model: type[BaseModel],
                                                        proxy_field: str) -> None:
    node = _spec_node(*path)
    info = model.model_fields[proxy_field]
    metadata = list(info.metadata)
    for arg in typing.get_args(info.annotation):  # Annotated[...] | None: the bounds sit inside the union
        for item in getattr(arg, "__metadata__", ()):
            metadata += getattr(item, "metadata", [item])
    lower = "gt" if node.get("exclusiveMinimum") else "ge"
    assert _bounds(metadata) == {lower: node["minimum"], "le": node["maximum"]}
    assert node["type"] == ("integer" if info.annotation is int else "number")
    if info.default is not None:
        assert f"(default {info.default:g})" in node["description"]
    assert "default" not in node, "unset fields take the proxy's defaults"


def test_resilience_rule_defaults_and_enums_match_the_proxy() -> None:
    retry = _spec_node("retry")
    [rule] = retry["x-kubernetes-validations"]
    defaults = dict(re.findall(r"has\(self\.(\w+)\) \? self\.\w+ : ([\d.]+)", rule["rule"]))
    assert {name: float(value) for name, value in defaults.items()} == {
        "backoffBaseSeconds": RetryConfig().backoff_base, "backoffMaxSeconds": RetryConfig().backoff_max}
    spec = storage_schema(CRDS["DownstreamLLM"])["properties"]["spec"]
    weight_rule = next(rule["rule"] for rule in spec["x-kubernetes-validations"] if "weight" in rule["rule"])
    defaults = {LLMConfig.model_fields["weight"].default, ReplicaConfig.model_fields["weight"].default}
    assert {int(value) for value in re.findall(r"weight : (\d+)", weight_rule)} == defaults
    assert set(_spec_node("circuitBreaker")["properties"]) == set(CircuitBreakerConfig.model_fields) - {
        "window_seconds", "open_seconds", "half_open_probes"} | {"windowSeconds", "openSeconds", "halfOpenProbes"}
    balancing = typing.get_args(LLMConfig.model_fields["balancing"].annotation)
    assert [re.sub(r"(?<!^)([A-Z])", r"_\1", value).lower() for value in _spec_node("balancing")["enum"]] == \
        list(balancing)
    assert _spec_node("endpoints")["maxItems"] == 16
    assert _spec_node("endpoints", "[]", "apiBase")["maxLength"] == _spec_node("apiBase")["maxLength"]


def test_quality_fields_match_the_proxy() -> None:
    """Tier names of a threshold policy, and the bounds of threshold and minScore, are the proxy's."""
    classifier = storage_schema(CRDS["RoutingPolicy"])["properties"]["spec"]["properties"]["classifier"]
    spec = storage_schema(CRDS["RoutingPolicy"])["properties"]["spec"]
    quality_rule = next(rule["rule"] for rule in spec["x-kubernetes-validations"] if "'Quality'" in rule["rule"])
    assert re.findall(r"r\.category in \[(.*?)\]", quality_rule) == [f"'{STRONG_TIER}', '{WEAK_TIER}'"]
    threshold = classifier["properties"]["threshold"]
    tier = classifier["properties"]["tiers"]["items"]["properties"]
    for node, (model, proxy_field) in [(threshold, (QualityClassifierRef, "threshold")),
                                       (tier["minScore"], (QualityTier, "min_score")),
                                       (tier["name"], (QualityTier, "name"))]:
        info = model.model_fields[proxy_field]
        metadata = list(info.metadata)
        for arg in typing.get_args(info.annotation):
            for item in getattr(arg, "__metadata__", ()):
                metadata += getattr(item, "metadata", [item])
        if node["type"] == "number":
            assert _bounds(metadata) == {"ge": node["minimum"], "le": node["maximum"]}
        else:
            lengths = {type(item).__name__: item for item in metadata}
            assert (node["minLength"], node["maxLength"]) == (lengths["MinLen"].min_length,
                                                              lengths["MaxLen"].max_length)
