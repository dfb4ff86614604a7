"""What the model repository offers: for each model, the categories it returns and its output shapes.

The operator reads the same repository the images carry (its own copy), to check a policy's routes
against a model's categories before the proxy would refuse the whole config, and to render the
``config.pbtxt`` Triton serves each model with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llm_router.proxy.model_classifier import ModelError, load_head, resolve_repository
from llm_router.proxy.quality import STRONG_LABEL

BUILT_IN_MODELS = {"TaskRouter": "task_router", "ComplexityRouter": "complexity_router"}
"""RoutingPolicy ``classifier.type`` -> the built-in model that serves it."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    categories: tuple[str, ...]
    """Everything a route may name: what the model can return (the unknown label included), then
    the groups of its labels (``labels.json`` ``groups``), which a policy may route instead."""
    classes: int
    scores: int
    """Complexity scores it returns besides the classes (0 for plain classifiers)."""
    policy_type: str = "custom"
    """``labels.json`` ``policy_type``: ``task``, ``complexity``, ``custom`` or ``quality``."""

    @property
    def is_quality(self) -> bool:
        """A cost-quality model (``type: quality`` policies): trained as one, with the label the
        proxy's quality score needs."""
        return self.policy_type == "quality" and STRONG_LABEL in self.categories


def read_catalog(repository: str | None) -> dict[str, ModelInfo]:
    """Every loadable model of the repository by name; broken model directories are left out."""
    root = resolve_repository(repository)
    catalog: dict[str, ModelInfo] = {}
    if not root.is_dir():
        return catalog
    for directory in sorted(path for path in Path(root).iterdir() if path.is_dir()):
        try:
            head = load_head(root, directory.name)
        except ModelError:
            continue
        catalog[head.name] = ModelInfo(head.name, tuple(head.route_names), len(head.labels), len(head.score_names),
                                       head.policy_type)
    return catalog
