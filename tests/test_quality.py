"""Cost-quality routing: RouteLLM's metrics on hand-computed cases, the baselines on the RouteLLM
data, the pure decisions (tiers, threshold model names, calibration) and the config's validation."""

from __future__ import annotations

import numpy as np
import pytest
from llm_router.proxy.classifiers import Classification
from llm_router.proxy.config import QualityClassifierRef, QualityTier, RouterConfig, tier_list_problem
from llm_router.proxy.config_file import ConfigError, parse_config
from llm_router.proxy.quality import (
    STRONG_LABEL,
    TIE_LABEL,
    WEAK_LABEL,
    ThresholdModelError,
    calibrate_threshold,
    parse_threshold_model,
    quality_classification,
    quality_score,
    tier_for,
    tiers_with_threshold,
)
from llm_router.training.quality_metrics import (
    apgr,
    cpt,
    length_scores,
    oracle_scores,
    quality_curve,
    random_metrics,
    router_metrics,
)
from llm_router.training.routellm import DEFAULT_DATA_DIR, in_test_split, load_outcomes

needs_data = pytest.mark.skipif(not (DEFAULT_DATA_DIR / "mmlu").is_dir(), reason="no ../shared/data/routellm")


# ----------------------------------------------------------------------------- metrics, by hand


def test_curve_apgr_and_cpt_on_a_hand_computed_case() -> None:
    # Scores 0.9, 0.7, 0.3, 0.1; weak right on prompts 2 and 3 of 4 (50%), strong on 1, 2, 4 (75%).
    scores = np.array([0.9, 0.7, 0.3, 0.1])
    weak, strong = np.array([0, 1, 1, 0]), np.array([1, 1, 0, 1])
    points = quality_curve(scores, weak, strong, bins=2)  # thresholds: quantiles 0, .5, 1 = 0.1, 0.5, 0.9
    assert [p.threshold for p in points] == pytest.approx([0.1, 0.5, 0.9])
    # >= 0.1: all strong (75%); >= 0.5: prompts 1, 2 strong -> right on 1, 2, 3 (75%);
    # the last edge is strict (> 0.9): nobody strong -> the weak model's 50%.
    assert [(p.strong_percentage, p.quality) for p in points] == [(100.0, 75.0), (50.0, 75.0), (0.0, 50.0)]
    # Area over x in [0, 1]: 0.5 * (50 + 75) / 2 + 0.5 * (75 + 75) / 2 = 68.75; weak 50, strong 75.
    assert apgr(points, 50.0, 75.0) == pytest.approx((68.75 - 50) / (75 - 50))
    # 50% of the gap is 62.5: halfway from (0, 50) to (50, 75) -> 25% strong calls; 80% (70) -> 40%.
    assert cpt(points, 50.0, 75.0, 0.5) == pytest.approx(25.0)
    assert cpt(points, 50.0, 75.0, 0.8) == pytest.approx(40.0)


def test_a_router_that_ranks_perfectly_and_one_that_ranks_backwards() -> None:
    weak = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0] * 3)
    strong = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0] * 3)
    gain = strong - weak
    best = router_metrics("best", gain + np.linspace(0, 0.1, len(gain)), weak, strong)
    worst = router_metrics("worst", -gain + np.linspace(0, 0.1, len(gain)), weak, strong)
    assert best.apgr > 0.7 > 0.3 > worst.apgr
    assert best.cpt50 < 50 < worst.cpt50


def test_equal_models_have_no_apgr() -> None:
    same = np.array([1, 0, 1, 0])
    with pytest.raises(ValueError, match="undefined"):
        router_metrics("x", np.array([0.1, 0.2, 0.3, 0.4]), same, same)


def test_length_baseline_scores_longer_prompts_higher() -> None:
    assert list(length_scores(["ab", "abcd", ""])) == [2.0, 4.0, 0.0]


@needs_data
def test_random_lands_near_half_and_the_oracle_above_one_on_mmlu_test() -> None:
    rows = load_outcomes("mmlu", "test")
    weak = np.array([r.weak for r in rows], dtype=float)
    strong = np.array([r.strong for r in rows], dtype=float)
    random = random_metrics(weak, strong)
    assert random.apgr == pytest.approx(0.5, abs=0.03)
    assert random.cpt50 == pytest.approx(50, abs=4)
    assert router_metrics("oracle", oracle_scores(weak, strong), weak, strong).apgr > 1.0


