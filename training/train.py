"""``llm-router train``: a classifier head on frozen sentence embeddings, as a Triton model directory.

The encoder (all-MiniLM-L6-v2, see ``embed``) is frozen and shared by every
policy, so a policy is only its head: a multinomial logistic regression
(``softmax(W x + b)``), plus for complexity one sigmoid regression per
dimension score. Its input ``x`` (``llm_router.proxy.head_inputs``) is the
embedding of each chosen view of the text (default: the ``lead`` view, the
first and last words, which holds the instruction and costs the encoder ~30
tokens however long the prompt) and, by default, a TF-IDF vector over the
lead view's words, with the lexicon fitted here and written beside the head.
That keeps models commit-sized (a few hundred KB), training to seconds on a
CPU once embeddings are cached, and the run time to one short encoder pass.

Honest numbers: the report is computed on held-out rows only: ``--heldout``
files, or else the rows of ``--data`` whose text falls under the data
README's sha256 rule. The regularisation strength is chosen on a validation
part of the *training* rows (whole groups or templates held back, by another
hash), never on the held-out rows.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from llm_router.proxy.head_inputs import VIEWS, VOCABULARY_FILE, Lexicon, fit_lexicon, view_text
from llm_router.proxy.jsonl_files import FileFormatError, is_jsonl, parse_jsonl, read_text
from llm_router.proxy.triton_model_config import write_triton_files

from .sources import DataError, SharedData, is_heldout, verify_manifest

POLICY_TYPES = ("task", "complexity", "custom", "quality")
TASK_LABELS = ["Brainstorming", "Chatbot", "Classification", "Closed QA", "Code Generation", "Extraction",
               "Open QA", "Other", "Rewrite", "Summarization", "Text Generation"]
COMPLEXITY_LABELS = ["Creativity", "Reasoning", "Contextual-Knowledge", "Few-Shot", "Domain-Knowledge",
                     "No-Label-Reason", "Constraint"]
SCORE_NAMES = ["creativity", "reasoning", "constraint", "domain_knowledge", "contextual_knowledge", "few_shot"]
SCORE_WEIGHTS = {"creativity": 0.35, "reasoning": 0.25, "constraint": 0.15, "domain_knowledge": 0.15,
                 "contextual_knowledge": 0.05, "few_shot": 0.05}
# Complexity rows without scores get their class's typical profile (same order as SCORE_NAMES).
DEFAULT_SCORES = {
    "Creativity": (0.9, 0.2, 0.1, 0.1, 0.0, 0.0), "Reasoning": (0.05, 0.8, 0.1, 0.3, 0.0, 0.0),
    "Contextual-Knowledge": (0.1, 0.3, 0.1, 0.1, 0.9, 0.0), "Few-Shot": (0.1, 0.2, 0.2, 0.1, 0.0, 0.8),
    "Domain-Knowledge": (0.05, 0.3, 0.1, 0.8, 0.0, 0.0), "No-Label-Reason": (0.1, 0.1, 0.0, 0.1, 0.0, 0.0),
    "Constraint": (0.3, 0.2, 0.9, 0.1, 0.0, 0.0),
}
UNKNOWN_LABEL = "Unknown"
C_GRID = (0.25, 1.0, 4.0, 16.0, 64.0)
SCORE_L2_GRID = (1e-4, 1e-3, 1e-2)
CONFIDENCE_THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
UNKNOWN_SHARE = 0.05
"""Share of validation prompts the task router's threshold turns into Unknown."""

log = logging.getLogger(__name__)


class TrainingError(Exception):
    """Bad input or settings: reported as one clear line, not a traceback."""


@dataclass
class Dataset:
    texts: list[str]
    labels: list[str]
    groups: list[str]
    origins: list[str]
    scores: np.ndarray | None = None
    files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, mask: np.ndarray) -> Dataset:
        pick = np.flatnonzero(mask)
        return Dataset([self.texts[i] for i in pick], [self.labels[i] for i in pick],
                       [self.groups[i] for i in pick], [self.origins[i] for i in pick],
                       None if self.scores is None else self.scores[pick], self.files)


