"""From a namespace's custom resources to the proxy's ``RouterConfig`` (pure: no I/O).

Every DownstreamLLM and RoutingPolicy is judged on its own: ``Accepted`` (its spec is valid and makes
sense), ``ResolvedRefs`` (what it names exists: LLMs, Secrets and keys, classifier models). The config
is built from the valid subset only, so one broken object never takes the others down:

- an LLM whose spec is invalid or whose Secret (or key) is missing is left out; policies that route to
  it are then left out too, with ``ResolvedRefs`` False naming that LLM;
- a policy whose spec is invalid, whose routes name categories its classifier never returns, whose name
  is an LLM's name, or that names a missing LLM or classifier model is left out;
- of several valid policies with ``default: true`` the oldest (then the first by name) stays the
  namespace's default; the others are left out with ``Accepted`` False naming the one that won.

With no valid policy there is no config (``Translation.config`` is None): the operator then writes
nothing, and a proxy already running keeps serving its previous config. A policy-less config would only
serve direct LLM picks, which nobody asked for, and the proxy cannot start without some config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_router.proxy.config import (
    CrossReferenceError,
    DrainSettings,
    LLMConfig,
    LocatedError,
    PolicyConfig,
    RetryConfig,
    RouterConfig,
)
from pydantic import ValidationError

from .conditions import ACCEPTED, RESOLVED_REFS, Verdict
from .model_catalog import BUILT_IN_MODELS, ModelInfo
from .names import LLM_KIND, POLICY_KIND, SECRETS_DIR, TRITON, TRITON_GRPC_PORT

DEFAULT_SECRET_KEY = "api-key"
TIMEOUT_FIELDS = {"connectSeconds": "connect", "firstTokenSeconds": "first_token", "idleSeconds": "idle",
                  "totalSeconds": "total", "queueSeconds": "queue"}
RETRY_FIELDS = {"attempts": "attempts", "backoffBaseSeconds": "backoff_base", "backoffMaxSeconds": "backoff_max",
                "jitter": "jitter", "retryAfterCapSeconds": "retry_after_cap"}
CIRCUIT_BREAKER_FIELDS = {"enabled": "enabled", "failures": "failures", "windowSeconds": "window_seconds",
                          "openSeconds": "open_seconds", "halfOpenProbes": "half_open_probes"}
ENDPOINT_FIELDS = {"apiBase": "api_base", "weight": "weight"}
BALANCING = {"LeastOutstanding": "least_outstanding", "LatencyWeighted": "latency_weighted"}
TIER_FIELDS = {"name": "name", "minScore": "min_score"}
RULE_FIELDS = {"category": "category", "keywords": "keywords", "patterns": "patterns", "roles": "roles",
               "lastMessageOnly": "last_message_only", "headers": "headers", "user": "user", "weight": "weight"}
SPEC_NAMES = {"api_base": "apiBase", "api_key": "apiKeySecretRef", "context_window": "contextWindow",
              "max_concurrency": "maxConcurrency", "input_per_million": "inputPerMillion",
              "output_per_million": "outputPerMillion", "default_route": "defaultRoute",
              "min_confidence": "minConfidence", "failure_mode": "failureMode", "last_message_only": "lastMessageOnly",
              "hedge_after": "hedgeAfterSeconds", "circuit_breaker": "circuitBreaker", "min_score": "minScore",
              **{snake: camel for camel, snake in TIMEOUT_FIELDS.items()},
              **{snake: camel for camel, snake in RETRY_FIELDS.items()},
              **{snake: camel for camel, snake in CIRCUIT_BREAKER_FIELDS.items()}}
"""Config field -> spec field, to name the spec's fields in messages."""


CLASSIFIER_TYPES = (*BUILT_IN_MODELS, "Custom", "Rules", "Quality")
MODEL_CLASSIFIERS = ("model", "quality")
"""Config classifier types that run a model of the repository (and so on Triton, in a cluster)."""


class SpecError(ValueError):
    """A spec that cannot be turned into config, with a message that says what to fix."""


