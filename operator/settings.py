"""The operator's own configuration: what every rendered router looks like.

Read from a YAML file (``--settings`` / ``LLM_ROUTER_OPERATOR_SETTINGS``; the
Helm chart will render it from its values) and then overridden by a few
environment variables. Everything has a default that works on a cluster with
the project's images; images carry pinned tags, never ``latest``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from llm_router.proxy.config import DrainSettings
from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import names

FIELD_MANAGER = "llm-router-operator"
"""The server-side apply field manager of every object the operator writes."""
SETTINGS_ENV = "LLM_ROUTER_OPERATOR_SETTINGS"
NAMESPACES_ENV = "LLM_ROUTER_OPERATOR_NAMESPACES"
"""Comma-separated namespaces to watch; overrides ``watch_namespaces``."""

Quantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")]
SecretName = Annotated[str, Field(max_length=253,
                                  pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
SecretKey = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^\.?[-_a-zA-Z0-9][-._a-zA-Z0-9]*$")]
"""A Secret data key as Kubernetes allows it: not ``.`` or ``..``, not starting with ``..`` (a file name in
the mount)."""
LabelKey = Annotated[str, Field(max_length=316, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*"
                                                      r"[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")]
LabelValue = Annotated[str, Field(max_length=63, pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Settings):
    """Container requests and limits (Kubernetes quantities)."""

    requests: dict[str, Quantity] = {}
    limits: dict[str, Quantity] = {}


class Toleration(_Settings):
    key: str | None = None
    operator: Annotated[str, Field(pattern=r"^(Exists|Equal)$")] = "Equal"
    value: str | None = None
    effect: Annotated[str, Field(pattern=r"^(NoSchedule|PreferNoSchedule|NoExecute)$")] | None = None
    tolerationSeconds: int | None = None


class Autoscaling(_Settings):
    """A HorizontalPodAutoscaler for the proxy; off means a fixed ``replicas``."""

    enabled: bool = False
    min_replicas: Annotated[int, Field(ge=1)] = 2
    max_replicas: Annotated[int, Field(ge=1)] = 10
    target_cpu_utilization: Annotated[int, Field(ge=1, le=100)] = 70

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"autoscaling: min_replicas ({self.min_replicas}) exceeds max_replicas "
                             f"({self.max_replicas})")
        return self


class PodDisruptionBudget(_Settings):
    """A PodDisruptionBudget (policy/v1) for the proxy Deployment.

    Rendered only while ``min_available`` is below the proxy's replicas (``autoscaling.min_replicas`` with
    autoscaling): otherwise it would forbid every voluntary eviction and a node drain would hang."""

    enabled: bool = True
    min_available: Annotated[int, Field(ge=0)] = 1


class AllowedPeer(_Settings):
    """Who may reach the proxy on its port: pods matching ``pod_labels`` in namespaces matching
    ``namespace_labels``. ``namespace_labels`` unset: the proxy's own namespace; ``{}``: every namespace.
    ``pod_labels`` unset: every pod of those namespaces."""

    namespace_labels: dict[LabelKey, LabelValue] | None = None
    pod_labels: dict[LabelKey, LabelValue] | None = None

    @model_validator(mode="after")
    def _something_selected(self) -> AllowedPeer:
        if self.namespace_labels is None and self.pod_labels is None:
            raise ValueError("network_policy.allow_from: each entry needs namespace_labels or pod_labels (or both)")
        return self


class NetworkPolicySettings(_Settings):
    """NetworkPolicies for the proxy (ingress on its port only) and Triton (ingress on 8000-8002 only from
    the proxy pods of the namespace). Egress is not restricted: the LLMs are outside."""

    enabled: bool = False
    allow_from: list[AllowedPeer] = []
    """Who may reach the proxy; empty: every source (any pod in any namespace, and the nodes)."""


class ClientAuth(_Settings):
    """Client API keys for the proxy (``router.auth``) from a Secret of each served namespace, mounted
    read-only; the Secret ``secret_name`` must hold the keys file under ``secret_key``."""

    enabled: bool = False
    secret_name: SecretName | None = None
    secret_key: SecretKey = "keys.yaml"

    @model_validator(mode="after")
    def _secret_when_enabled(self) -> ClientAuth:
        if self.enabled and self.secret_name is None:
            raise ValueError("client_auth.enabled needs client_auth.secret_name")
        return self

    @property
    def keys_file(self) -> str | None:
        """``router.auth.keys_file`` in the proxy config: where the Secret's key is mounted (None: no auth)."""
        return f"{names.CLIENT_KEYS_DIR}/{self.secret_key}" if self.enabled else None