# ------------------------------------------------------------------------------------------------ reading
def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV (header line) or JSONL (one object per line) file."""
    try:
        content = read_text(path)
        if not content.strip():
            raise TrainingError(f"{path}: the file is empty")
        if is_jsonl(path):
            return [line.row for line in parse_jsonl(content, path)]
    except FileFormatError as exc:
        raise TrainingError(str(exc)) from None
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(content), delimiter="\t" if suffix == ".tsv" else ",")
        rows = list(reader)
        if not rows:
            raise TrainingError(f"{path}: a header but no rows")
        return rows
    raise TrainingError(f"{path}: unsupported file type {suffix or '(none)'}; use .csv, .tsv or .jsonl")


def text_preparation() -> tuple[str, Any]:
    """The run-time view of a one-message prompt: the proxy's ``classifier_text`` when it has one.

    Training on exactly what the router will embed keeps long prompts (cut to the
    encoder's budget, beginning and end kept) the same in training and serving."""
    try:
        from llm_router.proxy.conversation import Turn, classifier_text
    except ImportError:
        return "raw", lambda text: text
    return "llm_router.proxy.conversation.classifier_text", lambda text: classifier_text([Turn("user", text)])


def load_dataset(paths: Sequence[Path], text_column: str, label_column: str, shared_dir: Path,
                 want_scores: bool) -> Dataset:
    """Texts and labels of every file; ``refs`` rows (built sets) resolved against the shared data."""
    texts: list[str] = []
    labels: list[str] = []
    groups: list[str] = []
    origins: list[str] = []
    scores: list[list[float] | None] = []
    shared: SharedData | None = None
    _, prepare = text_preparation()
    for path in paths:
        rows = read_rows(path)
        first = rows[0]
        missing = [c for c in (text_column, label_column) if c not in first]
        if missing:
            raise TrainingError(f"{path}: missing column(s) {', '.join(map(repr, missing))}; it has "
                                f"{', '.join(map(repr, first))} (use --text-column / --label-column)")
        for number, row in enumerate(rows, start=1):
            text, label = row.get(text_column), row.get(label_column)
            if not isinstance(text, str) or not isinstance(label, str | int) or str(label).strip() == "":
                raise TrainingError(f"{path}: row {number} lacks a text or a label")
            if row.get("refs"):
                if shared is None:
                    try:
                        shared = SharedData(shared_dir)
                        verify_manifest(shared, path.parent / "manifest.json")
                    except DataError as exc:
                        raise TrainingError(f"{path}: rows reference shared data: {exc}") from None
                try:
                    text = shared.resolve(text, list(row["refs"]))
                except DataError as exc:
                    raise TrainingError(f"{path}: row {number}: {exc}") from None
            if not text.strip():
                raise TrainingError(f"{path}: row {number} has an empty text")
            texts.append(prepare(text))
            labels.append(str(label).strip())
            groups.append(str(row.get("group") or text))
            origins.append(str(row.get("origin") or path.name))
            scores.append(_row_scores(row, path, number) if want_scores else None)
    score_array = None
    if want_scores:
        score_array = np.array([s if s is not None else DEFAULT_SCORES.get(label, (np.nan,) * len(SCORE_NAMES))
                                for s, label in zip(scores, labels, strict=True)], dtype=np.float64)
    return Dataset(texts, labels, groups, origins, score_array, [str(p) for p in paths])


def _row_scores(row: dict[str, Any], path: Path, number: int) -> list[float] | None:
    """Per-dimension targets from a ``scores`` object (JSONL) or ``<name>`` columns (CSV), else None."""
    source = row.get("scores") if isinstance(row.get("scores"), dict) else row
    if not all(name in source and source[name] not in ("", None) for name in SCORE_NAMES):
        return None
    try:
        values = [float(source[name]) for name in SCORE_NAMES]
    except (TypeError, ValueError):
        raise TrainingError(f"{path}: row {number}: scores must be numbers in [0, 1]") from None
    if not all(0.0 <= v <= 1.0 for v in values):
        raise TrainingError(f"{path}: row {number}: scores must be numbers in [0, 1]")
    return values


def label_order(policy_type: str, labels: Sequence[str]) -> list[str]:
    """The output order: the built-in class list for task/complexity, sorted for custom."""
    present = set(labels)
    if policy_type == "custom":
        return sorted(present)
    canonical = TASK_LABELS if policy_type == "task" else COMPLEXITY_LABELS
    unknown = sorted(present - set(canonical))
    if unknown:
        raise TrainingError(f"--policy-type {policy_type} takes only the labels {', '.join(canonical)}; found "
                            f"{', '.join(map(repr, unknown[:5]))} (use --policy-type custom for your own labels)")
    return [label for label in canonical if label in present]


# ----------------------------------------------------------------------------------------------- training
def hash_fraction(key: str, salt: str) -> bool:
    """A second, independent 20% split (for validation), so it never lines up with the held-out rule."""
    return hashlib.sha256(f"{salt}\0{key}".encode()).digest()[0] % 5 == 0


def fit_linear(x: np.ndarray, y: np.ndarray, classes: int, c: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression as (W (C, d), b (C,)): softmax(W x + b) gives the confidences."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced", random_state=seed, tol=1e-4)
    model.fit(x, y)
    weight = np.zeros((classes, x.shape[1]))
    bias = np.zeros(classes)
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # two classes: sklearn keeps one logit; softmax([0, z]) equals its sigmoid(z)
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    weight[model.classes_] = coef
    bias[model.classes_] = intercept
    return weight.astype(np.float32), bias.astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def fit_scores(x: np.ndarray, targets: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """One sigmoid regression per dimension: cross-entropy against soft targets in [0, 1], L2 on weights."""
    from scipy.optimize import minimize

    n, d = x.shape
    weights, biases = [], []
    for k in range(targets.shape[1]):
        t = targets[:, k]

        def loss(params: np.ndarray, t: np.ndarray = t) -> tuple[float, np.ndarray]:
            w, b = params[:d], params[d]
            p = np.clip(sigmoid(x @ w + b), 1e-7, 1 - 1e-7)
            value = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)) + l2 * w @ w
            residual = (p - t) / n
            return value, np.concatenate([x.T @ residual + 2 * l2 * w, [residual.sum()]])

        result = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 2000})
        weights.append(result.x[:d])
        biases.append(result.x[d])
    return np.array(weights, dtype=np.float32), np.array(biases, dtype=np.float32)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> float:
    return macro_f1_of(confusion(y_true, y_pred, classes))


