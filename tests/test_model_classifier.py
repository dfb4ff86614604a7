"""Trained-model classifiers run embedded: the head math, the model directory checks, the
micro-batching runtime, and a policy routed end to end through the router with the openai client."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import llm
from conftest_models import ANCHORS, write_head
from llm_router.proxy.active_config import ActiveConfig
from llm_router.proxy.app import STATE
from llm_router.proxy.classifiers import ClassifierInput, ClassifierUnavailable
from llm_router.proxy.config import RouterConfig
from llm_router.proxy.config_file import ConfigError
from llm_router.proxy.conversation import Turn
from llm_router.proxy.encoder import SentenceEncoder
from llm_router.proxy.model_classifier import (
    NVIDIA_COMPLEXITY_WEIGHTS,
    OVERALL,
    EmbeddedRuntime,
    ModelClassifier,
    ModelError,
    classify_embeddings,
    head_input,
    load_head,
)
from openai import AsyncOpenAI

PROMPTS = {
    "code": "Implement binary search in Java and explain its complexity.",
    "summary": "Give me a short summary of this news story about the election.",
    "poem": "Compose a sonnet about autumn leaves falling.",
}


def anchor_policy(**extra: Any) -> dict[str, Any]:
    return {"name": "anchored", "classifier": {"type": "model", "model": "anchors"},
            "routes": {"code": ["strong"], "summary": ["fast"], "poem": ["fast", "strong"]},
            "default_route": ["fast"], **extra}


def model_config(repository: Path, *, policy: dict[str, Any] | None = None, backend: dict[str, Any] | None = None,
                 llms: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "router": {"default_policy": "anchored",
                   "classifier_backend": {"model_repository": str(repository), "timeout_ms": 30_000,
                                          **(backend or {})}},
        "llms": llms or [{"name": name, "api_base": f"http://{name}.invalid/v1", "model": name}
                         for name in ("fast", "strong")],
        "policies": [policy or anchor_policy()],
    }


def build(config: dict[str, Any]) -> ActiveConfig:
    return ActiveConfig.build(RouterConfig.model_validate(config))


def user(text: str) -> ClassifierInput:
    return ClassifierInput([Turn("user", text)], {})


# ------------------------------------------------------------- head math


def test_softmax_head_picks_the_nearest_anchor(anchor_repository: Path,
                                               session_encoder: SentenceEncoder) -> None:
    head = load_head(anchor_repository, "anchors")
    results = classify_embeddings(head, session_encoder.encode(list(PROMPTS.values())), list(PROMPTS.values()))
    assert [result.category for result in results] == list(PROMPTS)
    for result in results:
        assert set(result.confidences) == set(ANCHORS)
        assert sum(result.confidences.values()) == pytest.approx(1.0, abs=1e-5)
        assert result.confidence == max(result.confidences.values())
        assert result.scores == {}


def test_complexity_scores_and_nvidia_weighted_overall(tmp_path: Path) -> None:
    dim, names = 4, list(NVIDIA_COMPLEXITY_WEIGHTS)
    rng = np.random.default_rng(0)
    score_weight = rng.normal(size=(len(names), dim))
    write_head(tmp_path, "complexity", np.eye(2, dim), np.zeros(2), ["low", "high"], policy_type="complexity",
               score_names=names, score_weight=score_weight, score_bias=np.zeros(len(names)))
    head = load_head(tmp_path, "complexity")
    embedding = np.array([0.1, 0.9, 0.3, -0.2], np.float32)
    (result,) = classify_embeddings(head, embedding, ["unused: no lexicon"])
    assert result.category == "high"
    expected = {name: 1 / (1 + np.exp(-(score_weight[index] @ embedding))) for index, name in enumerate(names)}
    for name, value in expected.items():
        assert result.scores[name] == pytest.approx(value, rel=1e-5)
    assert result.scores[OVERALL] == pytest.approx(
        sum(NVIDIA_COMPLEXITY_WEIGHTS[name] * value for name, value in expected.items()), rel=1e-5)


def test_explicit_score_weights_and_unknown_below_threshold(tmp_path: Path) -> None:
    write_head(tmp_path, "m", np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(2), ["a", "b"],
               unknown_label="Unknown", unknown_threshold=0.9,
               score_names=["x", "y"], score_weight=np.zeros((2, 2)), score_bias=np.zeros(2),
               score_weights={"x": 0.75, "y": 0.25})
    head = load_head(tmp_path, "m")
    assert head.categories == ["a", "b", "Unknown"]
    sure, unsure = classify_embeddings(head, np.array([[10.0, 0.0], [0.1, 0.0]], np.float32), ["a", "b"])
    assert sure.category == "a"
    assert unsure.category == "Unknown"
    assert unsure.confidence == pytest.approx(1 - unsure.confidences["a"])
    assert sure.scores == {"x": 0.5, "y": 0.5, OVERALL: pytest.approx(0.5)}


LONG_PROMPT = ("Summarize the following report for the board. " + "Revenue grew in every region this quarter. " * 12
               + "Keep it to three bullet points.")


def write_lexicon_head(repository: Path) -> Path:
    """Two views (768 inputs) and a 3-term lexicon on the lead view: weight (2, 771)."""
    from llm_router.proxy.head_inputs import Lexicon

    rng = np.random.default_rng(1)
    weight = rng.normal(size=(2, 768 + 3))
    directory = write_head(repository, "lexical", weight, np.zeros(2), ["short", "long"], views=["full", "lead"],
                           encoder_variant="fp32")
    Lexicon("lead", {"board": 0, "points": 1, "summarize": 2}, np.array([1.0, 2.0, 1.5], np.float32)).write(directory)
    return directory


def test_head_input_is_the_view_embeddings_then_the_lexical_vector(tmp_path: Path,
                                                                  session_encoder: SentenceEncoder) -> None:
    write_lexicon_head(tmp_path)
    head = load_head(tmp_path, "lexical")
    assert head.views == ("full", "lead") and head.embedding_dim == 768 and head.lexicon is not None
    parts = head.encoder_texts(LONG_PROMPT)
    assert parts[0] == LONG_PROMPT and parts[1].startswith("Summarize the following") and "..." in parts[1]
    embeddings = session_encoder.encode(parts).reshape(1, 768)
    x = head_input(head, embeddings, [LONG_PROMPT])
    np.testing.assert_array_equal(x[0, :768], embeddings[0])
    np.testing.assert_array_equal(x[:, 768:], head.lexicon.vectors([LONG_PROMPT]))
    assert (x[0, 768:] > 0).all()  # "summarize", "board" and "points" are all in the lead view
    with pytest.raises(ValueError, match="expected embeddings of shape"):
        head_input(head, embeddings[:, :384], [LONG_PROMPT])


async def test_the_embedded_classifier_feeds_every_view_and_the_lexicon(tmp_path: Path,
                                                                       session_encoder: SentenceEncoder) -> None:
    write_lexicon_head(tmp_path)
    head = load_head(tmp_path, "lexical")
    runtime = EmbeddedRuntime(lambda: session_encoder)
    try:
        result = await ModelClassifier(head, runtime).classify(user(LONG_PROMPT))
    finally:
        await runtime.aclose()
    (expected,) = classify_embeddings(head, session_encoder.encode(head.encoder_texts(LONG_PROMPT)).reshape(1, -1),
                                      [LONG_PROMPT])
    assert result.category == expected.category
    for label, value in expected.confidences.items():
        assert result.confidences[label] == pytest.approx(value, abs=1e-5)


def test_a_lexicon_wider_than_the_weights_is_refused(tmp_path: Path) -> None:
    from llm_router.proxy.head_inputs import Lexicon

    directory = write_head(tmp_path, "m", np.eye(2, 3), np.zeros(2), ["a", "b"])
    Lexicon("lead", {"aa": 0, "bb": 1, "cc": 2}, np.ones(3, np.float32)).write(directory)
    with pytest.raises(ModelError, match="not more than the 3 lexicon terms"):
        load_head(tmp_path, "m")


def test_the_latest_version_directory_wins(tmp_path: Path) -> None:
    write_head(tmp_path, "m", np.eye(2), np.zeros(2), ["old1", "old2"], version=1)
    write_head(tmp_path, "m", np.eye(2), np.zeros(2), ["new1", "new2"], version=2)
    assert load_head(tmp_path, "m").labels == ["new1", "new2"]


@pytest.mark.parametrize(("arrays", "meta", "message"), [
    ({"weight": np.eye(3, 4), "bias": np.zeros(3)}, {"labels": ["a", "b"]}, "C = 2 labels"),
    ({"weight": np.eye(2, 4), "bias": np.zeros(2)}, {"labels": ["a", "a"]}, "duplicate labels"),
    ({"weight": np.eye(2, 4), "bias": np.zeros(2)}, {"labels": []}, "non-empty list"),
    ({"weight": np.eye(2, 4), "bias": np.zeros(2)}, {"labels": ["a", "b"], "encoder": "bge-small"}, "bge-small"),
    ({"weight": np.eye(2, 4), "bias": np.zeros(2)}, {"labels": ["a", "b"], "score_names": ["x"]}, "score_weight"),
    ({"weight": np.eye(2, 4), "bias": np.zeros(2), "score_weight": np.zeros((1, 4)), "score_bias": np.zeros(1)},
     {"labels": ["a", "b"], "score_names": ["x"], "score_weights": {"z": 1}}, "'z'"),
    ({"weight": np.eye(2, 4), "bias": np.zeros(2)}, {"labels": ["a", "b"], "views": ["middle"]}, "distinct views"),
    ({"weight": np.eye(2, 4), "bias": np.zeros(2)}, {"labels": ["a", "b"], "views": ["lead", "lead"]},
     "distinct views"),
    ({"weight": np.eye(2, 4), "bias": np.zeros(2)}, {"labels": ["a", "b"], "encoder_variant": "fp16"}, "fp16"),
])
def test_malformed_model_directories_are_refused(tmp_path: Path, arrays: dict[str, Any], meta: dict[str, Any],
                                                 message: str) -> None:
    import json

    directory = tmp_path / "m" / "1"
    directory.mkdir(parents=True)
    np.savez(directory / "head.npz", **arrays)
    (directory / "labels.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=message):
        load_head(tmp_path, "m")


# ------------------------------------------------------------ config checks


def test_routes_not_covered_by_the_model_are_refused_naming_its_categories(anchor_repository: Path,
                                                                           encoder_env: Path) -> None:
    policy = anchor_policy(routes={"code": ["strong"], "Brainstorming": ["fast"]})
    with pytest.raises(ConfigError) as caught:
        build(model_config(anchor_repository, policy=policy))
    message = caught.value.describe()
    assert "policies.anchored.classifier" in message
    assert "['Brainstorming']" in message
    assert "['code', 'summary', 'poem']" in message


def test_an_unknown_model_names_the_models_there(anchor_repository: Path, encoder_env: Path) -> None:
    policy = anchor_policy(classifier={"type": "model", "model": "nope"})
    with pytest.raises(ConfigError, match=r"no model 'nope'.*\['anchors'\]"):
        build(model_config(anchor_repository, policy=policy))


def test_the_int8_encoder_must_be_built_to_be_chosen(anchor_repository: Path, encoder_cache: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An fp32-only build (``models build --fp32-only``) cannot serve an int8 head."""
    import json
    import shutil

    fp32_only = tmp_path / "encoders" / "all-MiniLM-L6-v2"
    shutil.copytree(encoder_cache / "encoders" / "all-MiniLM-L6-v2", fp32_only,
                    ignore=shutil.ignore_patterns("*.int8.onnx"))
    info = json.loads((fp32_only / "encoder.json").read_text())
    del info["variants"]["int8"]
    (fp32_only / "encoder.json").write_text(json.dumps(info))
    monkeypatch.setenv("LLM_ROUTER_CACHE", str(tmp_path))
    build(model_config(anchor_repository))  # the anchors head is fp32: fine
    with pytest.raises(ConfigError, match=r"int8 variant .* not built.*run `llm-router models build`"):
        build(model_config(anchor_repository, backend={"encoder_variant": "int8"}))