@dataclass(frozen=True)
class NamespaceResources:
    """Everything a namespace's router is made from, as read from the API."""

    namespace: str
    llms: list[dict[str, Any]]
    policies: list[dict[str, Any]]
    secret_keys: dict[str, frozenset[str]]
    """Secret name -> the keys of its data (never the values)."""
    models: dict[str, ModelInfo]


@dataclass(frozen=True)
class ConfigOptions:
    """Router settings that come from the operator, not from the custom resources."""

    model_repository: str | None = None
    classifier_timeout_ms: float = 200.0
    log_prompts: bool = False
    drain: DrainSettings = field(default_factory=DrainSettings)
    client_keys_file: str | None = None
    """``router.auth.keys_file`` (auth enabled); None: no client keys."""


@dataclass
class ObjectResult:
    """The verdicts on one custom resource."""

    kind: str
    name: str
    generation: int
    accepted: Verdict
    resolved_refs: Verdict
    categories: int | None = None
    """RoutingPolicy only: its number of routes."""

    @property
    def valid(self) -> bool:
        return self.accepted.status and self.resolved_refs.status


@dataclass(frozen=True)
class Translation:
    config: RouterConfig | None
    results: dict[tuple[str, str], ObjectResult]
    """(kind, name) -> verdicts, for every object of the namespace."""
    secret_mounts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Secret name -> the keys the config reads, for the LLMs in the config."""
    served_models: dict[str, ModelInfo] = field(default_factory=dict)
    """The models Triton must serve: those of the policies in the config."""
    problem: str | None = None
    """Why there is no config, when there is none."""


def triton_grpc_address(namespace: str) -> str:
    return f"{TRITON}.{namespace}.svc:{TRITON_GRPC_PORT}"


def translate(resources: NamespaceResources, options: ConfigOptions = ConfigOptions()) -> Translation:
    results: dict[tuple[str, str], ObjectResult] = {}
    llms: dict[str, LLMConfig] = {}
    for obj in resources.llms:
        result, llm = _judge_llm(obj, resources)
        results[(LLM_KIND, result.name)] = result
        if llm is not None:
            llms[llm.name] = llm
    all_llm_names = {_name(obj) for obj in resources.llms}
    policies: dict[str, tuple[PolicyConfig, dict[str, Any]]] = {}
    for obj in resources.policies:
        result, policy = _judge_policy(obj, resources, llms, all_llm_names)
        results[(POLICY_KIND, result.name)] = result
        if policy is not None:
            policies[policy.name] = (policy, obj)
    default_policy = _settle_default(policies, results)
    if not policies:
        problem = ("no RoutingPolicy in this namespace is valid" if resources.policies
                   else "there is no RoutingPolicy in this namespace")
        return Translation(None, results, problem=problem)
    chosen = [policy for policy, _ in sorted(policies.values(), key=lambda item: item[0].name)]
    served = sorted({policy.classifier.model for policy in chosen if policy.classifier.type in MODEL_CLASSIFIERS})
    router = {
        "default_policy": default_policy,
        "log_prompts": options.log_prompts,
        "classifier_backend": {
            "triton_url": triton_grpc_address(resources.namespace) if served else None,
            "timeout_ms": options.classifier_timeout_ms,
            "model_repository": options.model_repository,
        },
        "drain": options.drain.model_dump(),
        "auth": ({"enabled": True, "keys_file": options.client_keys_file} if options.client_keys_file
                 else {"enabled": False}),
    }
    try:
        config = RouterConfig.model_validate({
            "router": router,
            "llms": [llm.model_dump(mode="json") for llm in sorted(llms.values(), key=lambda llm: llm.name)],
            "policies": [policy.model_dump(mode="json") for policy in chosen],
        })
    except ValidationError as exc:  # every check above should make this unreachable
        return Translation(None, results, problem=f"the combined config is invalid: {_messages(exc)}")
    mounts: dict[str, set[str]] = {}
    for obj in resources.llms:
        ref = _secret_ref(obj.get("spec") or {})
        if ref is not None and _name(obj) in llms:
            mounts.setdefault(ref[0], set()).add(ref[1])
    return Translation(config, results, {name: tuple(sorted(keys)) for name, keys in sorted(mounts.items())},
                       {name: resources.models[name] for name in served})


# ------------------------------------------------------------------ LLMs


def _judge_llm(obj: dict[str, Any], resources: NamespaceResources) -> tuple[ObjectResult, LLMConfig | None]:
    name, generation = _name(obj), _generation(obj)
    try:
        llm = LLMConfig.model_validate(llm_config_data(name, obj.get("spec")))
    except (SpecError, ValidationError) as exc:
        message = _messages(exc) if isinstance(exc, ValidationError) else str(exc)
        return ObjectResult(LLM_KIND, name, generation, Verdict(ACCEPTED, False, "Invalid", message),
                            Verdict(RESOLVED_REFS, False, "Invalid", "not checked: the spec is not accepted")), None
    accepted = Verdict(ACCEPTED, True, "Accepted", "the spec is valid")
    ref = _secret_ref(obj["spec"])
    resolved = Verdict(RESOLVED_REFS, True, "ResolvedRefs",
                       f"Secret {ref[0]!r} has key {ref[1]!r}" if ref else "no API key referenced")
    if ref is not None:
        keys = resources.secret_keys.get(ref[0])
        if keys is None:
            resolved = Verdict(RESOLVED_REFS, False, "SecretNotFound",
                               f"Secret {ref[0]!r} (spec.apiKeySecretRef) does not exist in namespace "
                               f"{resources.namespace!r}")
        elif ref[1] not in keys:
            resolved = Verdict(RESOLVED_REFS, False, "SecretKeyNotFound",
                               f"Secret {ref[0]!r} has no key {ref[1]!r} (spec.apiKeySecretRef.key)")
    result = ObjectResult(LLM_KIND, name, generation, accepted, resolved)
    return result, llm if result.valid else None


def llm_config_data(name: str, spec: Any) -> dict[str, Any]:
    """A DownstreamLLM spec as ``LLMConfig`` data; the API key becomes a reference to the mounted Secret file."""
    spec = _mapping(spec, "spec")
    data: dict[str, Any] = {"name": name, "api_base": spec.get("apiBase"), "model": spec.get("model")}
    ref = _secret_ref(spec)
    if ref is not None:
        data["api_key"] = {"file": f"{SECRETS_DIR}/{ref[0]}/{ref[1]}"}
    if "cost" in spec:
        cost = _mapping(spec["cost"], "spec.cost")
        data["cost"] = {"input_per_million": cost.get("inputPerMillion", 0.0),
                        "output_per_million": cost.get("outputPerMillion", 0.0)}
    if spec.get("contextWindow") is not None:
        data["context_window"] = spec["contextWindow"]
    if "timeouts" in spec:
        timeouts = _mapping(spec["timeouts"], "spec.timeouts")
        data["timeouts"] = {TIMEOUT_FIELDS[key]: value for key, value in timeouts.items() if key in TIMEOUT_FIELDS}
    if spec.get("maxConcurrency") is not None:
        data["max_concurrency"] = spec["maxConcurrency"]
    data.update(_resilience_data(spec))
    return data


def _resilience_data(spec: dict[str, Any]) -> dict[str, Any]:
    """``retry``, ``hedgeAfterSeconds``, ``circuitBreaker``, ``weight``, ``endpoints``, ``balancing`` as config
    data; unset fields stay unset (the proxy's defaults apply). Pydantic checks the bounds afterwards."""
    data: dict[str, Any] = {}
    if spec.get("retry") is not None:
        retry = _fields(spec["retry"], "spec.retry", RETRY_FIELDS)
        defaults = RetryConfig()
        base, most = retry.get("backoff_base", defaults.backoff_base), retry.get("backoff_max", defaults.backoff_max)
        if isinstance(base, int | float) and isinstance(most, int | float) and base > most:
            raise SpecError(f"spec.retry.backoffBaseSeconds must not exceed spec.retry.backoffMaxSeconds "
                            f"(defaults: base {defaults.backoff_base:g}, max {defaults.backoff_max:g})")
        data["retry"] = retry
    if spec.get("hedgeAfterSeconds") is not None:
        data["hedge_after"] = spec["hedgeAfterSeconds"]
    if spec.get("circuitBreaker") is not None:
        data["circuit_breaker"] = _fields(spec["circuitBreaker"], "spec.circuitBreaker", CIRCUIT_BREAKER_FIELDS)
    if spec.get("weight") is not None:
        data["weight"] = spec["weight"]
    if spec.get("endpoints") is not None:
        endpoints = spec["endpoints"]
        if not isinstance(endpoints, list):
            raise SpecError("spec.endpoints must be a list of {apiBase, weight}")
        data["endpoints"] = [_fields(endpoint, f"spec.endpoints[{index}]", ENDPOINT_FIELDS)
                             for index, endpoint in enumerate(endpoints)]
        seen = [str(spec.get("apiBase", "")).rstrip("/").lower()]
        for index, endpoint in enumerate(data["endpoints"]):
            base = str(endpoint.get("api_base", "")).rstrip("/").lower()
            if base in seen:  # the proxy refuses it too, but its message would quote the URLs
                raise SpecError(f"spec.endpoints[{index}].apiBase repeats spec.apiBase or an earlier endpoint")
            seen.append(base)
        weights = [data.get("weight", 100), *(endpoint.get("weight", 100) for endpoint in data["endpoints"])]
        if data["endpoints"] and all(weight == 0 for weight in weights):
            raise SpecError("spec.weight and every spec.endpoints[].weight are 0: no server would get traffic")
    if spec.get("balancing") is not None:
        if spec["balancing"] not in BALANCING:
            raise SpecError(f"spec.balancing must be one of {', '.join(BALANCING)}")
        data["balancing"] = BALANCING[spec["balancing"]]
    return data


def _fields(value: Any, where: str, names: dict[str, str]) -> dict[str, Any]:
    """A sub-object of the spec with its fields renamed to the config's; unknown fields are refused."""
    value = _mapping(value, where)
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise SpecError(f"{where} has unknown fields {unknown}; known: {', '.join(names)}")
    return {names[key]: item for key, item in value.items() if item is not None}


def _secret_ref(spec: dict[str, Any]) -> tuple[str, str] | None:
    ref = spec.get("apiKeySecretRef")
    if ref is None:
        return None
    ref = _mapping(ref, "spec.apiKeySecretRef")
    secret = ref.get("name")
    key = ref.get("key") or DEFAULT_SECRET_KEY
    if not isinstance(secret, str) or not secret or not isinstance(key, str) or "/" in key or key in (".", ".."):
        raise SpecError("spec.apiKeySecretRef needs a Secret name and, optionally, a key without '/'")
    return secret, key


# -------------------------------------------------------------- policies


def _judge_policy(obj: dict[str, Any], resources: NamespaceResources, usable_llms: dict[str, LLMConfig],
                  all_llm_names: set[str]) -> tuple[ObjectResult, PolicyConfig | None]:
    name, generation = _name(obj), _generation(obj)
    not_checked = Verdict(RESOLVED_REFS, False, "Invalid", "not checked: the spec is not accepted")
    try:
        policy = PolicyConfig.model_validate(policy_config_data(name, obj.get("spec")))
    except (SpecError, ValidationError) as exc:
        message = _messages(exc) if isinstance(exc, ValidationError) else str(exc)
        return ObjectResult(POLICY_KIND, name, generation, Verdict(ACCEPTED, False, "Invalid", message),
                            not_checked), None
    categories = len(policy.routes)
    accepted = Verdict(ACCEPTED, True, "Accepted", f"{categories} routes")
    if name in all_llm_names:
        accepted = Verdict(ACCEPTED, False, "NameConflict",
                           f"a DownstreamLLM is also named {name!r}: requests naming it would be ambiguous; "
                           "rename the policy")
    model = policy.classifier.model if policy.classifier.type in MODEL_CLASSIFIERS else None
    info = resources.models.get(model) if model else None
    if info is not None and policy.classifier.type == "quality":
        if not info.is_quality and accepted.status:
            accepted = Verdict(ACCEPTED, False, "NotAQualityModel",
                               f"classifier model {model!r} is not a quality model (policy_type {info.policy_type!r}, "
                               f"labels {list(info.categories)}); a Quality classifier needs one trained with "
                               "--policy-type quality, e.g. 'quality_router'")
    elif info is not None:
        unknown = [category for category in policy.routes if category not in info.categories]
        if unknown and accepted.status:
            accepted = Verdict(ACCEPTED, False, "UnknownCategory",
                               f"routes name categories that classifier model {model!r} never returns: {unknown}; "
                               f"its categories: {list(info.categories)}")
    missing: list[str] = []
    if model is not None and info is None:
        missing.append(f"classifier model {model!r} (not in the model repository; models there: "
                       f"{sorted(resources.models)})")
    named = list(dict.fromkeys([*(llm for route in policy.routes.values() for llm in route), *policy.default_route]))
    absent = [llm for llm in named if llm not in all_llm_names]
    unusable = [llm for llm in named if llm in all_llm_names and llm not in usable_llms]
    if absent:
        missing.append(f"DownstreamLLMs {absent} (not found in namespace {resources.namespace!r})")
    if unusable:
        missing.append(f"DownstreamLLMs {unusable} (not usable: see their Accepted and ResolvedRefs conditions)")
    if missing:
        reason = ("ClassifierModelNotFound" if model is not None and info is None
                  else "LLMNotFound" if absent else "LLMNotUsable")
        resolved = Verdict(RESOLVED_REFS, False, reason, "missing " + "; ".join(missing))
    else:
        resolved = Verdict(RESOLVED_REFS, True, "ResolvedRefs", f"all {len(named)} LLMs" +
                           (f" and classifier model {model!r}" if model else "") + " found")
    result = ObjectResult(POLICY_KIND, name, generation, accepted, resolved, categories)
    return result, policy if result.valid else None


def policy_config_data(name: str, spec: Any) -> dict[str, Any]:
    """A RoutingPolicy spec as ``PolicyConfig`` data."""
    spec = _mapping(spec, "spec")
    classifier = _mapping(spec.get("classifier"), "spec.classifier")
    kind = classifier.get("type")
    if kind != "Quality" and ("threshold" in classifier or "tiers" in classifier):
        raise SpecError(f"spec.classifier.threshold and spec.classifier.tiers are only for type Quality, not {kind}")
    if kind in BUILT_IN_MODELS or kind == "Custom":
        if "rules" in classifier:
            raise SpecError(f"spec.classifier.rules is only for type Rules, not {kind}")
        if kind == "Custom":
            if not classifier.get("model"):
                raise SpecError("spec.classifier.model is required for type Custom")
            ref: dict[str, Any] = {"type": "model", "model": classifier["model"]}
        else:
            if "model" in classifier:
                raise SpecError(f"spec.classifier.model is only for types Custom and Quality; {kind} uses "
                                f"{BUILT_IN_MODELS[kind]!r}")
            ref = {"type": "model", "model": BUILT_IN_MODELS[kind]}
    elif kind == "Rules":
        if "model" in classifier:
            raise SpecError("spec.classifier.model is only for types Custom and Quality, not Rules")
        rules = classifier.get("rules")
        if not isinstance(rules, list) or not rules:
            raise SpecError("spec.classifier.rules (at least one rule) is required for type Rules")
        ref = {"type": "rules", "rules": [_rule(rule, index) for index, rule in enumerate(rules)]}
    elif kind == "Quality":
        ref = _quality_classifier(classifier)
    else:
        raise SpecError(f"spec.classifier.type must be one of {', '.join(CLASSIFIER_TYPES)}; got {kind!r}")
    routes: dict[str, Any] = {}
    raw_routes = spec.get("routes")
    if not isinstance(raw_routes, list):
        raise SpecError("spec.routes must be a list of {category, llms}")
    for index, route in enumerate(raw_routes):
        route = _mapping(route, f"spec.routes[{index}]")
        category = route.get("category")
        if not isinstance(category, str):
            raise SpecError(f"spec.routes[{index}].category must be a string")
        if category in routes:
            raise SpecError(f"spec.routes lists category {category!r} twice")
        routes[category] = route.get("llms")
    failure_mode = spec.get("failureMode", "Open")
    if failure_mode not in ("Open", "Closed"):
        raise SpecError(f"spec.failureMode must be Open or Closed; got {failure_mode!r}")
    return {"name": name, "classifier": ref, "routes": routes, "default_route": spec.get("defaultRoute"),
            "min_confidence": spec.get("minConfidence", 0.0), "failure_mode": failure_mode.lower()}


def _quality_classifier(classifier: dict[str, Any]) -> dict[str, Any]:
    """A Quality classifier as the proxy's ``QualityClassifierRef`` data. The tiers' count, names and order
    are the proxy's checks alone; ``_messages`` names the field they blame in the spec's terms."""
    if "rules" in classifier:
        raise SpecError("spec.classifier.rules is only for type Rules, not Quality")
    if not classifier.get("model"):
        raise SpecError("spec.classifier.model is required for type Quality: name a quality model, "
                        "e.g. quality_router")
    has_threshold, has_tiers = classifier.get("threshold") is not None, classifier.get("tiers") is not None
    if has_threshold == has_tiers:
        raise SpecError("a Quality classifier needs exactly one of spec.classifier.threshold (tiers strong and "
                        "weak) and spec.classifier.tiers")
    ref: dict[str, Any] = {"type": "quality", "model": classifier["model"]}
    if has_threshold:
        ref["threshold"] = classifier["threshold"]
    else:
        tiers = classifier["tiers"]
        if not isinstance(tiers, list):
            raise SpecError("spec.classifier.tiers must be a list of {name, minScore}")
        ref["tiers"] = [_fields(tier, f"spec.classifier.tiers[{index}]", TIER_FIELDS)
                        for index, tier in enumerate(tiers)]
    return ref


def _rule(rule: Any, index: int) -> dict[str, Any]:
    rule = _mapping(rule, f"spec.classifier.rules[{index}]")
    unknown = sorted(set(rule) - set(RULE_FIELDS))
    if unknown:
        raise SpecError(f"spec.classifier.rules[{index}] has unknown fields {unknown}")
    return {RULE_FIELDS[key]: value for key, value in rule.items() if value is not None}


def _settle_default(policies: dict[str, tuple[PolicyConfig, dict[str, Any]]],
                    results: dict[tuple[str, str], ObjectResult]) -> str | None:
    """The namespace's default policy: the oldest valid one asking to be it; the others are left out."""
    claimants = sorted((_created(obj), name) for name, (_, obj) in policies.items()
                       if (obj.get("spec") or {}).get("default") is True)
    if not claimants:
        return None
    winner = claimants[0][1]
    for _, name in claimants[1:]:
        results[(POLICY_KIND, name)].accepted = Verdict(
            ACCEPTED, False, "ConflictingDefault",
            f"RoutingPolicy {winner!r} (older) is already this namespace's default; at most one policy may set "
            "default: true")
        del policies[name]
    return winner


# ----------------------------------------------------------------- helpers


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{where} must be an object")
    return value


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _generation(obj: dict[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)


def _created(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


def _messages(exc: ValidationError) -> str:
    """Pydantic's errors located by the spec's field names, without the offending values (a misplaced key
    must not reach a status message)."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, LocatedError):  # problems at paths below the model that found them
            base = tuple(error["loc"])
            for path, message in cause.problems:
                if isinstance(cause, CrossReferenceError):  # ('routes', category): the spec's routes are a list
                    path = path[:1]
                parts.append(f"{_spec_location((*base, *path))}: {message}")
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        location = _spec_location(tuple(error["loc"]))
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(dict.fromkeys(parts))


def _spec_location(loc: tuple[Any, ...]) -> str:
    """``('classifier', 'rules', 'rules', 0, 'patterns')`` -> ``spec.classifier.rules[0].patterns``: the
    union tags pydantic inserts are dropped, config names become spec names."""
    if loc[:1] == ("classifier",) and loc[1:2] in (("rules",), ("model",), ("quality",)):
        loc = (loc[0], *loc[2:])
    path = "spec"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("FileKeyRef", "EnvKeyRef") or str(part).startswith(("function-", "union[")):
            continue
        else:
            path += f".{SPEC_NAMES.get(str(part), str(part))}"
    return "" if path == "spec" else path