@needs_data
def test_the_split_rule_and_decontamination() -> None:
    test_rows = load_outcomes("gsm8k", "test")
    train_rows = load_outcomes("gsm8k", "train")
    assert all(in_test_split(r.prompt) for r in test_rows)
    assert not any(in_test_split(r.prompt) for r in train_rows)
    assert 0.15 < len(test_rows) / (len(test_rows) + len(train_rows)) < 0.25
    everything = {r.prompt for r in load_outcomes("gsm8k", "all")}
    assert len(everything) < 1319  # the contaminated prompts are gone
    assert {r.prompt for r in test_rows} | {r.prompt for r in train_rows} == everything


# ----------------------------------------------------------------------------- pure decisions


TWO = [QualityTier(name="strong", min_score=0.6), QualityTier(name="weak", min_score=0.0)]
THREE = [QualityTier(name="frontier", min_score=0.7), QualityTier(name="mid", min_score=0.5),
         QualityTier(name="small", min_score=0.0)]


@pytest.mark.parametrize(("score", "tiers", "expected"), [
    (0.6, TWO, "strong"), (0.59, TWO, "weak"), (0.0, TWO, "weak"), (1.0, TWO, "strong"),
    (0.75, THREE, "frontier"), (0.7, THREE, "frontier"), (0.6, THREE, "mid"), (0.49, THREE, "small"),
])
def test_the_first_tier_whose_min_score_is_reached(score: float, tiers: list[QualityTier], expected: str) -> None:
    assert tier_for(score, tiers).name == expected


def test_a_threshold_override_moves_only_the_top_tier() -> None:
    assert tier_for(0.55, tiers_with_threshold(THREE, 0.55)).name == "frontier"
    assert tier_for(0.45, tiers_with_threshold(THREE, 0.4)).name == "frontier"  # below mid's 0.5: top takes it
    assert tier_for(0.45, tiers_with_threshold(THREE, 0.9)).name == "small"
    assert tiers_with_threshold(THREE, None) == THREE


def test_the_score_is_the_strong_win_rate_with_ties_half() -> None:
    assert quality_score({WEAK_LABEL: 0.2, TIE_LABEL: 0.5, STRONG_LABEL: 0.3}) == pytest.approx(0.55)
    decided = quality_classification(Classification("tie", {WEAK_LABEL: 0.2, TIE_LABEL: 0.5, STRONG_LABEL: 0.3}),
                                     TWO)
    assert decided.category == "weak"
    assert decided.confidence == pytest.approx(0.45)
    assert decided.scores == {"quality_score": pytest.approx(0.55), "quality_threshold": 0.6}


@pytest.mark.parametrize(("model", "policy", "threshold"), [
    ("router-cost_quality-0.11593", "cost_quality", 0.11593),
    ("router-my-policy-1", "my-policy", 1.0),
    ("router-q-0", "q", 0.0),
])
def test_routellm_model_names(model: str, policy: str, threshold: float) -> None:
    parsed = parse_threshold_model(model)
    assert parsed is not None and (parsed.policy, parsed.threshold) == (policy, threshold)


@pytest.mark.parametrize(("model", "message"), [
    ("router-q-1.5", "outside"), ("router-q-2e0", "outside"), ("router-q-nan", "outside"),
    ("router-q-high", "not a number"), ("router-0.5", "expected router-<policy>-<threshold>"),
    ("router-", "expected"),
])
def test_bad_routellm_model_names_say_what_is_wrong(model: str, message: str) -> None:
    with pytest.raises(ThresholdModelError, match=message):
        parse_threshold_model(model)


def test_other_model_names_are_not_threshold_names() -> None:
    assert parse_threshold_model("router:cost_quality") is None
    assert parse_threshold_model("gpt-4") is None


def test_calibration_takes_the_quantile_that_sends_the_share() -> None:
    scores = np.linspace(0, 1, 101)
    threshold = calibrate_threshold(scores, 0.3)
    assert threshold == pytest.approx(0.7)
    assert np.mean(scores >= threshold) == pytest.approx(0.31, abs=0.011)
    assert calibrate_threshold(scores, 1.0) == 0.0
    with pytest.raises(ValueError, match="share"):
        calibrate_threshold(scores, 1.5)
    with pytest.raises(ValueError, match="at least one"):
        calibrate_threshold([], 0.3)


# ----------------------------------------------------------------------------- config


