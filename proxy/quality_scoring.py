"""Scoring many prompts with a quality model at once, outside the proxy (``score``, ``calibrate``, ``eval``).

Each prompt is prepared as the proxy prepares a one-message conversation
(``conversation.classifier_text``), encoded per view in length-sorted batches,
and run through the same head math (``model_classifier.head_outputs``), so a
prompt scores here exactly as a request with that prompt scores in the router.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .config import QualityClassifierRef
from .config_file import ConfigError, load_config_file
from .conversation import Turn, classifier_text
from .jsonl_files import FileFormatError, is_jsonl, parse_jsonl, read_text
from .model_classifier import Head, ModelError, head_outputs, load_head, resolve_repository
from .quality import STRONG_LABEL, quality_score

Encode = Callable[[list[str]], np.ndarray]
BATCH = 64


class ScoringError(ValueError):
    """A policy, model or prompt file that cannot be scored, said in one line."""


def quality_head(policy: str, config_path: Path | None) -> tuple[Head, QualityClassifierRef | None]:
    """The quality model of ``policy`` in the config, or (no config) the model of that name in the
    default model repository."""
    if config_path is None:
        repository, model, ref = resolve_repository(None), policy, None
    else:
        try:
            config = load_config_file(config_path)
        except ConfigError as exc:
            raise ScoringError(exc.describe()) from None
        found = config.policy(policy)
        if found is None:
            raise ScoringError(f"{config_path}: no policy {policy!r}; policies: {[p.name for p in config.policies]}")
        if not isinstance(found.classifier, QualityClassifierRef):
            raise ScoringError(f"policy {policy!r} classifies with type {found.classifier.type!r}, not quality")
        ref = found.classifier
        repository, model = resolve_repository(config.router.classifier_backend.model_repository), ref.model
    try:
        head = load_head(repository, model)
    except ModelError as exc:
        raise ScoringError(str(exc)) from None
    if STRONG_LABEL not in head.labels:
        raise ScoringError(f"model {model!r} is not a quality model (labels {head.labels})")
    return head, ref


def prepared(prompt: str) -> str:
    return classifier_text([Turn("user", prompt)])


def score_prompts(head: Head, prompts: Sequence[str], encode: Encode, batch: int = BATCH) -> np.ndarray:
    """The quality score (``quality.quality_score``) of each prompt, in input order."""
    if not prompts:
        return np.zeros(0, dtype=np.float64)
    texts = [prepared(prompt) for prompt in prompts]
    blocks = []
    for view_index in range(len(head.views)):
        parts = [head.encoder_texts(text)[view_index] for text in texts]
        order = sorted(range(len(parts)), key=lambda i: len(parts[i]))  # similar lengths pad little
        vectors = np.zeros((len(parts), 0), dtype=np.float32)
        for start in range(0, len(order), batch):
            chosen = order[start:start + batch]
            encoded = np.asarray(encode([parts[i] for i in chosen]), dtype=np.float32)
            if vectors.shape[1] == 0:
                vectors = np.zeros((len(parts), encoded.shape[1]), dtype=np.float32)
            vectors[chosen] = encoded
        blocks.append(vectors)
    probabilities, _ = head_outputs(head, np.hstack(blocks), texts)
    return np.array([quality_score(dict(zip(head.labels, map(float, row), strict=True))) for row in probabilities])


def encoder_for(head: Head, threads: int = 2) -> Encode:
    from .encoder import load_encoder

    return load_encoder(intra_op_num_threads=threads, variant=head.encoder_variant).encode


def read_prompts(path: Path) -> list[str]:
    """Prompts from a JSONL file (one object a line with a string ``prompt``) or a text file (one a line)."""
    try:
        content = read_text(path)
        if not is_jsonl(path):
            return [line for line in content.splitlines() if line.strip()]
        lines = parse_jsonl(content, path)
    except FileFormatError as exc:
        raise ScoringError(str(exc)) from None
    prompts = []
    for number, row in lines:
        if not isinstance(row.get("prompt"), str):
            raise ScoringError(f"{path}:{number}: expected an object with a string \"prompt\"")
        prompts.append(row["prompt"])
    if not prompts:
        raise ScoringError(f"{path}: no prompts")
    return prompts
