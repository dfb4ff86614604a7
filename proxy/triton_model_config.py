"""The Triton files of a model directory: ``config.pbtxt`` and ``1/model.py``.

Written by ``llm-router train`` next to the trained head and, with a GPU
instance group, by the operator. Every model runs the shared Python backend
(``triton_backend``); ``max_batch_size`` with dynamic batching lets Triton
gather concurrent requests into one encoder batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

MODEL_PY = '''"""Triton Python backend entry point: llm-router's shared classifier model."""

from llm_router.proxy.triton_backend import TritonPythonModel  # noqa: F401
'''


def model_config_pbtxt(name: str, *, classes: int, scores: int = 0, kind: Literal["KIND_CPU", "KIND_GPU"] = "KIND_CPU",
                       count: int = 1, max_batch_size: int = 32, max_queue_delay_us: int = 500) -> str:
    """``config.pbtxt`` for a classifier with ``classes`` labels and ``scores`` complexity scores
    (plus their weighted overall)."""
    outputs = [
        '  { name: "CATEGORY" data_type: TYPE_STRING dims: [ 1 ] }',
        f'  {{ name: "CONFIDENCES" data_type: TYPE_FP32 dims: [ {classes} ] }}',
    ]
    if scores:
        outputs.append(f'  {{ name: "SCORES" data_type: TYPE_FP32 dims: [ {scores + 1} ] }}')
    return "\n".join([
        f'name: "{name}"',
        'backend: "python"',
        f"max_batch_size: {max_batch_size}",
        f"dynamic_batching {{ max_queue_delay_microseconds: {max_queue_delay_us} }}",
        'input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] } ]',
        "output [",
        ",\n".join(outputs),
        "]",
        f"instance_group [ {{ kind: {kind} count: {count} }} ]",
        "",
    ])


def write_triton_files(model_dir: Path, *, classes: int, scores: int = 0, version: int = 1,
                       kind: Literal["KIND_CPU", "KIND_GPU"] = "KIND_CPU") -> None:
    """Write ``config.pbtxt`` and ``<version>/model.py`` into ``model_dir`` (named for the model)."""
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(model_config_pbtxt(model_dir.name, classes=classes, scores=scores,
                                                               kind=kind))
    (model_dir / str(version) / "model.py").write_text(MODEL_PY)
