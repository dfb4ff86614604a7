"""Rendering a namespace's router as Kubernetes objects (pure: settings and translation in, dicts out).

The jinja2 templates in ``templates/`` describe each object's spec; every value
goes in through ``tojson`` (JSON is YAML), so names and strings from custom
resources cannot change the document's structure. ``adopt`` then gives every
object its namespace, labels and owner references in one place.

Ownership: every object is owned by *all* RoutingPolicies of the namespace
(``controller: false`` on each reference, as only one owner may be the
controller). Garbage collection deletes an object when its last owner is gone,
so the router lives exactly as long as the namespace has a policy, and goes
away by itself when the last one is deleted, or with the namespace - no
finalizer, nothing the operator must be running for. (A DownstreamLLM alone
asks for no router.) The price: adding or removing a policy rewrites the
owner references of every object (metadata only; no pod restarts).

What changes what:

- a policy or LLM change changes only the ConfigMap ``llm-router-config``;
  the proxy sees kubelet's swap of the mounted directory and reloads live;
- a Secret newly referenced (or no longer referenced) adds (removes) a volume
  of the proxy Deployment: a rolling restart of the proxy, since a pod's volumes
  are fixed; a rotated key inside a mounted Secret is re-read without one;
- a change in what Triton serves (models, instance groups, GPU kind) changes
  the Triton ConfigMap and the hash annotation on Triton's pod template, which
  rolls Triton; nothing else does.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml
from llm_router.proxy.config import RouterConfig
from llm_router.proxy.triton_model_config import model_config_pbtxt

from . import names
from .model_catalog import ModelInfo
from .settings import OperatorSettings, ProxySettings

TEMPLATES = Path(__file__).parent / "templates"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Owner:
    """An object that owns the rendered ones (a RoutingPolicy)."""

    api_version: str
    kind: str
    name: str
    uid: str


@dataclass(frozen=True)
class SecretMount:
    secret: str
    keys: tuple[str, ...]

    @property
    def volume(self) -> str:
        """A DNS-label volume name: readable where the Secret's name allows it, a hash otherwise."""
        candidate = f"secret-{self.secret}"
        if len(candidate) <= 63 and DNS_LABEL.match(candidate):
            return candidate
        return "secret-" + hashlib.sha256(self.secret.encode()).hexdigest()[:16]

    @property
    def path(self) -> str:
        return f"{names.SECRETS_DIR}/{self.secret}"

    @property
    def items(self) -> list[dict[str, str]]:
        return [{"key": key, "path": key} for key in self.keys]


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                              autoescape=False, keep_trailing_newline=True)


def render_template(template: str, **context: Any) -> dict[str, Any]:
    text = _environment().get_template(template).render(names=names, **context)
    return yaml.safe_load(text)