def test_a_missing_encoder_is_a_config_error_naming_the_build_command(anchor_repository: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_ROUTER_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match="llm-router models build"):
        build(model_config(anchor_repository))


def test_the_default_repository_is_triton_models_in_the_source_tree() -> None:
    from llm_router.proxy.model_classifier import DEFAULT_MODEL_REPOSITORY, resolve_repository

    assert resolve_repository(None) == DEFAULT_MODEL_REPOSITORY
    assert DEFAULT_MODEL_REPOSITORY.name == "triton_models"
    assert (DEFAULT_MODEL_REPOSITORY.parent / "proxy" / "model_classifier.py").is_file()


# ---------------------------------------------------------------- runtime


class CountingEncoder:
    """The real encoder, recording the size of every batch it was given and the thread it ran on."""

    def __init__(self, encoder: SentenceEncoder, delay: float = 0.0) -> None:
        self.encoder = encoder
        self.delay = delay
        self.batches: list[int] = []
        self.threads: set[int] = set()

    def encode(self, texts: list[str]) -> np.ndarray:
        self.batches.append(len(texts))
        self.threads.add(threading.get_ident())
        if self.delay:
            time.sleep(self.delay)
        return self.encoder.encode(texts)


def many_prompts(count: int) -> list[str]:
    subjects = ["a linked list", "the French revolution", "a cat", "interest rates", "the moon", "TCP"]
    forms = ["Write Python code for {}.", "Summarize an article about {}.", "Write a poem about {}."]
    return [forms[index % 3].format(subjects[index % len(subjects)]) + f" ({index})" for index in range(count)]


