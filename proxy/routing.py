"""The routing decision: which policy, which category, which LLMs.

Plain functions over the config and the request body; the one async step is
calling the policy's classifier. Nothing here does network I/O of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .classifiers import Classification, Classifier, ClassifierInput, ClassifierUnavailable
from .config import POLICY_MODEL_PREFIX, LLMConfig, PolicyConfig, QualityClassifierRef, RouterConfig
from .conversation import Turn
from .errors import InvalidRequest, NoRoute
from .quality import ThresholdModelError, parse_threshold_model
from .request_body import ROUTER_FIELD

log = logging.getLogger(__name__)

DEFAULT_MODEL_ALIASES = frozenset({"", "router"})
"""``model`` values that mean "use the configured default policy"."""


@dataclass(frozen=True, slots=True)
class Target:
    """What the request asked for, before classification."""

    policy: PolicyConfig | None = None
    llm: LLMConfig | None = None
    """Set for a direct pick of one LLM."""
    manual_category: str | None = None
    """Set when ``nim-llm-router.routing_strategy`` is ``manual``."""
    quality_threshold: float | None = None
    """Set by a ``router-<policy>-<threshold>`` model name (``type: quality`` policies)."""


Reason = Literal["classified", "manual", "direct", "no_match", "low_confidence", "unrouted_category",
                 "classifier_failed"]


@dataclass(frozen=True, slots=True)
class RouteDecision:
    policy: str | None
    category: str | None
    confidence: float | None
    route: str
    """The route taken: a category, ``default`` or ``direct``."""
    reason: Reason
    candidates: tuple[str, ...]
    """LLM names to try, in order: the chosen one, then its fallbacks."""
    confidences: dict[str, float] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    classifier: str | None = None
    classification_seconds: float = 0.0

    @property
    def chosen(self) -> str:
        return self.candidates[0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "category": self.category,
            "confidence": self.confidence,
            "confidences": self.confidences,
            "scores": self.scores,
            "route": self.route,
            "reason": self.reason,
            "chosen_llm": self.chosen,
            "fallbacks": list(self.candidates[1:]),
            "classifier": self.classifier,
            "classification_ms": round(self.classification_seconds * 1000, 3),
        }


def select_target(body: Mapping[str, Any], config: RouterConfig) -> Target:
    """Pick the policy or LLM a (validated) request body asks for."""
    extension = body.get(ROUTER_FIELD)
    if isinstance(extension, dict) and extension.get("policy"):
        policy = _policy_or_400(config, extension["policy"], param=f"{ROUTER_FIELD}.policy")
        if (extension.get("routing_strategy") or "triton") == "manual":
            category = extension.get("model") or ""
            if category not in policy.routes:
                raise InvalidRequest(
                    f"manual routing needs '{ROUTER_FIELD}.model' to name a category of policy "
                    f"{policy.name!r}; got {category!r}, valid: {sorted(policy.routes)}",
                    param=f"{ROUTER_FIELD}.model", code="unknown_category")
            return Target(policy=policy, manual_category=category)
        return Target(policy=policy)

    model = body.get("model") or ""
    if model.startswith(POLICY_MODEL_PREFIX):
        return Target(policy=_policy_or_400(config, model[len(POLICY_MODEL_PREFIX):], param="model"))
    llm = config.llm(model)
    if llm is not None:
        return Target(llm=llm)
    threshold_target = _threshold_target(model, config)
    if threshold_target is not None:
        return threshold_target
    if model in DEFAULT_MODEL_ALIASES and config.router.default_policy is not None:
        policy = config.policy(config.router.default_policy)
        assert policy is not None  # the config validator guarantees it
        return Target(policy=policy)
    raise InvalidRequest(
        f"unknown model {model!r}; use one of: {valid_models(config)}"
        + ("" if model else " (this router has no default policy)"),
        param="model", code="model_not_found")


def _threshold_target(model: str, config: RouterConfig) -> Target | None:
    """``router-<policy>-<threshold>``: a quality policy with its top tier's threshold overridden."""
    try:
        parsed = parse_threshold_model(model)
    except ThresholdModelError as exc:
        raise InvalidRequest(str(exc), param="model", code="invalid_threshold") from None
    if parsed is None:
        return None
    policy = _policy_or_400(config, parsed.policy, param="model")
    if not isinstance(policy.classifier, QualityClassifierRef):
        raise InvalidRequest(f"model {model!r}: a threshold can only be given for a quality policy; policy "
                             f"{policy.name!r} classifies with type {policy.classifier.type!r}",
                             param="model", code="invalid_threshold")
    return Target(policy=policy, quality_threshold=parsed.threshold)


