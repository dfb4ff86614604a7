"""Cost-quality routing (policy classifier ``type: quality``): a score picks the strong or the weak tier.

A quality model is a trained head like the others (``model_classifier``), with the labels
``weak_better``, ``tie`` and ``strong_better`` (which model's answer is the better one; ``tie`` when
both are right or both wrong). Its score is the strong model's win rate with ties counted half,
``P(strong_better) + P(tie) / 2``, in [0, 1]: 0.5 means no expected gain from the strong LLM. It runs
embedded or on Triton, unchanged. This module holds the pure decisions
(score -> tier, the ``router-<policy>-<threshold>`` model names, calibration) and the classifier
that turns the head's answer into a tier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .classifier_resources import ClassifierResources
from .classifiers import Classification, Classifier, ClassifierInput
from .config import ClassifierBackend, PolicyConfig, QualityClassifierRef, QualityTier

STRONG_LABEL = "strong_better"
TIE_LABEL = "tie"
WEAK_LABEL = "weak_better"
QUALITY_LABELS = [WEAK_LABEL, TIE_LABEL, STRONG_LABEL]
"""A quality model's labels, in output order."""
SCORE_KEY = "quality_score"
THRESHOLD_KEY = "quality_threshold"
THRESHOLD_MODEL_PREFIX = "router-"
"""RouteLLM-style model names: ``router-<policy>-<threshold>``."""


class ThresholdModelError(ValueError):
    """A ``router-<policy>-<threshold>`` model name that does not parse."""


@dataclass(frozen=True, slots=True)
class ThresholdModel:
    policy: str
    threshold: float


def parse_threshold_model(model: str) -> ThresholdModel | None:
    """``router-<policy>-<threshold>`` -> its parts; ``None`` when ``model`` does not start with
    ``router-``. Policy names may contain ``-``: the threshold is what follows the last one.
    Raises ``ThresholdModelError`` for a name of that form whose threshold is not a number in [0, 1]."""
    if not model.startswith(THRESHOLD_MODEL_PREFIX):
        return None
    policy, separator, value = model[len(THRESHOLD_MODEL_PREFIX):].rpartition("-")
    if not separator or not policy:
        raise ThresholdModelError(f"model {model!r}: expected router-<policy>-<threshold>, "
                                  "e.g. router-cost_quality-0.35")
    try:
        threshold = float(value)
    except ValueError:
        raise ThresholdModelError(f"model {model!r}: threshold {value!r} is not a number; expected "
                                  "router-<policy>-<threshold> with a threshold in [0, 1]") from None
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ThresholdModelError(f"model {model!r}: threshold {value!r} is outside [0, 1]")
    return ThresholdModel(policy, threshold)


def tiers_with_threshold(tiers: Sequence[QualityTier], threshold: float | None) -> list[QualityTier]:
    """The tiers with the top tier's ``min_score`` replaced by ``threshold`` (a per-request override).
    Tiers below keep theirs: with an override under them, the top tier simply takes their prompts too."""
    if threshold is None:
        return list(tiers)
    return [QualityTier(name=tiers[0].name, min_score=threshold), *tiers[1:]]


def tier_for(score: float, tiers: Sequence[QualityTier]) -> QualityTier:
    """The first tier, strongest first, whose ``min_score`` the score reaches (the last tier otherwise)."""
    for tier in tiers:
        if score >= tier.min_score:
            return tier
    return tiers[-1]


def quality_score(confidences: dict[str, float]) -> float:
    """The strong model's win rate, ties counted half: ``P(strong_better) + P(tie) / 2``."""
    return confidences.get(STRONG_LABEL, 0.0) + 0.5 * confidences.get(TIE_LABEL, 0.0)


def quality_classification(result: Classification, tiers: Sequence[QualityTier]) -> Classification:
    """The tier decision for a quality head's answer. Its confidence is the score for the top tier
    and one minus it below (how far the win rate is on the tier's side)."""
    score = quality_score(result.confidences)
    tier = tier_for(score, tiers)
    confidence = score if tier.name == tiers[0].name else 1.0 - score
    return Classification(tier.name, {**result.confidences, tier.name: confidence},
                          {SCORE_KEY: score, THRESHOLD_KEY: tiers[0].min_score})


def calibrate_threshold(scores: Sequence[float] | np.ndarray, strong_share: float) -> float:
    """The threshold that sends ``strong_share`` of these reference scores to the strong tier, as
    RouteLLM calibrates: the ``1 - strong_share`` quantile (linear interpolation) of the scores."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        raise ValueError("calibration needs at least one reference score")
    if not (0.0 <= strong_share <= 1.0):
        raise ValueError(f"the strong share must be in [0, 1], got {strong_share}")
    return float(np.quantile(values, 1.0 - strong_share))


class QualityClassifier:
    """The ``Classifier`` protocol for ``type: quality``: the head (embedded or Triton) gives the score,
    the tiers (or the request's threshold override) give the category."""

    def __init__(self, inner: Classifier, ref: QualityClassifierRef) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.tiers = ref.resolved_tiers

    @property
    def categories(self) -> list[str]:
        return [tier.name for tier in self.tiers]

    async def classify(self, request: ClassifierInput) -> Classification:
        result = await self.inner.classify(request)
        return quality_classification(result, tiers_with_threshold(self.tiers, request.quality_threshold))


def build_quality_classifier(policy: PolicyConfig, ref: QualityClassifierRef, backend: ClassifierBackend,
                             resources: ClassifierResources) -> Classifier:
    """The classifier of a ``type: quality`` policy, after checking that the model is a quality model."""
    from .model_classifier import ModelError, head_classifier, load_head, resolve_repository

    head = load_head(resolve_repository(backend.model_repository), ref.model)
    if STRONG_LABEL not in head.labels:
        raise ModelError(f"policy {policy.name!r}: model {ref.model!r} is not a quality model (its labels "
                         f"{head.labels} lack {STRONG_LABEL!r}; train one with --policy-type quality)")
    return QualityClassifier(head_classifier(head, backend, resources), ref)