def macro_f1_of(matrix: np.ndarray) -> float:
    """Mean F1 over the classes that occur, as true or predicted labels (scikit-learn's convention)."""
    occurring = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    return float(np.mean(per_class_metrics(matrix)[2][occurring])) if occurring.any() else 0.0


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def per_class_metrics(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix (rows: true, columns: predicted)."""
    tp = np.diag(matrix).astype(float)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return precision, recall, f1, support


def choose_c(x: np.ndarray, y: np.ndarray, groups: Sequence[str], classes: int, seed: int
             ) -> tuple[float, dict[str, float], np.ndarray | None]:
    """Pick C by macro-F1 on a validation part of the training rows (whole groups held back).

    Also returns the winning fit's probabilities on the validation rows (for the Unknown
    threshold), or None when the rows are too few to split."""
    validation = np.array([hash_fraction(g, "validation") for g in groups])
    if validation.all() or not validation.any() or len(set(y[~validation].tolist())) < 2:
        return 4.0, {}, None
    grid: dict[str, float] = {}
    probabilities: dict[float, np.ndarray] = {}
    for c in C_GRID:
        w, b = fit_linear(x[~validation], y[~validation], classes, c, seed)
        probabilities[c] = softmax(x[validation] @ w.T + b)
        grid[str(c)] = round(macro_f1(y[validation], np.argmax(probabilities[c], axis=1), classes), 4)
    best = max(C_GRID, key=lambda c: (grid[str(c)], -c))  # ties: the stronger regularisation
    return best, grid, probabilities[best]


def choose_unknown_threshold(probabilities: np.ndarray | None) -> float | None:
    """The highest confidence threshold that still classifies 95% of the validation rows.

    Below it the task router answers Unknown (the policy's default route): the
    least certain ~5% of prompts, where accuracy is lowest."""
    if probabilities is None or len(probabilities) < 20:
        return None
    confidence = probabilities.max(axis=1)
    return float(round(np.quantile(confidence, UNKNOWN_SHARE), 2))


def choose_l2(x: np.ndarray, targets: np.ndarray, groups: Sequence[str]) -> tuple[float, dict[str, float]]:
    validation = np.array([hash_fraction(g, "validation") for g in groups])
    if validation.all() or not validation.any():
        return 1e-3, {}
    grid: dict[str, float] = {}
    for l2 in SCORE_L2_GRID:
        w, b = fit_scores(x[~validation], targets[~validation], l2)
        grid[str(l2)] = round(float(np.mean(np.abs(sigmoid(x[validation] @ w.T + b) - targets[validation]))), 4)
    best = min(SCORE_L2_GRID, key=lambda l2: (grid[str(l2)], -l2))
    return best, grid


# ------------------------------------------------------------------------------------------------- report
def evaluate(probabilities: np.ndarray, y: np.ndarray, labels: list[str], origins: Sequence[str],
             groups_map: dict[str, str] | None) -> dict[str, Any]:
    classes = len(labels)
    predicted = np.argmax(probabilities, axis=1)
    matrix = confusion(y, predicted, classes)
    precision, recall, f1, support = per_class_metrics(matrix)
    confidence = probabilities[np.arange(len(y)), predicted]
    result: dict[str, Any] = {
        "rows": len(y),
        "accuracy": round(float(np.trace(matrix) / max(1, matrix.sum())), 4),
        "macro_f1": round(macro_f1_of(matrix), 4),
        "per_class": {label: {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4),
                              "f1": round(float(f1[i]), 4), "support": int(support[i])}
                      for i, label in enumerate(labels)},
        "confusion_matrix": {"labels": labels, "rows_true_columns_predicted": matrix.tolist()},
        "per_origin_accuracy": {},
        "confidence_thresholds": [
            {"threshold": t, "coverage": round(float(np.mean(confidence >= t)), 4),
             "accuracy_when_confident": round(float(np.mean((predicted == y)[confidence >= t])), 4)
             if (confidence >= t).any() else None}
            for t in CONFIDENCE_THRESHOLDS],
    }
    by_origin: dict[str, list[bool]] = {}
    for origin, correct in zip(origins, (predicted == y).tolist(), strict=True):
        by_origin.setdefault(origin, []).append(correct)
    result["per_origin_accuracy"] = {origin: {"rows": len(v), "accuracy": round(sum(v) / len(v), 4)}
                                     for origin, v in sorted(by_origin.items())}
    if groups_map:
        names = sorted(set(groups_map.values()))
        index = {name: i for i, name in enumerate(names)}
        true_groups = np.array([index[groups_map[labels[i]]] for i in y])
        predicted_groups = np.array([index[groups_map[labels[i]]] for i in predicted])
        group_matrix = confusion(true_groups, predicted_groups, len(names))
        _, _, group_f1, _ = per_class_metrics(group_matrix)
        result["groups"] = {
            "accuracy": round(float(np.trace(group_matrix) / max(1, group_matrix.sum())), 4),
            "macro_f1": round(macro_f1_of(group_matrix), 4),
            "per_group_f1": {name: round(float(group_f1[i]), 4) for i, name in enumerate(names)},
        }
    return result


def score_report(predicted: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    weights = np.array([SCORE_WEIGHTS[name] for name in SCORE_NAMES])
    report: dict[str, Any] = {}
    for k, name in enumerate(SCORE_NAMES):
        report[name] = {"mae": round(float(np.mean(np.abs(predicted[:, k] - targets[:, k]))), 4),
                        "pearson": _pearson(predicted[:, k], targets[:, k])}
    overall_p, overall_t = predicted @ weights, targets @ weights
    report["overall"] = {"mae": round(float(np.mean(np.abs(overall_p - overall_t))), 4),
                         "pearson": _pearson(overall_p, overall_t)}
    return report


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if np.std(a) == 0 or np.std(b) == 0:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 4)


def plot_confusion(matrix: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(6.0, 0.28 * len(labels) + 3)
    figure, axes = plt.subplots(figsize=(size, size * 0.9))
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(labels))
    font = 8 if len(labels) <= 20 else 5
    axes.set_xticks(ticks, labels, rotation=90, fontsize=font)
    axes.set_yticks(ticks, labels, fontsize=font)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if matrix[i, j]:
                    axes.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                              color="white" if normalised[i, j] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of true class")
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)


# ------------------------------------------------------------------------------------------------ writing
def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez`` but byte-for-byte reproducible (fixed zip timestamps), so retraining leaves no diff."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue(),
                             compress_type=zipfile.ZIP_DEFLATED)


def write_model(out: Path, policy_type: str, labels: list[str], weight: np.ndarray, bias: np.ndarray,
                score_head: tuple[np.ndarray, np.ndarray] | None, groups_map: dict[str, str] | None,
                views: Sequence[str] = ("full",), unknown_threshold: float | None = None,
                encoder_variant: str = "fp32", lexicon: Lexicon | None = None) -> None:
    from .embed import ENCODER_NAME

    version = out / "1"
    version.mkdir(parents=True, exist_ok=True)
    arrays = {"weight": weight.astype(np.float32), "bias": bias.astype(np.float32)}
    if score_head is not None:
        arrays["score_weight"], arrays["score_bias"] = (a.astype(np.float32) for a in score_head)
    write_npz(version / "head.npz", arrays)
    meta: dict[str, Any] = {"labels": labels, "policy_type": policy_type, "encoder": ENCODER_NAME,
                            "encoder_variant": encoder_variant, "views": list(views),
                            "unknown_label": UNKNOWN_LABEL if policy_type == "task" else None}
    if unknown_threshold is not None and policy_type == "task":
        meta["unknown_threshold"] = unknown_threshold
    if score_head is not None:
        meta["score_names"] = SCORE_NAMES
        meta["score_weights"] = SCORE_WEIGHTS
    if groups_map:
        meta["groups"] = {label: groups_map[label] for label in labels}
    (version / "labels.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    vocabulary = version / VOCABULARY_FILE
    if lexicon is not None:
        lexicon.write(version)
    elif vocabulary.exists():  # retrained without lexical features: a stale lexicon must not be picked up
        vocabulary.unlink()
    write_triton_files(out.resolve(), classes=len(labels), scores=len(SCORE_NAMES) if score_head is not None else 0)


# ----------------------------------------------------------------------------------------------- command
def add_train_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train`` on an argparse subparsers object (``llm-router train``)."""
    parser = subparsers.add_parser("train", help="train a policy's classifier head; writes a Triton model directory",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy-type", required=True, choices=POLICY_TYPES,
                        help="task / complexity: the built-in label sets; custom: any labels; quality: a "
                             "strong-vs-weak scorer trained on the RouteLLM outcomes in --data DIR")
    parser.add_argument("--data", required=True, nargs="+", type=Path, metavar="FILE",
                        help="training rows: .csv/.tsv with a header, or .jsonl")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="model directory to write (its name is the Triton model name)")
    parser.add_argument("--heldout", nargs="+", type=Path, metavar="FILE",
                        help="evaluation rows; default: the rows of --data under the sha256 rule")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--views", default=None, metavar="VIEWS",
                        help="comma-separated views of the text whose embeddings the head reads: 'lead' (default: "
                             "the first 16 and last 8 words), 'full' (the whole text, up to 256 tokens) or both "
                             "(see llm_router.proxy.head_inputs); quality: default 'lead,full'")
    parser.add_argument("--lexical", default=None, choices=[*VIEWS, "none"],
                        help="the view whose words make TF-IDF features (default lead; quality: full), or none")
    parser.add_argument("--min-df", type=int, default=2,
                        help="lexical features: keep words seen in at least this many training texts (default 2)")
    parser.add_argument("--encoder-variant", default="int8", choices=["int8", "fp32"],
                        help="encoder precision to train on and to serve with (default int8: ~2.5x faster on a CPU)")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--groups", type=Path, metavar="JSON",
                        help="a {label: group} map stored in labels.json, so a policy can route by group")
    parser.add_argument("--shared-data", type=Path, default=Path("../shared/data"),
                        help="where rows with 'refs' (training/data/*.jsonl) find their text (default ../shared/data)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="embedding cache (default: <$LLM_ROUTER_CACHE or ~/.cache/llm-router>/embeddings)")
    parser.add_argument("--no-cache", action="store_true", help="embed everything afresh and cache nothing")
    parser.add_argument("--threads", type=int, default=2, help="encoder threads (onnxruntime or torch)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_train_command)
    return parser


def run_train_command(args: argparse.Namespace) -> int:
    """Run ``train``; returns the exit status (2 with one line on stderr for bad input)."""
    if args.policy_type == "quality":  # its own data (the RouteLLM outcomes) and report: training/quality.py
        from .quality import run_quality_training

        return run_quality_training(args)
    try:
        report = train(args)
    except (TrainingError, DataError) as exc:
        print(f"llm-router train: error: {exc}", file=sys.stderr)
        return 2
    held = report["heldout"]
    print(f"{report['data']['train_rows']} training rows, {held['rows']} held-out rows "
          f"({report['data']['heldout_from']}): accuracy {held['accuracy']:.4f}, macro-F1 {held['macro_f1']:.4f}")
    if "groups" in held:
        print(f"grouped into {len(set(report['groups'].values()))} routes: accuracy {held['groups']['accuracy']:.4f}")
    print(f"wrote {args.out}")
    return 0


def train(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    want_scores = args.policy_type == "complexity"
    args.views, args.lexical = args.views or "lead", args.lexical or "lead"
    views = parse_views(args.views)
    data = load_dataset(args.data, args.text_column, args.label_column, args.shared_data, want_scores)
    if args.heldout:
        heldout = load_dataset(args.heldout, args.text_column, args.label_column, args.shared_data, want_scores)
        train_set, heldout_from = data, "--heldout files"
    else:
        mask = np.array([is_heldout(text) for text in data.texts])
        train_set, heldout, heldout_from = data.subset(~mask), data.subset(mask), "sha256 rule on --data"
        if len(heldout) == 0:
            raise TrainingError("no row of --data falls under the held-out rule (about 1 in 5 does); "
                                "give more rows or --heldout")
    labels = label_order(args.policy_type, train_set.labels)
    if len(labels) < 2:
        raise TrainingError(f"need at least two labels to train a classifier; the training rows only have "
                            f"{labels or 'none'}")
    unseen = sorted(set(heldout.labels) - set(labels))
    if unseen:
        raise TrainingError(f"held-out labels never seen in training: {', '.join(map(repr, unseen[:5]))}")
    if want_scores and (np.isnan(train_set.scores).any() or np.isnan(heldout.scores).any()):  # type: ignore[arg-type]
        raise TrainingError("complexity rows need scores (a 'scores' object or one column per dimension: "
                            f"{', '.join(SCORE_NAMES)}) unless their label is a built-in complexity class")
    groups_map = _load_groups(args.groups, labels) if args.groups else None
    timings["load_s"] = time.perf_counter() - started

    from .embed import EmbeddingCache, default_cache_dir, embed_texts, load_embedder

    t = time.perf_counter()
    embedder = load_embedder(threads=args.threads, variant=args.encoder_variant)
    cache = None if args.no_cache else EmbeddingCache(args.cache_dir or default_cache_dir())
    lexicon = None
    if args.lexical != "none":
        try:
            lexicon = fit_lexicon(train_set.texts, args.lexical, min_df=args.min_df)
        except ValueError as exc:
            raise TrainingError(f"lexical features: {exc} (use --lexical none or --min-df 1)") from None

    def features(dataset: Dataset, name: str) -> Any:
        """The head's input (``head_inputs``): one embedding per view, side by side, then the lexical vector."""
        blocks: list[Any] = [embed_texts([view_text(text, view) for text in dataset.texts], embedder, cache,
                                         args.batch_size, not args.quiet, f"embedding {name} ({view})")
                             for view in views]
        if lexicon is None:
            return np.hstack(blocks)
        from scipy import sparse

        return sparse.hstack([sparse.csr_matrix(block) for block in blocks]
                             + [sparse.csr_matrix(lexicon.vectors(dataset.texts))], format="csr")

    x_train, x_held = features(train_set, "train"), features(heldout, "held-out")
    timings["embed_s"] = time.perf_counter() - t

    t = time.perf_counter()
    index = {label: i for i, label in enumerate(labels)}
    y_train = np.array([index[label] for label in train_set.labels])
    y_held = np.array([index[label] for label in heldout.labels])
    c, c_grid, validation_probabilities = choose_c(x_train, y_train, train_set.groups, len(labels), args.seed)
    unknown_threshold = choose_unknown_threshold(validation_probabilities) if args.policy_type == "task" else None
    weight, bias = fit_linear(x_train, y_train, len(labels), c, args.seed)
    score_head = None
    l2, l2_grid = None, {}
    if want_scores:
        l2, l2_grid = choose_l2(x_train, train_set.scores, train_set.groups)  # type: ignore[arg-type]
        score_head = fit_scores(x_train, train_set.scores, l2)  # type: ignore[arg-type]
    timings["fit_s"] = time.perf_counter() - t

    probabilities = softmax(x_held @ weight.T + bias)
    result = evaluate(probabilities, y_held, labels, heldout.origins, groups_map)
    if unknown_threshold is not None:
        confident = probabilities.max(axis=1) >= unknown_threshold
        result["at_unknown_threshold"] = {
            "threshold": unknown_threshold, "unknown_share": round(float(1 - confident.mean()), 4),
            "accuracy_of_the_rest": round(float(np.mean((np.argmax(probabilities, axis=1) == y_held)[confident])), 4)
            if confident.any() else None}
    args.out.mkdir(parents=True, exist_ok=True)
    write_model(args.out, args.policy_type, labels, weight, bias, score_head, groups_map, views, unknown_threshold,
                args.encoder_variant, lexicon)
    plot_confusion(np.array(result["confusion_matrix"]["rows_true_columns_predicted"]), labels,
                   args.out / "confusion.png", f"{args.out.resolve().name}: held-out ({len(y_held)} rows)")
    report: dict[str, Any] = {
        "policy_type": args.policy_type,
        "model": args.out.resolve().name,
        "seed": args.seed,
        "encoder": {"name": "all-MiniLM-L6-v2", "backend": embedder.backend, "variant": args.encoder_variant},
        "text_preparation": text_preparation()[0],
        "labels": labels,
        "data": {
            "train_files": [str(p) for p in args.data], "heldout_files": [str(p) for p in args.heldout or []],
            "heldout_from": heldout_from, "train_rows": len(train_set), "heldout_rows": len(heldout),
            "train_per_class": dict(sorted(Counter(train_set.labels).items())),
            "heldout_per_class": dict(sorted(Counter(heldout.labels).items())),
        },
        "head": {"type": "linear", "views": views, "input_dim": int(weight.shape[1]),
                 "lexicon": None if lexicon is None else {"view": lexicon.view, "terms": lexicon.size,
                                                          "min_df": args.min_df},
                 "C": c,
                 "validation_macro_f1_by_C": c_grid, "unknown_threshold": unknown_threshold,
                 "selection": "C with the best macro-F1 on a validation 20% of the training rows (by group hash)"},
        "heldout": result,
    }
    if want_scores and score_head is not None:
        predicted_scores = sigmoid(x_held @ score_head[0].T + score_head[1])
        report["head"]["score_l2"] = l2
        report["head"]["validation_score_mae_by_l2"] = l2_grid
        report["scores"] = score_report(predicted_scores, heldout.scores)  # type: ignore[arg-type]
    if groups_map:
        report["groups"] = {label: groups_map[label] for label in labels}
    timings["total_s"] = time.perf_counter() - started
    report["timings_s"] = {name: round(value, 2) for name, value in timings.items()}
    (args.out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return report


def parse_views(spec: str) -> list[str]:
    views = [view.strip() for view in spec.split(",") if view.strip()]
    if not views or len(set(views)) != len(views) or not set(views) <= set(VIEWS):
        raise TrainingError(f"--views {spec!r}: expected distinct views from {', '.join(VIEWS)}, e.g. 'lead' or "
                            "'full,lead'")
    return views


def _load_groups(path: Path, labels: list[str]) -> dict[str, str]:
    try:
        groups = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TrainingError(f"--groups {path}: not a readable JSON object ({exc})") from None
    if not isinstance(groups, dict) or not all(isinstance(v, str) for v in groups.values()):
        raise TrainingError(f"--groups {path}: expected a JSON object {{label: group name}}")
    missing = [label for label in labels if label not in groups]
    if missing:
        raise TrainingError(f"--groups {path}: no group for label(s) {', '.join(map(repr, missing[:5]))}")
    return {label: groups[label] for label in labels}


def main(argv: list[str] | None = None) -> int:
    """``python -m llm_router.training.train ...``: the same command without the proxy's CLI."""
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="llm-router")
    add_train_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    return run_train_command(args)


if __name__ == "__main__":
    sys.exit(main())
