"""Cost-quality metrics computed exactly as RouteLLM's evaluation computes them.

Given one score per prompt (higher: more likely to need the strong model) and
each model's quality per prompt (correctness 0/1, or a judge score):

- thresholds: the 11 edges of a 10-quantile cut of the scores (``pd.qcut(...,
  retbins=True)``: linear-interpolated quantiles at 0, 0.1, ..., 1); duplicate
  edges are kept (they add points of zero width, hence no area);
- at each threshold the prompt goes to the strong model when its score is
  ``>=`` the threshold, except at the last edge, where ``>`` is used (so the
  curve reaches 0% strong calls when the top score is unique);
- quality at a point: the mean quality of the chosen model over all prompts;
  cost: the percentage of prompts sent to the strong model;
- APGR: the trapezoidal area under quality over strong-call share, minus the
  weak model's area, over the strong minus weak areas, all over the same x range;
- CPT(x): ``np.interp(weak + x * (strong - weak), quality, strong_percentage)``
  with the points sorted by strong-call share (RouteLLM's linear interpolation,
  which assumes quality rises with the share).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POINTS = 10
"""Quantile bins: 11 thresholds."""
RANDOM_SEEDS = 50
"""Seeds averaged for the random baseline's expected metrics."""


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    strong_percentage: float
    quality: float


@dataclass(frozen=True)
class RouterMetrics:
    method: str
    apgr: float
    cpt50: float
    cpt80: float
    curve: tuple[CurvePoint, ...]


def quantile_thresholds(scores: np.ndarray, bins: int = POINTS) -> np.ndarray:
    """The ``bins + 1`` edges of an equal-frequency cut of the scores (as ``pd.qcut``'s ``retbins``)."""
    return np.quantile(np.asarray(scores, dtype=np.float64), np.linspace(0.0, 1.0, bins + 1))


def quality_curve(scores: np.ndarray, weak: np.ndarray, strong: np.ndarray,
                  bins: int = POINTS) -> list[CurvePoint]:
    """One point per quantile threshold: (threshold, % strong calls, mean quality in %)."""
    scores = np.asarray(scores, dtype=np.float64)
    weak, strong = np.asarray(weak, dtype=np.float64), np.asarray(strong, dtype=np.float64)
    if not (len(scores) == len(weak) == len(strong)) or len(scores) == 0:
        raise ValueError(f"scores, weak and strong must be equally long and non-empty; got {len(scores)}, "
                         f"{len(weak)}, {len(strong)}")
    thresholds = quantile_thresholds(scores, bins)
    points = []
    for index, threshold in enumerate(thresholds):
        to_strong = scores > threshold if index == len(thresholds) - 1 else scores >= threshold
        quality = np.where(to_strong, strong, weak)
        points.append(CurvePoint(float(threshold), float(to_strong.mean() * 100), float(quality.mean() * 100)))
    return points


def _sorted(points: list[CurvePoint]) -> tuple[np.ndarray, np.ndarray]:
    ordered = sorted(points, key=lambda point: point.strong_percentage)  # stable, as pandas' sort_values
    return (np.array([p.strong_percentage for p in ordered]), np.array([p.quality for p in ordered]))


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """The trapezoidal rule (``np.trapz``, renamed across numpy versions)."""
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def apgr(points: list[CurvePoint], weak_quality: float, strong_quality: float) -> float:
    """Average performance gap recovered: area between the curve and the weak model's level, relative to
    the area between the strong and weak levels, over the curve's own range of strong-call shares."""
    x, y = _sorted(points)
    x = x / 100
    area = _trapezoid(y, x)
    weak_area = _trapezoid(np.full_like(x, weak_quality), x)
    strong_area = _trapezoid(np.full_like(x, strong_quality), x)
    if strong_area == weak_area:
        raise ValueError("APGR is undefined: the strong and weak models have equal quality (or the curve has "
                         "no width)")
    return float((area - weak_area) / (strong_area - weak_area))


def cpt(points: list[CurvePoint], weak_quality: float, strong_quality: float, fraction: float) -> float:
    """% strong calls to reach ``weak + fraction * (strong - weak)`` quality, linearly interpolated."""
    x, y = _sorted(points)
    return float(np.interp(weak_quality + fraction * (strong_quality - weak_quality), y, x))


def router_metrics(method: str, scores: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> RouterMetrics:
    """APGR, CPT(50%) and CPT(80%) of one router's scores; qualities in percent as RouteLLM reports them."""
    points = quality_curve(scores, weak, strong)
    weak_quality = float(np.mean(weak) * 100)
    strong_quality = float(np.mean(strong) * 100)
    return RouterMetrics(method, apgr(points, weak_quality, strong_quality),
                         cpt(points, weak_quality, strong_quality, 0.5),
                         cpt(points, weak_quality, strong_quality, 0.8), tuple(points))


def random_metrics(weak: np.ndarray, strong: np.ndarray, seeds: int = RANDOM_SEEDS) -> RouterMetrics:
    """A router with uniform random scores: the mean metrics over ``seeds`` draws (and the first curve)."""
    runs = [router_metrics("random", np.random.default_rng(seed).random(len(weak)), weak, strong)
            for seed in range(seeds)]
    mean_curve = tuple(CurvePoint(runs[0].curve[i].threshold,
                                  float(np.mean([run.curve[i].strong_percentage for run in runs])),
                                  float(np.mean([run.curve[i].quality for run in runs])))
                       for i in range(len(runs[0].curve)))
    return RouterMetrics(f"random (mean of {seeds} seeds)", float(np.mean([r.apgr for r in runs])),
                         float(np.mean([r.cpt50 for r in runs])), float(np.mean([r.cpt80 for r in runs])),
                         mean_curve)


def oracle_scores(weak: np.ndarray, strong: np.ndarray, seed: int = 0) -> np.ndarray:
    """Scores of a router that knows the outcomes: strong minus weak quality, ties broken at random
    (a tie-breaker below the smallest gap, so distinct quantiles exist even for 0/1 correctness)."""
    gap = np.asarray(strong, dtype=np.float64) - np.asarray(weak, dtype=np.float64)
    distinct = np.unique(gap)
    step = float(np.min(np.diff(distinct))) if len(distinct) > 1 else 1.0
    return gap + np.random.default_rng(seed).random(len(gap)) * step * 0.5


def length_scores(prompts: list[str]) -> np.ndarray:
    """The prompt-length baseline: longer prompts go to the strong model (characters)."""
    return np.array([len(prompt) for prompt in prompts], dtype=np.float64)