async def test_concurrent_requests_are_batched_and_match_one_by_one(session_encoder: SentenceEncoder) -> None:
    counting = CountingEncoder(session_encoder, delay=0.02)
    runtime = EmbeddedRuntime(lambda: counting, max_batch=8)  # type: ignore[arg-type, return-value]
    prompts = many_prompts(40)
    try:
        together = await asyncio.gather(*(runtime.embed(text) for text in prompts))
    finally:
        await runtime.aclose()
    assert sum(counting.batches) == len(prompts) == runtime.items
    assert len(counting.batches) == runtime.batches < len(prompts) / 3
    assert max(counting.batches) == 8
    assert counting.threads.isdisjoint({threading.get_ident()})  # never on the event loop's thread
    alone = session_encoder.encode(prompts[:1])
    assert np.allclose(together[0], alone[0], atol=1e-5)
    one_by_one = np.concatenate([session_encoder.encode([text]) for text in prompts])
    assert np.allclose(np.stack(together), one_by_one, atol=1e-5)


async def test_a_lone_request_runs_at_once(session_encoder: SentenceEncoder) -> None:
    counting = CountingEncoder(session_encoder)
    runtime = EmbeddedRuntime(lambda: counting)  # type: ignore[arg-type, return-value]
    await runtime.warm_up()
    try:
        for text in many_prompts(3):
            await runtime.embed(text)
    finally:
        await runtime.aclose()
    assert counting.batches == [1, 1, 1]


