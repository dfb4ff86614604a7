"""Trained classifiers, run in the proxy process ("embedded"): a small head on the sentence encoder.

A model lives in a Triton-layout repository, shared with the training command
and Triton's Python backend::

    <repository>/<model>/config.pbtxt      Triton's (not read here)
    <repository>/<model>/<version>/head.npz
        weight (C, D), bias (C,): softmax(weight @ x + bias) over the C labels, where x is
        the head's input (``head_inputs``): one embedding per view, then the lexical vector
        optional score_weight (K, D), score_bias (K,): sigmoid scores (complexity)
    <repository>/<model>/<version>/labels.json
        {"labels": [...C names in output order], "policy_type": "task"|"complexity"|"custom",
         "encoder": "all-MiniLM-L6-v2", "encoder_variant": "fp32"|"int8" (default fp32),
         "views": ["full"|"lead", ...] (default ["full"]), "unknown_label": "Unknown" | null,
         "score_names": [...K names] (optional), "score_weights": {name: weight} (optional),
         "unknown_threshold": float (optional)}
    <repository>/<model>/<version>/vocabulary.json (optional)
        the lexicon: terms, idf and the view they are counted in (``head_inputs.Lexicon``)

The highest numeric version is used, as Triton does. ``classify_embeddings``
and ``head_outputs`` are the whole head math as plain functions, for the Triton backend to reuse.

Encoding is the expensive part, so it runs off the event loop in one worker
thread shared by every model policy of the process (``EmbeddedRuntime``), and
requests that arrive while it is busy are encoded together in the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .classifier_resources import ClassifierResources
from .classifiers import Classification, Classifier, ClassifierInput, ClassifierUnavailable
from .config import ClassifierBackend, ModelClassifierRef, PolicyConfig
from .conversation import classifier_text
from .encoder import ENCODER_NAME, SentenceEncoder, Variant, encoder_dir, load_encoder, read_info
from .head_inputs import VIEWS, VOCABULARY_FILE, Lexicon, view_texts

log = logging.getLogger(__name__)

DEFAULT_MODEL_REPOSITORY = Path(__file__).resolve().parent.parent / "triton_models"
"""``triton_models/`` next to the ``proxy/`` package: the trained heads committed with the project."""
HEAD_FILE = "head.npz"
LABELS_FILE = "labels.json"
MAX_BATCH = 32
OVERALL = "overall"
NVIDIA_COMPLEXITY_WEIGHTS = {
    "creativity": 0.35,
    "reasoning": 0.25,
    "constraint": 0.15,
    "domain_knowledge": 0.15,
    "contextual_knowledge": 0.05,
    "few_shot": 0.05,
}
"""The weights of NVIDIA's prompt-complexity score; used when ``labels.json`` gives none
and its score names are exactly these."""


class ModelError(ValueError):
    """A model directory that cannot serve a policy: missing, malformed, or not covering its routes."""


# --------------------------------------------------------------- the head


@dataclass(frozen=True)
class Head:
    """A loaded model directory: labels and the arrays of the linear head(s)."""

    name: str
    directory: Path
    labels: list[str]
    policy_type: str
    weight: np.ndarray
    bias: np.ndarray
    unknown_label: str | None = None
    unknown_threshold: float | None = None
    score_names: list[str] = field(default_factory=list)
    score_weight: np.ndarray | None = None
    score_bias: np.ndarray | None = None
    score_weights: dict[str, float] = field(default_factory=dict)
    views: tuple[str, ...] = ("full",)
    """The classifier text's views whose embeddings, side by side, start the input."""
    encoder_variant: Variant = "fp32"
    """The encoder precision the head was trained on, and so runs on."""
    lexicon: Lexicon | None = None
    groups: dict[str, str] = field(default_factory=dict)
    """Label -> group (optional): policies may route a group instead of each of its labels."""

    @property
    def route_names(self) -> list[str]:
        """What a policy's routes may name: the categories, and the groups."""
        return [*self.categories, *sorted(set(self.groups.values()) - set(self.categories))]

    @property
    def categories(self) -> list[str]:
        """Everything ``classify_embeddings`` can return: the labels, and the unknown label."""
        extra = [self.unknown_label] if self.unknown_label and self.unknown_label not in self.labels else []
        return [*self.labels, *extra]

    @property
    def embedding_dim(self) -> int:
        """The embedding part of the input: the encoder's dimension times the number of views."""
        return int(self.weight.shape[1]) - (self.lexicon.size if self.lexicon else 0)

    def encoder_texts(self, text: str) -> list[str]:
        """What to encode for one classifier text, in input order."""
        return view_texts(text, self.views)


