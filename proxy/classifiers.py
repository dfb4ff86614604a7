"""Classification behind one async interface.

A classifier receives the whole conversation (every turn, with non-string
content rendered by ``conversation``), the request headers and the ``user``
field, and returns a category with per-category confidences. The rule
classifier lives here; trained models (embedded: ``model_classifier``; Triton)
implement the same ``Classifier`` protocol.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .classifier_resources import ClassifierResources
from .config import (
    ClassifierBackend,
    ModelClassifierRef,
    PolicyConfig,
    QualityClassifierRef,
    RuleMatch,
    RulesClassifierRef,
)
from .conversation import Turn


@dataclass(frozen=True, slots=True)
class ClassifierInput:
    turns: list[Turn]
    headers: Mapping[str, str]
    user: str | None = None
    quality_threshold: float | None = None
    """A per-request threshold for ``type: quality`` policies (``router-<policy>-<threshold>``)."""


@dataclass(frozen=True, slots=True)
class Classification:
    category: str | None
    """The winning category; ``None`` when the classifier found nothing."""
    confidences: dict[str, float]
    """Category -> confidence in [0, 1]."""
    scores: dict[str, float] = field(default_factory=dict)
    """Extra per-dimension scores some classifiers return (complexity)."""
    group: str | None = None
    """The category's group, for models whose labels are grouped (``labels.json`` ``groups``, e.g.
    Banking77's 77 intents in 10 support routes): a policy may route a group instead of each label."""
    group_confidence: float = 0.0
    """The summed confidence of the group's labels."""

    @property
    def confidence(self) -> float:
        return self.confidences.get(self.category, 0.0) if self.category is not None else 0.0


class Classifier(Protocol):
    kind: str
    """Short name for metrics and decision output, e.g. ``rules``."""

    @property
    def categories(self) -> list[str]: ...

    async def classify(self, request: ClassifierInput) -> Classification: ...


class ClassifierUnavailable(Exception):
    """The classifier could not answer (backend down, deadline passed)."""


class _CompiledRule:
    __slots__ = ("category", "headers", "last_message_only", "roles", "text_pattern", "user", "weight")

    def __init__(self, rule: RuleMatch) -> None:
        self.category = rule.category
        self.weight = rule.weight
        self.roles = frozenset(rule.roles)
        self.last_message_only = rule.last_message_only
        # All keywords under one word boundary, so the regex engine can still
        # scan quickly for their first characters.
        alternatives = [r"(?<!\w)(?:" + "|".join(map(re.escape, rule.keywords)) + r")(?!\w)"] if rule.keywords else []
        alternatives += [f"(?:{pattern})" for pattern in rule.patterns]
        self.text_pattern = re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None
        self.headers = [(name.lower(), re.compile(pattern)) for name, pattern in rule.headers.items()]
        self.user = re.compile(rule.user) if rule.user is not None else None

    def matches(self, request: ClassifierInput, text_of: dict[tuple[frozenset[str], bool], str]) -> bool:
        for name, pattern in self.headers:
            value = request.headers.get(name)
            if value is None or not pattern.search(value):
                return False
        if self.user is not None and (request.user is None or not self.user.search(request.user)):
            return False
        if self.text_pattern is None:
            return True
        key = (self.roles, self.last_message_only)
        text = text_of.get(key)
        if text is None:
            text = text_of[key] = _select_text(request.turns, self.roles, self.last_message_only)
        return self.text_pattern.search(text) is not None


def _select_text(turns: list[Turn], roles: frozenset[str], last_only: bool) -> str:
    selected = [turn.text for turn in turns if not roles or turn.role in roles]
    if last_only:
        return selected[-1] if selected else ""
    return "\n".join(selected)


class RuleClassifier:
    """Weighted keyword/regex/header/user rules; confidence is a category's
    share of the total weight that matched."""

    kind = "rules"

    def __init__(self, ref: RulesClassifierRef) -> None:
        self._rules = [_CompiledRule(rule) for rule in ref.rules]
        self._categories = ref.categories()

    @property
    def categories(self) -> list[str]:
        return self._categories

    def classify_now(self, request: ClassifierInput) -> Classification:
        scores: dict[str, float] = {}
        text_of: dict[tuple[frozenset[str], bool], str] = {}
        for rule in self._rules:
            if rule.matches(request, text_of):
                scores[rule.category] = scores.get(rule.category, 0.0) + rule.weight
        if not scores:
            return Classification(None, {})
        total = sum(scores.values())
        confidences = {category: score / total for category, score in scores.items()}
        best = max(confidences, key=confidences.__getitem__)  # first rule's category wins ties
        return Classification(best, confidences)

    async def classify(self, request: ClassifierInput) -> Classification:
        return self.classify_now(request)


def build_classifier(policy: PolicyConfig, backend: ClassifierBackend,
                     resources: ClassifierResources | None = None) -> Classifier:
    """The classifier a policy references, ready to use. Raises (with a message for
    the user) when it cannot be: for a model, also when its categories do not cover
    the policy's routes, which only the model directory can tell."""
    ref = policy.classifier
    if isinstance(ref, RulesClassifierRef):
        return RuleClassifier(ref)
    if isinstance(ref, ModelClassifierRef):
        from .model_classifier import build_model_classifier  # numpy and the encoder only when used

        return build_model_classifier(policy, ref, backend, resources or ClassifierResources())
    if isinstance(ref, QualityClassifierRef):
        from .quality import build_quality_classifier

        return build_quality_classifier(policy, ref, backend, resources or ClassifierResources())
    raise ValueError(f"policy {policy.name!r}: unsupported classifier type {ref.type!r}")