class ProxySettings(_Settings):
    image: str = "ghcr.io/llm-router/llm-router:0.1.0"
    """Carries the ``llm-router`` console script and the model repository at ``model_repository``."""
    image_pull_policy: Annotated[str, Field(pattern=r"^(Always|IfNotPresent|Never)$")] = "IfNotPresent"
    replicas: Annotated[int, Field(ge=0)] = 2
    resources: Resources = Resources(requests={"cpu": "250m", "memory": "256Mi"}, limits={"memory": "1Gi"})
    autoscaling: Autoscaling = Autoscaling()
    model_repository: str = "/opt/llm-router/triton_models"
    """Where the proxy image keeps the model repository; the proxy reads the labels of Triton-served
    models from it."""
    classifier_timeout_ms: Annotated[float, Field(gt=0, le=60_000)] = 200.0
    log_prompts: bool = False
    log_format: Literal["text", "json"] = "json"
    """``llm-router serve --log-format``."""
    drain: DrainSettings = DrainSettings()
    """``router.drain`` of the config; the pod's ``terminationGracePeriodSeconds`` is delay + timeout + 5."""
    pod_disruption_budget: PodDisruptionBudget = PodDisruptionBudget()
    network_policy: NetworkPolicySettings = NetworkPolicySettings()
    client_auth: ClientAuth = ClientAuth()


class TritonSettings(_Settings):
    image: str = "ghcr.io/llm-router/llm-router-triton:0.1.0"
    """Triton with the Python backend and ``llm_router`` installed; its model repository is at
    ``model_repository``."""
    image_pull_policy: Annotated[str, Field(pattern=r"^(Always|IfNotPresent|Never)$")] = "IfNotPresent"
    replicas: Annotated[int, Field(ge=0)] = 1
    gpus: Annotated[int, Field(ge=0)] = 1
    """``nvidia.com/gpu`` per pod; 0 runs the models on CPU (``KIND_CPU``), for clusters without GPUs."""
    instances_per_model: Annotated[int, Field(ge=1, le=16)] = 1
    """Triton instance group count of every served model."""
    resources: Resources = Resources(requests={"cpu": "1", "memory": "2Gi"}, limits={"memory": "8Gi"})
    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
    model_repository: str = "/opt/llm-router/triton_models"
    """Where the Triton image keeps the model repository the served models are copied from."""


class OperatorSettings(_Settings):
    """Everything the operator needs besides the custom resources."""

    watch_namespaces: list[Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]] = []
    """Namespaces to watch; empty watches all namespaces."""
    field_manager: str = FIELD_MANAGER
    proxy: ProxySettings = ProxySettings()
    triton: TritonSettings = TritonSettings()
    version: str = "0.1.0"
    """``app.kubernetes.io/version`` of the rendered objects."""
    model_repository: str | None = None
    """The model repository the operator itself reads labels from, to check routes and render Triton's
    model configs: the same content as the images' repository. ``None``: the source tree's
    ``triton_models/``."""

    @classmethod
    def load(cls, path: str | Path | None = None, environ: dict[str, str] | None = None) -> OperatorSettings:
        """Settings from ``path`` (or the file named by ``LLM_ROUTER_OPERATOR_SETTINGS``), then the environment."""
        environ = dict(os.environ) if environ is None else environ
        path = path or environ.get(SETTINGS_ENV)
        data: dict[str, Any] = {}
        if path:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            if loaded is not None and not isinstance(loaded, dict):
                raise ValueError(f"{path}: operator settings must be a mapping")
            data = loaded or {}
        namespaces = environ.get(NAMESPACES_ENV)
        if namespaces is not None:
            data["watch_namespaces"] = [name.strip() for name in namespaces.split(",") if name.strip()]
        return cls.model_validate(data)
