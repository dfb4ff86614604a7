"""The Triton Python-backend model behind every policy in ``triton_models/``.

Each model's ``1/model.py`` only imports ``TritonPythonModel`` from here, so
Triton and the embedded path run the same encoder, the same head inputs
(``head_inputs``: views and lexicon) and the same head math
(``model_classifier.head_outputs``): the same prompt gets the same decision
from both. Triton's dynamic batcher hands ``execute`` several requests at
once; their texts are encoded as one batch.

Inputs and outputs (see each ``config.pbtxt``):
- ``TEXT`` (BYTES, [1] per item): the conversation as ``conversation.classifier_text`` renders it;
- ``CATEGORY`` (BYTES, [1]): the decided label (the unknown label below the model's threshold);
- ``CONFIDENCES`` (FP32, [C]): every label's probability, in ``labels.json`` order;
- ``SCORES`` (FP32, [K + 1], complexity models only): each score, then the weighted overall.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .encoder import load_encoder
from .model_classifier import classifications_from_outputs, head_outputs, load_head


class TritonPythonModel:
    """Triton's Python-backend interface: ``initialize``, ``execute``, ``finalize``."""

    def initialize(self, args: dict[str, Any]) -> None:
        model_dir = Path(args["model_repository"])
        self.head = load_head(model_dir.parent, model_dir.name)
        threads = int(os.environ.get("LLM_ROUTER_ENCODER_THREADS", "1"))
        self.encoder = load_encoder(intra_op_num_threads=threads, variant=self.head.encoder_variant)

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils  # provided by Triton's Python stub

        texts: list[str] = []
        sizes: list[int] = []
        for request in requests:
            batch = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
            sizes.append(len(batch))
            texts.extend(item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)
                         for item in batch)
        views = len(self.head.views)
        parts = [part for text in texts for part in self.head.encoder_texts(text)]
        embeddings = self.encoder.encode(parts).reshape(len(texts), views * self.encoder.dim)
        probabilities, scores = head_outputs(self.head, embeddings, texts)
        responses = []
        start = 0
        for size in sizes:
            rows = slice(start, start + size)
            start += size
            decisions = classifications_from_outputs(self.head, probabilities[rows],
                                                     None if scores is None else scores[rows])
            categories = np.array([[(decision.category or "").encode()] for decision in decisions],
                                  dtype=np.object_)
            outputs = [pb_utils.Tensor("CATEGORY", categories),
                       pb_utils.Tensor("CONFIDENCES", probabilities[rows].astype(np.float32))]
            if scores is not None:
                outputs.append(pb_utils.Tensor("SCORES", self._with_overall(scores[rows])))
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses

    def _with_overall(self, scores: np.ndarray) -> np.ndarray:
        weights = np.array([self.head.score_weights.get(name, 0.0) for name in self.head.score_names],
                           dtype=np.float32)
        return np.concatenate([scores, (scores @ weights)[:, None]], axis=1).astype(np.float32)

    def finalize(self) -> None:
        self.encoder = None