async def test_the_event_loop_stays_responsive_while_classifying(anchor_repository: Path,
                                                                 session_encoder: SentenceEncoder) -> None:
    runtime = EmbeddedRuntime(lambda: session_encoder, max_batch=4)
    classifier = ModelClassifier(load_head(anchor_repository, "anchors"), runtime)
    await runtime.warm_up()
    long_prompt = "Summarize this report on supply chains and inflation in Europe. " * 30  # > 256 tokens
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    try:
        results = await asyncio.gather(*(classifier.classify(user(long_prompt)) for _ in range(16)))
    finally:
        done.set()
        await tick
        await runtime.aclose()
    busy = time.perf_counter() - started
    assert {result.category for result in results} == {"summary"}
    assert busy > 0.2  # the encoder really worked for a while...
    assert max(gaps) < 0.1  # ...while the loop kept ticking every few milliseconds
    assert len(gaps) > busy / 0.02


async def test_a_deadline_turns_into_classifier_unavailable(anchor_repository: Path,
                                                            session_encoder: SentenceEncoder) -> None:
    runtime = EmbeddedRuntime(lambda: CountingEncoder(session_encoder, delay=0.3))  # type: ignore[arg-type, return-value]
    classifier = ModelClassifier(load_head(anchor_repository, "anchors"), runtime, timeout=0.05)
    await runtime.warm_up()
    try:
        with pytest.raises(ClassifierUnavailable, match="50 ms"):
            await classifier.classify(user("hello"))
    finally:
        await runtime.aclose()


