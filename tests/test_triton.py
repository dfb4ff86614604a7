"""Model policies served by a real ``tritonserver`` (from the nvidia-pytriton wheel, CPU instances):
routed end to end with the openai client, the same decisions as the embedded path, and Triton
stopped mid-run taking the policy's failure mode."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import llm
from conftest_models import ANCHORS
from llm_router.proxy.active_config import ActiveConfig
from llm_router.proxy.classifiers import ClassifierInput
from llm_router.proxy.config import RouterConfig
from llm_router.proxy.conversation import Turn
from llm_router.proxy.triton_model_config import write_triton_files
from llm_router.proxy.triton_server import TritonServer

PROMPTS = [
    "Can you write a python function that merges two sorted lists?",
    "Give me a short summary of the following report: sales grew 5% while costs fell.",
    "A poem about moonlight over the ocean, please.",
    "Implement quicksort in JavaScript.",
    "tl;dr this article for me",
]


@pytest.fixture(scope="module")
def triton_repository(anchor_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The anchors model with its Triton files, as ``llm-router train`` writes them."""
    repository = tmp_path_factory.mktemp("triton_repository")
    shutil.copytree(anchor_repository / "anchors", repository / "anchors")
    write_triton_files(repository / "anchors", classes=len(ANCHORS))
    return repository


@pytest.fixture(scope="module")
def triton(triton_repository: Path, encoder_cache: Path):
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("LLM_ROUTER_CACHE", str(encoder_cache))  # the Python backend's encoder
    server = TritonServer(triton_repository)
    with server:
        yield server
    monkeypatch.undo()


def triton_config(repository: Path, triton_url: str, fast, strong, **policy: Any) -> dict[str, Any]:
    return {
        "router": {"default_policy": "anchored",
                   "classifier_backend": {"triton_url": triton_url, "model_repository": str(repository),
                                          "timeout_ms": 5000}},
        "llms": [llm("fast", fast), llm("strong", strong)],
        "policies": [{"name": "anchored", "classifier": {"type": "model", "model": "anchors"},
                      "routes": {"code": ["strong", "fast"], "summary": ["fast"], "poem": ["strong"]},
                      "default_route": ["fast"], **policy}],
    }


async def test_routes_through_triton_end_to_end(triton, triton_repository, router, upstreams):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    running = await router(triton_config(triton_repository, triton.grpc_url, fast, strong))
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key="k", max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(
        model="router:anchored", messages=[{"role": "user", "content": PROMPTS[0]}])
    assert raw.headers["x-llm-router-category"] == "code"
    assert raw.headers["x-llm-router-llm"] == "strong"
    assert raw.parse().choices[0].message.content == strong.text()
    stream = await client.chat.completions.create(
        model="router:anchored", stream=True, messages=[{"role": "user", "content": PROMPTS[1]}])
    assert "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]) == fast.text()


async def test_triton_and_embedded_decide_alike(triton, triton_repository, encoder_env, upstreams):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    config = triton_config(triton_repository, triton.grpc_url, fast, strong)
    on_triton = ActiveConfig.build(RouterConfig.model_validate(config)).classifiers["anchored"]
    config["router"]["classifier_backend"].pop("triton_url")
    embedded = ActiveConfig.build(RouterConfig.model_validate(config)).classifiers["anchored"]
    assert (on_triton.kind, embedded.kind) == ("triton", "embedded")
    for prompt in PROMPTS:
        request = ClassifierInput([Turn("system", "You are helpful."), Turn("user", prompt)], {})
        remote, local = await on_triton.classify(request), await embedded.classify(request)
        assert remote.category == local.category, prompt
        for label in ANCHORS:
            assert remote.confidences[label] == pytest.approx(local.confidences[label], abs=1e-4)
    await embedded.runtime.aclose()


@pytest.mark.parametrize(("failure_mode", "status"), [("open", 200), ("closed", 503)])
async def test_triton_stopped_mid_run_takes_the_failure_mode(triton_repository, encoder_env, router, upstreams,
                                                             failure_mode, status):
    fast, strong = await upstreams("fast"), await upstreams("strong")
    server = TritonServer(triton_repository).start()
    try:
        running = await router(triton_config(triton_repository, server.grpc_url, fast, strong,
                                             failure_mode=failure_mode))
        client = openai.AsyncOpenAI(base_url=running.base_url, api_key="k", max_retries=0)
        raw = await client.chat.completions.with_raw_response.create(
            model="router:anchored", messages=[{"role": "user", "content": PROMPTS[0]}])
        assert raw.headers["x-llm-router-llm"] == "strong"
    finally:
        server.stop()
    if status == 200:
        raw = await client.chat.completions.with_raw_response.create(
            model="router:anchored", messages=[{"role": "user", "content": PROMPTS[0]}])
        assert raw.headers["x-llm-router-route"] == "default"
        assert raw.headers["x-llm-router-llm"] == "fast"
    else:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="router:anchored",
                                                 messages=[{"role": "user", "content": PROMPTS[0]}])
        assert caught.value.status_code == 503
        assert caught.value.body["code"] == "classifier_unavailable"


# ------------------------------------------------------------ the built-in models

BUILT_IN_CASES = [
    # (policy model, prompt, expected category)
    ("task_router", "Write a Python function that returns the n-th Fibonacci number.", "Code Generation"),
    ("task_router", "Brainstorm ten names for a coffee shop run by cats.", "Brainstorming"),
    ("intent_router", "I lost my card yesterday, please block it", None),
    ("complexity_router", "Solve: a train leaves at 3pm going 60 mph; when has it gone 150 miles?", None),
]


@pytest.fixture(scope="module")
def built_in_triton(encoder_cache: Path):
    from llm_router.proxy.triton_server import REPOSITORY

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("LLM_ROUTER_CACHE", str(encoder_cache))
    with TritonServer(REPOSITORY) as server:
        yield server
    monkeypatch.undo()


def built_in_config(model: str, triton_url: str | None) -> dict[str, Any]:
    from llm_router.proxy.model_classifier import load_head
    from llm_router.proxy.triton_server import REPOSITORY

    head = load_head(REPOSITORY, model)
    backend = {"timeout_ms": 10_000, **({"triton_url": triton_url} if triton_url else {})}
    return {"router": {"classifier_backend": backend},
            "llms": [{"name": "fast", "api_base": "http://fast.invalid/v1", "model": "m"}],
            "policies": [{"name": "p", "classifier": {"type": "model", "model": model},
                          "routes": {label: ["fast"] for label in head.labels}, "default_route": ["fast"]}]}


@pytest.mark.parametrize(("model", "prompt", "expected"), BUILT_IN_CASES)
async def test_built_in_models_serve_on_triton_as_embedded(built_in_triton, encoder_env, model, prompt, expected):
    request = ClassifierInput([Turn("user", prompt)], {})
    on_triton = ActiveConfig.build(RouterConfig.model_validate(built_in_config(model, built_in_triton.grpc_url)))
    embedded = ActiveConfig.build(RouterConfig.model_validate(built_in_config(model, None)))
    remote = await on_triton.classifiers["p"].classify(request)
    local = await embedded.classifiers["p"].classify(request)
    await embedded.classifiers["p"].runtime.aclose()
    assert remote.category == local.category
    if expected is not None:
        assert remote.category == expected
    if model == "complexity_router":
        assert set(remote.scores) == {"creativity", "reasoning", "constraint", "domain_knowledge",
                                      "contextual_knowledge", "few_shot", "overall"}
        assert remote.scores["overall"] == pytest.approx(local.scores["overall"], abs=1e-4)
