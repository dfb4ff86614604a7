"""Names shared by the operator's modules: the custom resources, the objects it renders, its labels."""

from __future__ import annotations

GROUP = "llm-router.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
LLM_KIND = "DownstreamLLM"
LLM_PLURAL = "downstreamllms"
POLICY_KIND = "RoutingPolicy"
POLICY_PLURAL = "routingpolicies"

CONFIG_MAP = "llm-router-config"
"""The proxy config: key ``config.yaml``, the ``RouterConfig`` as YAML."""
CONFIG_KEY = "config.yaml"
TRITON_MODELS_CONFIG_MAP = "llm-router-triton-models"
"""The ``config.pbtxt`` of every model Triton serves, keyed ``<model>.config.pbtxt``."""
PROXY = "llm-router"
"""Proxy Deployment, Service (the in-cluster OpenAI endpoint), HorizontalPodAutoscaler, PodDisruptionBudget
and NetworkPolicy."""
TRITON = "llm-router-triton"
"""Triton Deployment, Service and NetworkPolicy."""

PROXY_PORT = 8080
TRITON_HTTP_PORT = 8000
TRITON_GRPC_PORT = 8001
TRITON_METRICS_PORT = 8002

CONFIG_DIR = "/etc/llm-router"
SECRETS_DIR = "/var/run/secrets/llm-router"
"""Each referenced Secret is mounted at ``<SECRETS_DIR>/<secret name>/<key>``."""
CLIENT_KEYS_DIR = "/var/run/secrets/llm-router-clients"
"""The client keys Secret (``proxy.client_auth``) is mounted here; ``router.auth.keys_file`` is its key."""

REVISION_ANNOTATION = f"{GROUP}/config-revision"
"""On the proxy ConfigMap: the revision of the ``RouterConfig`` in it."""
APPLIED_HASH_ANNOTATION = f"{GROUP}/applied-hash"
"""On every rendered object: the hash of what the operator last applied, so an unchanged object is not written."""
TRITON_MODELS_ANNOTATION = f"{GROUP}/triton-models-hash"
"""On the Triton pod template: the hash of what Triton serves; a change rolls the Deployment."""

MANAGED_BY = "llm-router-operator"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VERSION = "app.kubernetes.io/version"