def config_yaml(config: RouterConfig) -> str:
    """The ``config.yaml`` of the ConfigMap: the whole config, defaults included, in field order."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def labels(settings: OperatorSettings, namespace: str, component: str) -> dict[str, str]:
    return {
        names.LABEL_NAME: "llm-router",
        names.LABEL_INSTANCE: f"llm-router-{namespace}"[:63].rstrip("-."),
        names.LABEL_COMPONENT: component,
        names.LABEL_PART_OF: "llm-router",
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_VERSION: settings.version,
    }


def selector(component: str) -> dict[str, str]:
    """Pod selector labels: a subset of ``labels`` that never changes (a Deployment's selector is immutable)."""
    return {names.LABEL_NAME: "llm-router", names.LABEL_COMPONENT: component}


def adopt(obj: dict[str, Any], namespace: str, object_labels: dict[str, str], owners: list[Owner]) -> dict[str, Any]:
    """Namespace, labels and owner references for a rendered object, set in one place."""
    metadata = obj.setdefault("metadata", {})
    metadata["namespace"] = namespace
    metadata["labels"] = {**object_labels, **metadata.get("labels", {})}
    metadata["ownerReferences"] = [
        {"apiVersion": owner.api_version, "kind": owner.kind, "name": owner.name, "uid": owner.uid,
         "controller": False, "blockOwnerDeletion": False}
        for owner in sorted(owners, key=lambda owner: (owner.kind, owner.name))
    ]
    return obj


def triton_model_configs(models: dict[str, ModelInfo], settings: OperatorSettings) -> dict[str, str]:
    """``<model>.config.pbtxt`` -> Triton's config for that model on this cluster's hardware."""
    kind = "KIND_GPU" if settings.triton.gpus > 0 else "KIND_CPU"
    return {f"{name}.config.pbtxt": model_config_pbtxt(name, classes=info.classes, scores=info.scores, kind=kind,
                                                       count=settings.triton.instances_per_model)
            for name, info in sorted(models.items())}


def content_hash(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def termination_grace_seconds(proxy: ProxySettings) -> int:
    """The proxy pod's ``terminationGracePeriodSeconds``: the drain's delay + timeout + 5 s to exit."""
    return math.ceil(proxy.drain.delay_seconds + proxy.drain.timeout_seconds) + 5


def proxy_replicas_floor(proxy: ProxySettings) -> int:
    """The fewest proxy pods the settings ask for: ``replicas``, or the autoscaler's ``min_replicas``."""
    return proxy.autoscaling.min_replicas if proxy.autoscaling.enabled else proxy.replicas


def pod_disruption_budget_min_available(proxy: ProxySettings) -> int | None:
    """``minAvailable`` of the proxy's PodDisruptionBudget, or None for no budget: when it is off, or when
    ``min_available`` is not below the replicas (such a budget forbids every voluntary eviction, so a node
    drain would hang on the proxy's pods)."""
    budget = proxy.pod_disruption_budget
    if not budget.enabled or budget.min_available >= proxy_replicas_floor(proxy):
        return None
    return budget.min_available


def network_policy_peers(proxy: ProxySettings) -> list[dict[str, Any]]:
    """The ``from`` peers of the proxy's NetworkPolicy (empty: every source)."""
    peers = []
    for allowed in proxy.network_policy.allow_from:
        peer: dict[str, Any] = {}
        if allowed.namespace_labels is not None:
            peer["namespaceSelector"] = {"matchLabels": dict(allowed.namespace_labels)}
        if allowed.pod_labels is not None:
            peer["podSelector"] = {"matchLabels": dict(allowed.pod_labels)}
        peers.append(peer)
    return peers


def render_namespace(settings: OperatorSettings, namespace: str, config: RouterConfig,
                     secret_mounts: dict[str, tuple[str, ...]], served_models: dict[str, ModelInfo],
                     owners: list[Owner]) -> list[dict[str, Any]]:
    """Every object of one namespace's router, in the order to apply them (config before its readers)."""
    proxy_labels = labels(settings, namespace, "proxy")
    mounts = [SecretMount(secret, keys) for secret, keys in sorted(secret_mounts.items())]
    objects = [
        adopt(render_template("proxy-config.yaml.j2", config_yaml=config_yaml(config), revision=config.revision),
              namespace, labels(settings, namespace, "config"), owners),
    ]
    if served_models:
        triton_labels = labels(settings, namespace, "triton")
        model_configs = triton_model_configs(served_models, settings)
        resources = settings.triton.resources.model_dump()
        if settings.triton.gpus > 0:
            resources["limits"] = {**resources["limits"], "nvidia.com/gpu": str(settings.triton.gpus)}
        objects += [
            adopt(render_template("triton-models.yaml.j2", model_configs=model_configs), namespace, triton_labels,
                  owners),
            adopt(render_template("triton-deployment.yaml.j2", triton=settings.triton, models=sorted(served_models),
                                  models_hash=content_hash(model_configs), selector=selector("triton"),
                                  pod_labels=triton_labels, resources=resources,
                                  tolerations=[toleration.model_dump(exclude_none=True)
                                               for toleration in settings.triton.tolerations]),
                  namespace, triton_labels, owners),
            adopt(render_template("triton-service.yaml.j2", selector=selector("triton")), namespace, triton_labels,
                  owners),
        ]
        if settings.proxy.network_policy.enabled:
            objects.append(adopt(render_template("triton-network-policy.yaml.j2", selector=selector("triton"),
                                                 proxy_selector=selector("proxy")), namespace, triton_labels, owners))
    objects += [
        adopt(render_template("proxy-deployment.yaml.j2", proxy=settings.proxy, selector=selector("proxy"),
                              pod_labels=proxy_labels, secret_mounts=mounts,
                              config_path=f"{names.CONFIG_DIR}/{names.CONFIG_KEY}",
                              termination_grace_seconds=termination_grace_seconds(settings.proxy),
                              client_auth=settings.proxy.client_auth),
              namespace, proxy_labels, owners),
        adopt(render_template("proxy-service.yaml.j2", selector=selector("proxy")), namespace, proxy_labels, owners),
    ]
    if settings.proxy.autoscaling.enabled:
        objects.append(adopt(render_template("proxy-hpa.yaml.j2", proxy=settings.proxy), namespace, proxy_labels,
                             owners))
    min_available = pod_disruption_budget_min_available(settings.proxy)
    if min_available is not None:
        objects.append(adopt(render_template("proxy-pdb.yaml.j2", min_available=min_available,
                                             selector=selector("proxy")), namespace, proxy_labels, owners))
    if settings.proxy.network_policy.enabled:
        objects.append(adopt(render_template("proxy-network-policy.yaml.j2", selector=selector("proxy"),
                                             peers=network_policy_peers(settings.proxy)),
                             namespace, proxy_labels, owners))
    return objects
