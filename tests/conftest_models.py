"""Fixtures for trained-model classifiers: the ONNX encoder, built once per test session, and
hand-made heads in a Triton-layout model repository.

The encoder is built from the packaged all-MiniLM-L6-v2 into a temporary cache
(``llm-router models build`` does the same into the user's cache); it takes a
few seconds, so every test shares the one build. Tests that load it through the
default paths set ``LLM_ROUTER_CACHE`` to that cache with ``encoder_env``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model needs no hub, and there is none

ANCHORS = {
    "code": "Write a Python function, class or algorithm: programming code in Python, Java or JavaScript.",
    "summary": "Summarize this long article into three short bullet points.",
    "poem": "Write a poem about the sea and the moonlight.",
}
"""A 3-class head whose weights are these sentences' embeddings: each prompt goes to the nearest anchor."""


@pytest.fixture(scope="session")
def encoder_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache root holding a freshly built encoder (``encoders/all-MiniLM-L6-v2``)."""
    from llm_router.proxy.encoder_build import build_encoder

    cache = tmp_path_factory.mktemp("llm-router-cache")
    build_encoder(cache)
    return cache


@pytest.fixture
def encoder_env(encoder_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``LLM_ROUTER_CACHE`` pointing at the session's encoder build, for this test."""
    monkeypatch.setenv("LLM_ROUTER_CACHE", str(encoder_cache))
    return encoder_cache


@pytest.fixture(scope="session")
def session_encoder(encoder_cache: Path):
    from llm_router.proxy.encoder import load_encoder

    return load_encoder(encoder_cache)


def write_head(repository: Path, name: str, weight: np.ndarray, bias: np.ndarray, labels: list[str], *,
               version: int = 1, **meta: object) -> Path:
    """A model directory in the Triton layout the training command writes."""
    directory = repository / name / str(version)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {"weight": np.asarray(weight, np.float32), "bias": np.asarray(bias, np.float32)}
    for key in ("score_weight", "score_bias"):
        if key in meta:
            arrays[key] = np.asarray(meta.pop(key), np.float32)
    np.savez(directory / "head.npz", **arrays)
    labels_json = {"labels": labels, "policy_type": "custom", "encoder": "all-MiniLM-L6-v2", "unknown_label": None,
                   **meta}
    (directory / "labels.json").write_text(json.dumps(labels_json))
    (repository / name / "config.pbtxt").write_text(f'name: "{name}"\nbackend: "python"\n')
    return directory


@pytest.fixture(scope="session")
def anchor_repository(tmp_path_factory: pytest.TempPathFactory, session_encoder) -> Path:
    """A model repository with ``anchors``: 3 classes, weight = 20 x the anchors' embeddings."""
    repository = tmp_path_factory.mktemp("triton_models")
    embeddings = session_encoder.encode(list(ANCHORS.values()))
    write_head(repository, "anchors", 20.0 * embeddings, np.zeros(len(ANCHORS)), list(ANCHORS))
    return repository