def quality_config(classifier: dict, routes: dict | None = None) -> dict:
    return {"llms": [{"name": "strong", "api_base": "http://127.0.0.1:1/v1", "model": "s"},
                     {"name": "weak", "api_base": "http://127.0.0.1:2/v1", "model": "w"}],
            "policies": [{"name": "cq", "classifier": {"type": "quality", "model": "quality_router", **classifier},
                          "routes": routes or {"strong": ["strong", "weak"], "weak": ["weak"]},
                          "default_route": ["weak"]}]}


def test_threshold_stands_for_strong_and_weak_tiers() -> None:
    config = RouterConfig.model_validate(quality_config({"threshold": 0.42}))
    ref = config.policies[0].classifier
    assert isinstance(ref, QualityClassifierRef)
    assert ref.resolved_tiers == [QualityTier(name="strong", min_score=0.42), QualityTier(name="weak", min_score=0)]


@pytest.mark.parametrize(("classifier", "message"), [
    ({}, "exactly one of threshold"),
    ({"threshold": 0.5, "tiers": [{"name": "a", "min_score": 0.5}, {"name": "b", "min_score": 0}]},
     "exactly one of threshold"),
    ({"threshold": 1.5}, "threshold"),
    ({"tiers": [{"name": "a", "min_score": 0.4}, {"name": "b", "min_score": 0.5}, {"name": "c", "min_score": 0}]},
     "strictly descend"),
    ({"tiers": [{"name": "a", "min_score": 0.5}, {"name": "b", "min_score": 0.1}]}, "last tier's score must be 0"),
    ({"tiers": [{"name": "a", "min_score": 0.5}, {"name": "a", "min_score": 0}]}, "distinct"),
    ({"tiers": [{"name": "a", "min_score": 0}]}, "at least two"),
])
def test_bad_tiers_are_refused_naming_the_field(classifier: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        RouterConfig.model_validate(quality_config(classifier))
    assert "classifier" in str(caught.value)


def tiers(*entries: tuple[str, float]) -> list[QualityTier]:
    return [QualityTier(name=name, min_score=score) for name, score in entries]


TIER_LISTS = [
    # name, tiers, the first broken rule: (path below the classifier, message) or None
    ("strong and weak", tiers(("strong", 0.5), ("weak", 0)), None),
    ("three descending", tiers(("a", 0.8), ("b", 0.3), ("c", 0)), None),
    ("one tier", tiers(("a", 0)), (("tiers",), "at least two tiers are needed (a strong and a weak one), got 1")),
    ("a name twice", tiers(("a", 0.8), ("b", 0.3), ("a", 0)),
     (("tiers", 2, "name"), "tier names must be distinct, got ['a', 'b', 'a']")),
    ("equal scores", tiers(("a", 0.5), ("b", 0.5), ("c", 0)),
     (("tiers", 1, "min_score"), "tier scores must strictly descend from the strongest tier, got [0.5, 0.5, 0.0]")),
    ("third rises", tiers(("a", 0.8), ("b", 0.2), ("c", 0.4), ("d", 0)),
     (("tiers", 2, "min_score"),
      "tier scores must strictly descend from the strongest tier, got [0.8, 0.2, 0.4, 0.0]")),
    ("last above zero", tiers(("a", 0.8), ("b", 0.1)),
     (("tiers", 1, "min_score"), "the last tier's score must be 0 (it takes every other prompt), got 0.1")),
]


@pytest.mark.parametrize(("name", "tier_list", "expected"), TIER_LISTS, ids=[case[0] for case in TIER_LISTS])
def test_tier_list_problem_blames_one_field(name: str, tier_list: list[QualityTier], expected: tuple | None) -> None:
    assert tier_list_problem(tier_list) == expected


def test_a_config_file_names_the_tier_field_and_its_line() -> None:
    text = """\
llms:
  - {name: strong, api_base: "http://127.0.0.1:1/v1", model: s}
  - {name: weak, api_base: "http://127.0.0.1:2/v1", model: w}
policies:
  - name: cq
    classifier:
      type: quality
      model: quality_router
      tiers:
        - {name: strong, min_score: 0.5}
        - {name: weak, min_score: 0.1}
    routes: {strong: [strong], weak: [weak]}
    default_route: [weak]
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert [str(issue) for issue in caught.value.issues] == [
        "line 11: policies[0].classifier.tiers[1].min_score: the last tier's score must be 0 (it takes every other "
        "prompt), got 0.1"]


def test_routes_must_name_tiers() -> None:
    with pytest.raises(ValueError, match="never returned by the classifier"):
        RouterConfig.model_validate(quality_config({"threshold": 0.5}, routes={"premium": ["strong"]}))