def resolve_repository(configured: str | None) -> Path:
    return Path(configured).expanduser() if configured else DEFAULT_MODEL_REPOSITORY


def load_head(repository: Path, name: str) -> Head:
    """Read and check ``<repository>/<name>/<latest version>/``; ``ModelError`` says what is wrong."""
    model_dir = repository / name
    if not model_dir.is_dir():
        available = sorted(path.name for path in repository.iterdir() if path.is_dir()) if repository.is_dir() else []
        where = f"the model repository {repository}" + ("" if repository.is_dir() else " (which does not exist)")
        raise ModelError(f"no model {name!r} in {where}; models there: {available}")
    versions = sorted((int(path.name), path) for path in model_dir.iterdir()
                      if path.name.isdigit() and (path / HEAD_FILE).is_file())
    if not versions:
        raise ModelError(f"model {name!r} in {repository} has no version directory with {HEAD_FILE} "
                         f"(expected {model_dir}/1/{HEAD_FILE} and {LABELS_FILE})")
    directory = versions[-1][1]
    try:
        meta = json.loads((directory / LABELS_FILE).read_text(encoding="utf-8"))
        with np.load(directory / HEAD_FILE, allow_pickle=False) as arrays:
            loaded = {key: np.asarray(arrays[key], dtype=np.float32) for key in arrays.files}
        vocabulary = None
        if (directory / VOCABULARY_FILE).is_file():
            vocabulary = json.loads((directory / VOCABULARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"model {name!r}: cannot read {directory}: {exc}") from None
    return _checked_head(name, directory, meta, loaded, vocabulary)


def _checked_head(name: str, directory: Path, meta: Any, arrays: dict[str, np.ndarray],
                  vocabulary: Any = None) -> Head:
    def fail(problem: str) -> ModelError:
        return ModelError(f"model {name!r} ({directory}): {problem}")

    if not isinstance(meta, dict):
        raise fail(f"{LABELS_FILE} is not a JSON object")
    views = meta.get("views", ["full"])
    if not (isinstance(views, list) and views and all(view in VIEWS for view in views)
            and len(set(views)) == len(views)):
        raise fail(f"\"views\" must be a non-empty list of distinct views from {list(VIEWS)}, got {views!r}")
    variant = meta.get("encoder_variant", "fp32")
    if variant not in ("fp32", "int8"):
        raise fail(f"\"encoder_variant\" must be \"fp32\" or \"int8\", got {variant!r}")
    lexicon = None
    if vocabulary is not None:
        try:
            lexicon = Lexicon.from_json(vocabulary)
        except ValueError as exc:
            raise fail(f"{VOCABULARY_FILE}: {exc}") from None
    labels = meta.get("labels")
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) and x for x in labels)):
        raise fail(f"{LABELS_FILE} needs \"labels\": a non-empty list of names")
    if len(set(labels)) != len(labels):
        raise fail(f"duplicate labels: {labels}")
    encoder = meta.get("encoder", ENCODER_NAME)
    if encoder != ENCODER_NAME:
        raise fail(f"trained on encoder {encoder!r}; this proxy runs {ENCODER_NAME!r}")
    weight, bias = arrays.get("weight"), arrays.get("bias")
    if weight is None or bias is None or weight.ndim != 2 or weight.shape[0] != len(labels) \
            or bias.shape != (len(labels),):
        raise fail(f"{HEAD_FILE} needs weight (C, dim) and bias (C,) with C = {len(labels)} labels; got "
                   f"{None if weight is None else weight.shape} and {None if bias is None else bias.shape}")
    score_names = list(meta.get("score_names") or [])
    score_weight, score_bias = arrays.get("score_weight"), arrays.get("score_bias")
    scores_wanted = bool(score_names) or score_weight is not None
    if scores_wanted and (score_weight is None or score_bias is None
                          or score_weight.shape != (len(score_names), weight.shape[1])
                          or score_bias.shape != (len(score_names),)):
        raise fail(f"score_weight must be ({len(score_names)}, {weight.shape[1]}) and score_bias "
                   f"({len(score_names)},) for score_names {score_names}")
    score_weights = {str(key): float(value) for key, value in (meta.get("score_weights") or {}).items()}
    unknown = [key for key in score_weights if key not in score_names]
    if unknown:
        raise fail(f"score_weights name scores that are not in score_names {score_names}: {unknown}")
    if not score_weights and score_names and sorted(score_names) == sorted(NVIDIA_COMPLEXITY_WEIGHTS):
        score_weights = dict(NVIDIA_COMPLEXITY_WEIGHTS)
    threshold = meta.get("unknown_threshold")
    groups = meta.get("groups") or {}
    if not (isinstance(groups, dict) and all(isinstance(value, str) and value for value in groups.values())
            and set(groups) <= set(labels)):
        raise fail("\"groups\" must map labels to non-empty group names")
    if lexicon is not None and weight.shape[1] <= lexicon.size:
        raise fail(f"weight has {weight.shape[1]} input columns, not more than the {lexicon.size} lexicon terms")
    return Head(name=name, directory=directory, labels=labels, policy_type=str(meta.get("policy_type", "custom")),
                weight=weight, bias=bias, unknown_label=meta.get("unknown_label") or None,
                unknown_threshold=float(threshold) if threshold is not None else None,
                score_names=score_names, score_weight=score_weight, score_bias=score_bias,
                score_weights=score_weights, views=tuple(views), encoder_variant=variant, lexicon=lexicon,
                groups=dict(groups))