async def test_encoder_failures_become_classifier_unavailable() -> None:
    class Broken:
        def encode(self, texts: list[str]) -> np.ndarray:
            raise RuntimeError("out of memory")

    runtime = EmbeddedRuntime(lambda: Broken())  # type: ignore[arg-type, return-value]
    try:
        with pytest.raises(ClassifierUnavailable, match="out of memory"):
            await runtime.embed("hello")
        with pytest.raises(ClassifierUnavailable):  # and the runtime keeps serving (failing) later requests
            await runtime.embed("again")
    finally:
        await runtime.aclose()


async def test_close_fails_queued_requests_and_the_runtime_can_start_again(session_encoder: SentenceEncoder) -> None:
    runtime = EmbeddedRuntime(lambda: CountingEncoder(session_encoder, delay=0.2), max_batch=1)  # type: ignore[arg-type, return-value]
    first = asyncio.ensure_future(runtime.embed("first"))
    queued = asyncio.ensure_future(runtime.embed("second"))
    await asyncio.sleep(0.05)
    await runtime.aclose()
    assert (await first).shape == (384,)  # the batch in flight finishes
    with pytest.raises(ClassifierUnavailable, match="closed"):
        await queued
    assert not runtime.loaded
    assert (await runtime.embed("after")).shape == (384,)
    await runtime.aclose()


# -------------------------------------------------------------- end to end


async def test_routed_end_to_end_through_the_router_with_the_openai_client(anchor_repository: Path,
                                                                           encoder_env: Path, upstreams,
                                                                           router) -> None:
    fast, strong = await upstreams("fast"), await upstreams("strong")
    config = model_config(anchor_repository, llms=[llm("fast", fast), llm("strong", strong)])
    running = await router(config)
    assert running.app[STATE].holder.resources.runtime().loaded  # warmed up at startup, not on the first request
    client = AsyncOpenAI(base_url=running.base_url, api_key="unused")
    try:
        for category, prompt in PROMPTS.items():
            before = len(strong.received)
            answer = await client.chat.completions.create(
                model="router:anchored",
                messages=[{"role": "system", "content": "You are a helpful assistant."},
                          {"role": "user", "content": prompt}])
            assert answer.choices[0].message.content
            went_to_strong = len(strong.received) > before
            assert went_to_strong == (category == "code"), category
        route = await client.post("/route", cast_to=dict, body={
            "model": "router:anchored", "messages": [{"role": "user", "content": PROMPTS["poem"]}]})
    finally:
        await client.close()
    assert route["category"] == "poem"
    assert route["classifier"] == "embedded"
    assert route["reason"] == "classified"
    assert route["chosen_llm"] == "fast"
    assert set(route["confidences"]) == set(ANCHORS)


