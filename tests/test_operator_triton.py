"""What the operator renders for Triton, run for real: the initContainer's script assembles the model
repository from the rendered ConfigMap, the ``tritonserver`` of the nvidia-pytriton wheel serves it
(CPU instances, as rendered with ``triton.gpus: 0``), and the proxy config from the rendered ConfigMap
classifies through it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from llm_router.operator import names
from llm_router.operator.model_catalog import read_catalog
from llm_router.operator.render import render_namespace
from llm_router.operator.settings import OperatorSettings
from llm_router.operator.translate import ConfigOptions, NamespaceResources, translate
from llm_router.proxy.active_config import ActiveConfig
from llm_router.proxy.classifiers import ClassifierInput
from llm_router.proxy.config_file import parse_config
from llm_router.proxy.conversation import Turn
from llm_router.proxy.model_classifier import DEFAULT_MODEL_REPOSITORY
from llm_router.proxy.triton_server import TritonServer
from operator_resources import downstream_llm, routing_policy

SETTINGS = OperatorSettings.model_validate({"triton": {"gpus": 0, "instances_per_model": 2}})


def rendered_namespace() -> dict[str, dict[str, Any]]:
    policies = [routing_policy("tasks", routes={"Code Generation": ["big"], "Brainstorming": ["small"]}),
                routing_policy("complex", classifier={"type": "ComplexityRouter"}, routes={"Reasoning": ["big"]}),
                routing_policy("cost", classifier={"type": "Quality", "model": "quality_router", "threshold": 0.5},
                               routes={"strong": ["big"], "weak": ["small"]})]
    translation = translate(
        NamespaceResources("team-a", [downstream_llm("big"), downstream_llm("small")], policies, {},
                           read_catalog(None)),
        ConfigOptions(model_repository=str(DEFAULT_MODEL_REPOSITORY), classifier_timeout_ms=10_000))
    assert translation.config is not None
    objects = render_namespace(SETTINGS, "team-a", translation.config, translation.secret_mounts,
                               translation.served_models, [])
    return {f"{obj['kind']}/{obj['metadata']['name']}": obj for obj in objects}


def assemble_repository(objects: dict[str, dict[str, Any]], root: Path) -> Path:
    """Run the initContainer's own command, with this checkout's repository as the image's and temporary
    directories for its two volumes."""
    configs, models = root / "model-configs", root / "models"
    configs.mkdir()
    models.mkdir()
    for key, text in objects["ConfigMap/llm-router-triton-models"]["data"].items():
        (configs / key).write_text(text)
    init = objects["Deployment/llm-router-triton"]["spec"]["template"]["spec"]["initContainers"][0]
    command = list(init["command"])
    assert command[4:7] == [SETTINGS.triton.model_repository, "/model-configs", "/models"]
    command[4:7] = [str(DEFAULT_MODEL_REPOSITORY), str(configs), str(models)]
    subprocess.run(command, check=True, timeout=60)
    return models


async def test_rendered_triton_serves_the_policies(tmp_path: Path, encoder_cache: Path, monkeypatch: Any) -> None:
    objects = rendered_namespace()
    repository = assemble_repository(objects, tmp_path)
    assert sorted(path.name for path in repository.iterdir()) == ["complexity_router", "quality_router",
                                                                  "task_router"]
    assert "kind: KIND_CPU count: 2" in (repository / "task_router" / "config.pbtxt").read_text()
    monkeypatch.setenv("LLM_ROUTER_CACHE", str(encoder_cache))  # the Python backend's encoder
    config = parse_config(objects["ConfigMap/llm-router-config"]["data"][names.CONFIG_KEY])
    assert config.router.classifier_backend.triton_url == "llm-router-triton.team-a.svc:8001"
    with TritonServer(repository) as triton:
        backend = config.router.classifier_backend.model_copy(update={"triton_url": triton.grpc_url})
        active = ActiveConfig.build(config.model_copy(update={"router": config.router.model_copy(
            update={"classifier_backend": backend})}))
        request = ClassifierInput([Turn("user", "Write a Python function that returns the n-th Fibonacci number.")],
                                  {})
        tasks = await active.classifiers["tasks"].classify(request)
        assert active.classifiers["tasks"].kind == "triton"
        assert tasks.category == "Code Generation"
        complexity = await active.classifiers["complex"].classify(request)
        assert complexity.category in read_catalog(None)["complexity_router"].categories
        # The quality model through Triton: a tier, and the same score as the embedded head gives.
        cost = await active.classifiers["cost"].classify(request)
        assert active.classifiers["cost"].kind == "triton"
        assert cost.category in ("strong", "weak")
        assert (cost.category == "strong") == (cost.scores["quality_score"] >= 0.5)
    embedded = ActiveConfig.build(config.model_copy(update={"router": config.router.model_copy(
        update={"classifier_backend": backend.model_copy(update={"triton_url": None})})}))
    alone = await embedded.classifiers["cost"].classify(request)
    assert alone.category == cost.category
    assert abs(alone.scores["quality_score"] - cost.scores["quality_score"]) < 1e-3