def head_input(head: Head, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
    """The input rows (N, D): the embeddings (N, embedding_dim) of ``head.encoder_texts`` of each
    classifier text, then the lexical vector of the text when the head has a lexicon."""
    if embeddings.shape != (len(texts), head.embedding_dim):
        raise ValueError(f"model {head.name!r}: expected embeddings of shape ({len(texts)}, {head.embedding_dim}), "
                         f"got {embeddings.shape}")
    if head.lexicon is None:
        return embeddings
    return np.hstack([embeddings, head.lexicon.vectors(texts)])


def head_outputs(head: Head, embeddings: np.ndarray, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Class probabilities (N, C) and sigmoid scores (N, K) or ``None`` for N classifier texts and
    their embeddings (N, embedding_dim)."""
    x = head_input(head, embeddings, texts)
    logits = x @ head.weight.T + head.bias
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    scores = None
    if head.score_weight is not None and head.score_bias is not None:
        scores = 1.0 / (1.0 + np.exp(-(x @ head.score_weight.T + head.score_bias)))
    return probabilities, scores


def classify_embeddings(head: Head, embeddings: np.ndarray, texts: list[str]) -> list[Classification]:
    """The head's decision for each classifier text, given its embeddings (N, embedding_dim)."""
    probabilities, scores = head_outputs(head, np.atleast_2d(np.asarray(embeddings, dtype=np.float32)), texts)
    return classifications_from_outputs(head, probabilities, scores)


def classifications_from_outputs(head: Head, probabilities: np.ndarray,
                                 scores: np.ndarray | None) -> list[Classification]:
    """Decisions from the head's outputs, wherever they were computed (here or in Triton): the most
    probable label with every label's probability; for complexity heads also each score and their
    weighted ``overall``. When ``unknown_threshold`` is set and the top probability is below it, the
    category is the unknown label, with confidence one minus that probability."""
    results = []
    for row, probs in enumerate(probabilities):
        confidences = {label: float(p) for label, p in zip(head.labels, probs, strict=True)}
        best = int(probs.argmax())
        category = head.labels[best]
        if head.unknown_label and head.unknown_threshold is not None and probs[best] < head.unknown_threshold:
            category = head.unknown_label
            confidences[category] = max(confidences.get(category, 0.0), 1.0 - float(probs[best]))
        named: dict[str, float] = {}
        if scores is not None:
            named = {name: float(value) for name, value in zip(head.score_names, scores[row], strict=True)}
            if head.score_weights:
                named[OVERALL] = float(sum(weight * named[name] for name, weight in head.score_weights.items()))
        group = head.groups.get(category)
        group_confidence = sum(p for label, p in confidences.items() if head.groups.get(label) == group) \
            if group is not None else 0.0
        results.append(Classification(category, confidences, named, group, group_confidence))
    return results


# ------------------------------------------------------- the shared runtime


@dataclass(slots=True)
class _Job:
    text: str
    future: asyncio.Future[np.ndarray]
    loop: asyncio.AbstractEventLoop


class EmbeddedRuntime:
    """The sentence encoder of this process, behind a micro-batching queue.

    ``embed`` never blocks the event loop: it queues the text and awaits a
    future. One worker thread drains the queue: it takes everything waiting
    (up to ``max_batch``), encodes it in one call, resolves each future, and
    repeats until the queue is empty. A lone request therefore starts at once
    (no batching window to wait out: the worker is started on the next turn
    of the event loop), and under load each batch holds the requests that
    arrived while the previous one ran. The encoder is loaded in
    the worker on first use (``warm_up`` does it ahead of traffic).

    ``aclose`` fails whatever is still queued, stops the thread and drops the
    model; a later ``embed`` starts it again, so several apps in one process
    (tests) can share the one runtime."""

    def __init__(self, encoder_factory: Callable[[], SentenceEncoder] | None = None, *,
                 max_batch: int = MAX_BATCH, intra_op_num_threads: int = 1, variant: Variant = "fp32") -> None:
        self._factory = encoder_factory or (
            lambda: load_encoder(intra_op_num_threads=intra_op_num_threads, variant=variant))
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: deque[_Job] = deque()
        self._draining = False
        self._executor: ThreadPoolExecutor | None = None
        self._encoder: SentenceEncoder | None = None
        self._load_lock = threading.Lock()
        self.batches = 0
        """Encoder calls so far (for tests and benchmarks)."""
        self.items = 0
        """Texts encoded so far."""

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    async def warm_up(self) -> None:
        """Load the encoder now, in the worker thread, unless it is loaded already."""
        if self._encoder is None:
            await asyncio.wrap_future(self._worker().submit(self._load))

    async def embed(self, text: str) -> np.ndarray:
        """The embedding (dim,) of ``text``, encoded in a batch with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        with self._lock:
            self._pending.append(_Job(text, future, loop))
            start = not self._draining
            self._draining = True
        if start:
            # Next loop iteration, not now: requests woken in this iteration (the answers of the last
            # batch wake their clients together) queue first and share the batch. No timer involved.
            loop.call_soon(self._start_drain)
        return await future

    def _start_drain(self) -> None:
        with self._lock:  # under the lock: aclose cannot shut this executor down in between
            try:
                self._worker_locked().submit(self._drain)
                return
            except RuntimeError as exc:  # the interpreter is shutting down: no new threads
                pending = list(self._pending)
                self._pending.clear()
                self._draining = False
                error = ClassifierUnavailable(f"the embedded classifier runtime cannot run: {exc}")
        _resolve(pending, None, error)

    async def aclose(self) -> None:
        with self._lock:
            pending = list(self._pending)
            self._pending.clear()
            executor, self._executor = self._executor, None
        _resolve(pending, None, ClassifierUnavailable("the embedded classifier runtime was closed"))
        if executor is not None:
            await asyncio.to_thread(executor.shutdown)
        with self._load_lock:
            self._encoder = None

    def _worker(self) -> ThreadPoolExecutor:
        with self._lock:
            return self._worker_locked()

    def _worker_locked(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm-router-encoder")
        return self._executor

    def _load(self) -> SentenceEncoder:
        with self._load_lock:
            if self._encoder is None:
                self._encoder = self._factory()
            return self._encoder

    def _drain(self) -> None:
        """Worker thread: encode queued texts batch by batch until none is left."""
        try:
            while True:
                with self._lock:
                    batch: list[_Job] = []
                    while self._pending and len(batch) < self.max_batch:
                        job = self._pending.popleft()
                        if not job.future.done():  # cancelled while queued (deadline, client gone): skip it
                            batch.append(job)
                    if not batch:
                        self._draining = False
                        return
                try:
                    vectors = self._load().encode([job.text for job in batch])
                except Exception as exc:
                    log.exception("embedding %d texts failed", len(batch))
                    _resolve(batch, None, ClassifierUnavailable(f"the sentence encoder failed: {exc}"))
                    continue
                self.batches += 1
                self.items += len(batch)
                _resolve(batch, list(vectors), None)
        except BaseException:
            with self._lock:
                self._draining = False
            raise


def _resolve(jobs: list[_Job], values: list[np.ndarray] | None, error: BaseException | None) -> None:
    """Settle a batch's futures with one callback per event loop, so that every request of the
    batch wakes in the same loop iteration (and their next requests queue together)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, np.ndarray | None]]] = {}
    for index, job in enumerate(jobs):
        by_loop.setdefault(job.loop, []).append((job, values[index] if values is not None else None))

    def settle(settled: list[tuple[_Job, np.ndarray | None]]) -> None:
        for job, value in settled:
            if job.future.done():
                continue
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(value)  # type: ignore[arg-type]

    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # RuntimeError: that event loop is gone
            loop.call_soon_threadsafe(settle, settled)