@pytest.mark.parametrize(("failure_mode", "status"), [("open", 200), ("closed", 503)])
async def test_encoder_trouble_follows_failure_mode(anchor_repository: Path, encoder_env: Path, upstreams, router,
                                                    monkeypatch: pytest.MonkeyPatch, failure_mode: str,
                                                    status: int) -> None:
    fast, strong = await upstreams("fast"), await upstreams("strong")
    config = model_config(anchor_repository, llms=[llm("fast", fast), llm("strong", strong)],
                          policy=anchor_policy(failure_mode=failure_mode))
    running = await router(config)
    runtime = running.app[STATE].holder.resources.runtime()

    async def broken(text: str) -> np.ndarray:
        raise ClassifierUnavailable("encoder down")

    monkeypatch.setattr(runtime, "embed", broken)
    import aiohttp

    async with aiohttp.ClientSession() as session, session.post(
            f"{running.base_url}/chat/completions",
            json={"model": "router:anchored", "messages": [{"role": "user", "content": PROMPTS["code"]}]}) as response:
        assert response.status == status
        body = await response.json()
    if failure_mode == "open":
        assert body["choices"][0]["message"]["content"]
        assert len(fast.received) == 1 and not strong.received  # the default route
    else:
        assert body["error"]["code"] == "classifier_unavailable"
    async with aiohttp.ClientSession() as session, session.get(f"{running.url}/metrics") as response:
        metrics = await response.text()
    if failure_mode == "open":
        assert 'reason="classifier_failed"' in metrics


async def test_the_intent_router_routes_banking77_groups_end_to_end(encoder_env: Path, upstreams, router) -> None:
    """The custom policy of the issue: Banking77's 77 intents, routed by their 10 support groups."""
    from llm_router.proxy.model_classifier import DEFAULT_MODEL_REPOSITORY

    head = load_head(DEFAULT_MODEL_REPOSITORY, "intent_router")
    security = sorted(label for label, group in head.groups.items() if group == "security")
    fast, strong = await upstreams("fast"), await upstreams("strong")
    running = await router({
        "router": {"default_policy": "support", "classifier_backend": {"timeout_ms": 30_000}},
        "llms": [llm("fast", fast), llm("strong", strong)],
        "policies": [{"name": "support", "classifier": {"type": "model", "model": "intent_router"},
                      "routes": {"security": ["strong", "fast"]}, "default_route": ["fast"]}]})
    client = AsyncOpenAI(base_url=running.base_url, api_key="unused")
    try:
        stolen = await client.post("/route", cast_to=dict, body={
            "model": "router:support",
            "messages": [{"role": "user", "content": "Someone stole my card last night, block it right away!"}]})
        answer = await client.chat.completions.create(model="router:support", messages=[
            {"role": "user", "content": "How long does a bank transfer top up take?"}])
    finally:
        await client.close()
    assert stolen["category"] in security and stolen["route"] == "security" and stolen["chosen_llm"] == "strong"
    assert answer.choices[0].message.content and len(fast.received) == 1 and not strong.received


def test_the_quick_start_config_serves_the_trained_policies(encoder_env: Path) -> None:
    from llm_router.proxy.config_file import load_config_file
    from llm_router.proxy.quickstart import QUICKSTART_CONFIG, ensure_encoder

    assert ensure_encoder() is None  # built already: nothing to do
    active = ActiveConfig.build(load_config_file(QUICKSTART_CONFIG))
    assert [policy.name for policy in active.config.policies] == ["task_router", "complexity_router", "cost_quality",
                                                                   "keyword_router"]
    assert active.config.router.default_policy == "task_router"
