"""The operator's RBAC, least privilege, as manifests (the Helm chart renders these; see RBAC.md).

Cluster-wide (no namespace list): one ClusterRole bound cluster-wide. With a
namespace list: the namespaced permissions go into a Role and RoleBinding per
watched namespace, and only kopf's cluster-scoped needs (discovering the CRDs
and namespaces) stay in a small ClusterRole.
"""

from __future__ import annotations

from typing import Any

from . import names
from .settings import OperatorSettings

ROLE_NAME = "llm-router-operator"

CLUSTER_RULES: list[dict[str, Any]] = [
    # kopf: find the custom resources' definitions and (with namespace patterns) the namespaces.
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
]

NAMESPACED_RULES: list[dict[str, Any]] = [
    # The custom resources: watched; patched for kopf's annotations; their status written.
    {"apiGroups": [names.GROUP], "resources": [names.LLM_PLURAL, names.POLICY_PLURAL],
     "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [names.GROUP], "resources": [f"{names.LLM_PLURAL}/status", f"{names.POLICY_PLURAL}/status"],
     "verbs": ["patch"]},
    # Secrets: listed and watched to resolve apiKeySecretRef (which keys exist); never read one by one, never written.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]},
    # The rendered objects: server-side apply (create + patch), read to skip unchanged ones, delete unneeded ones.
    {"apiGroups": [""], "resources": ["configmaps", "services"], "verbs": ["get", "list", "create", "patch", "delete"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "create", "patch", "delete"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"],
     "verbs": ["get", "list", "create", "patch", "delete"]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"],
     "verbs": ["get", "list", "create", "patch", "delete"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
     "verbs": ["get", "list", "create", "patch", "delete"]},
    # Events on the custom resources (core v1 Events, as kopf posts them too).
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]


def _subject(service_account: str, namespace: str) -> list[dict[str, str]]:
    return [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}]


def rbac_manifests(settings: OperatorSettings, service_account: str, operator_namespace: str) -> list[dict[str, Any]]:
    """ClusterRole(s), Role(s) and their bindings for the operator's service account."""
    labels = {names.LABEL_NAME: "llm-router", names.LABEL_COMPONENT: "operator", names.LABEL_PART_OF: "llm-router"}
    subjects = _subject(service_account, operator_namespace)
    if not settings.watch_namespaces:
        return [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": ROLE_NAME, "labels": labels}, "rules": CLUSTER_RULES + NAMESPACED_RULES},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": ROLE_NAME, "labels": labels},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE_NAME},
             "subjects": subjects},
        ]
    manifests: list[dict[str, Any]] = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": ROLE_NAME, "labels": labels}, "rules": CLUSTER_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": ROLE_NAME, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE_NAME},
         "subjects": subjects},
    ]
    for namespace in settings.watch_namespaces:
        manifests += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": ROLE_NAME, "namespace": namespace, "labels": labels}, "rules": NAMESPACED_RULES},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": ROLE_NAME, "namespace": namespace, "labels": labels},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE_NAME},
             "subjects": subjects},
        ]
    return manifests