def valid_models(config: RouterConfig) -> list[str]:
    return [POLICY_MODEL_PREFIX + policy.name for policy in config.policies] + [llm.name for llm in config.llms]


def _policy_or_400(config: RouterConfig, name: str, *, param: str) -> PolicyConfig:
    policy = config.policy(name)
    if policy is None:
        raise InvalidRequest(
            f"unknown policy {name!r}; valid policies: {[p.name for p in config.policies]}",
            param=param, code="policy_not_found")
    return policy


def decide_direct(llm: LLMConfig) -> RouteDecision:
    return RouteDecision(policy=None, category=None, confidence=None, route="direct", reason="direct",
                         candidates=(llm.name,))


def decide_manual(policy: PolicyConfig, category: str) -> RouteDecision:
    return RouteDecision(policy=policy.name, category=category, confidence=1.0, route=category, reason="manual",
                         candidates=tuple(policy.routes[category]))


def decide_classified(policy: PolicyConfig, result: Classification, *, classifier: str,
                      seconds: float) -> RouteDecision:
    """Map a classification to a route, applying the confidence threshold. A category without a route
    of its own takes its group's route when the model groups its labels and the policy routes the group
    (then the group's summed confidence is what the threshold applies to)."""
    category = result.category
    confidence = result.confidence
    routed_as = category
    if category is not None and category not in policy.routes and result.group in policy.routes:
        routed_as, confidence = result.group, result.group_confidence
    if category is None:
        reason: Reason = "no_match"
    elif confidence < policy.min_confidence:
        reason = "low_confidence"
    elif routed_as not in policy.routes:
        reason = "unrouted_category"
    else:
        reason = "classified"
    route = routed_as if reason == "classified" and routed_as is not None else "default"
    candidates = policy.routes[route] if route != "default" else policy.default_route
    return RouteDecision(policy=policy.name, category=category, confidence=confidence if category else None,
                         route=route, reason=reason, candidates=tuple(candidates),
                         confidences=result.confidences, scores=result.scores, classifier=classifier,
                         classification_seconds=seconds)


def decide_classifier_failed(policy: PolicyConfig, *, classifier: str, seconds: float) -> RouteDecision:
    """``failure_mode: open`` takes the default route; ``closed`` answers 503."""
    if policy.failure_mode == "closed":
        raise NoRoute(f"policy {policy.name!r} could not classify the request and fails closed",
                      code="classifier_unavailable")
    return RouteDecision(policy=policy.name, category=None, confidence=None, route="default",
                         reason="classifier_failed", candidates=tuple(policy.default_route),
                         classifier=classifier, classification_seconds=seconds)


async def decide(target: Target, classifier: Classifier | None, turns: list[Turn],
                 headers: Mapping[str, str], user: str | None) -> RouteDecision:
    """The full decision for a target; ``classifier`` is the target policy's."""
    if target.llm is not None:
        return decide_direct(target.llm)
    policy = target.policy
    assert policy is not None and classifier is not None
    if target.manual_category is not None:
        return decide_manual(policy, target.manual_category)
    started = time.perf_counter()
    try:
        result = await classifier.classify(ClassifierInput(turns, headers, user, target.quality_threshold))
    except Exception as exc:
        # Our own ClassifierUnavailable messages name the model and the cause; anything else may carry input
        # text, so only its type is logged.
        cause = str(exc) if isinstance(exc, ClassifierUnavailable) else type(exc).__name__
        log.warning("policy %r: the %s classifier failed (%s); failure_mode %s", policy.name, classifier.kind,
                    cause, policy.failure_mode)
        return decide_classifier_failed(policy, classifier=classifier.kind, seconds=time.perf_counter() - started)
    return decide_classified(policy, result, classifier=classifier.kind, seconds=time.perf_counter() - started)