# ---------------------------------------------------------- the classifier


class ModelClassifier:
    """A trained head on the shared embedded encoder: the ``Classifier`` protocol for ``type: model``."""

    kind = "embedded"

    def __init__(self, head: Head, runtime: EmbeddedRuntime, *, timeout: float | None = None) -> None:
        self.head = head
        self.runtime = runtime
        self.timeout = timeout

    @property
    def categories(self) -> list[str]:
        return self.head.categories

    async def classify(self, request: ClassifierInput) -> Classification:
        text = classifier_text(request.turns)
        await self.runtime.warm_up()  # the first load is not the request's deadline's business
        try:
            embeddings = await asyncio.wait_for(
                asyncio.gather(*(self.runtime.embed(part) for part in self.head.encoder_texts(text))), self.timeout)
        except TimeoutError:
            raise ClassifierUnavailable(f"model {self.head.name!r}: no embedding within "
                                        f"{self.timeout * 1000 if self.timeout else 0:.0f} ms") from None
        return classify_embeddings(self.head, np.concatenate(embeddings)[None, :], [text])[0]


def build_model_classifier(policy: PolicyConfig, ref: ModelClassifierRef, backend: ClassifierBackend,
                           resources: ClassifierResources) -> Classifier:
    """The classifier for a ``type: model`` policy, after checking everything a request would trip on:
    the model directory, that its categories cover the policy's routes, and (embedded) that the encoder
    is built. With ``triton_url`` set, Triton runs encoder and head; the model directory still gives
    the labels, so both paths decide alike."""
    repository = resolve_repository(backend.model_repository)
    head = load_head(repository, ref.model)
    names = head.route_names
    unknown = [category for category in policy.routes if category not in names]
    if unknown:
        groups = sorted(set(head.groups.values()))
        raise ModelError(f"policy {policy.name!r}: routes name categories that model {ref.model!r} never "
                         f"returns: {unknown}; its categories: {head.categories}"
                         + (f"; its groups: {groups}" if groups else ""))
    return head_classifier(head, backend, resources)


def head_classifier(head: Head, backend: ClassifierBackend, resources: ClassifierResources) -> Classifier:
    """A loaded head behind the configured backend: Triton when ``triton_url`` is set, else embedded
    (after checking that the encoder is built and fits the head)."""
    if backend.triton_url is not None:
        from .triton_classifier import TritonClassifier

        return TritonClassifier(head, resources.triton(backend.triton_url), timeout=backend.timeout_ms / 1000)
    variant = backend.encoder_variant or head.encoder_variant
    info = read_info(encoder_dir())
    info.model_path(variant)  # built? (the checksum is checked when it loads)
    if info.dim * len(head.views) != head.embedding_dim:
        raise ModelError(f"model {head.name!r} expects {head.embedding_dim} embedding inputs ({len(head.views)} "
                         f"view(s)); the encoder gives {info.dim} per view")
    return ModelClassifier(head, resources.runtime(variant), timeout=backend.timeout_ms / 1000)
