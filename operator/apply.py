"""The Kubernetes boundary: everything the operator reads from or writes to the API server.

``ClusterApi`` is the whole interface the reconcile uses; ``KubernetesApi``
implements it with the official client (dynamic client, plain dicts in and
out). Tests replace exactly this boundary with an in-memory fake. Decisions
(what to write, whether anything changed) live in the reconcile, not here.

Secrets are read for the names of their keys only; values never leave this
module (nor enter it, beyond the client's response).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from . import names

log = logging.getLogger(__name__)

MANAGED_KINDS = (("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "Deployment"),
                 ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
                 ("networking.k8s.io/v1", "NetworkPolicy"))
"""The kinds of object the operator renders, which it also deletes when no longer wanted."""


class ApiError(Exception):
    """A request the API server refused or could not answer; the message is safe to show in a status."""


class ClusterApi(Protocol):
    def list_custom(self, namespace: str, plural: str) -> list[dict[str, Any]]:
        """The namespace's DownstreamLLMs or RoutingPolicies (``plural``), as dicts."""

    def secret_keys(self, namespace: str) -> dict[str, frozenset[str]]:
        """Secret name -> the keys of its ``data`` and ``stringData``, for every Secret of the namespace."""

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The live object, or None when there is none."""

    def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply ``obj`` with the operator's field manager, forcing conflicts."""

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None: ...

    def list_managed(self, namespace: str) -> list[dict[str, Any]]:
        """Objects of ``MANAGED_KINDS`` in the namespace that carry the operator's managed-by label."""

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Replace the fields of a custom resource's status subresource given in ``status``."""

    def post_event(self, involved: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        """A Kubernetes Event about a custom resource."""


class KubernetesApi:
    """``ClusterApi`` on a real API server (in-cluster config or ``KUBECONFIG``)."""

    def __init__(self, field_manager: str, api_client: Any = None, discovery_cache: str | None = None) -> None:
        from kubernetes import client, config, dynamic

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = client.ApiClient()
        self.field_manager = field_manager
        self.dynamic = dynamic.DynamicClient(api_client, cache_file=discovery_cache)

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def _call(self, what: str, action: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic.exceptions import DynamicApiError

        try:
            return action()
        except DynamicApiError as exc:
            raise ApiError(f"{what}: {exc.status} {exc.reason}: {exc.summary()}") from None
        except ApiException as exc:
            raise ApiError(f"{what}: {exc.status} {exc.reason}") from None

    def list_custom(self, namespace: str, plural: str) -> list[dict[str, Any]]:
        kind = names.LLM_KIND if plural == names.LLM_PLURAL else names.POLICY_KIND
        result = self._call(f"list {plural}", lambda: self._resource(names.API_VERSION, kind).get(namespace=namespace))
        return [item.to_dict() for item in result.items]

    def secret_keys(self, namespace: str) -> dict[str, frozenset[str]]:
        result = self._call("list secrets", lambda: self._resource("v1", "Secret").get(namespace=namespace))
        keys: dict[str, frozenset[str]] = {}
        for item in result.items:
            data = item.to_dict()
            keys[data["metadata"]["name"]] = frozenset((data.get("data") or {}) | (data.get("stringData") or {}))
        return keys

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        def fetch() -> dict[str, Any] | None:
            try:
                return self._resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
            except NotFoundError:
                return None

        return self._call(f"get {kind} {name}", fetch)

    def apply(self, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        self._call(f"apply {obj['kind']} {metadata['name']}", lambda: self._resource(obj["apiVersion"], obj["kind"])
                   .server_side_apply(body=obj, name=metadata["name"], namespace=metadata["namespace"],
                                      field_manager=self.field_manager, force_conflicts=True))

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self._call(f"delete {kind} {name}", lambda: self._resource(api_version, kind).delete(
            name=name, namespace=namespace, body={"propagationPolicy": "Background"}))

    def list_managed(self, namespace: str) -> list[dict[str, Any]]:
        selector = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
        found: list[dict[str, Any]] = []
        for api_version, kind in MANAGED_KINDS:
            result = self._call(f"list {kind}", lambda api_version=api_version, kind=kind: self._resource(
                api_version, kind).get(namespace=namespace, label_selector=selector))
            found += [item.to_dict() for item in result.items]
        return found

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        kind = names.LLM_KIND if plural == names.LLM_PLURAL else names.POLICY_KIND
        resource = self._resource(names.API_VERSION, kind).subresources["status"]
        self._call(f"patch status of {kind} {name}", lambda: self.dynamic.patch(
            resource, body={"status": status}, name=name, namespace=namespace,
            content_type="application/merge-patch+json"))

    def post_event(self, involved: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        metadata = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
            "involvedObject": {"apiVersion": involved["apiVersion"], "kind": involved["kind"],
                               "name": metadata["name"], "namespace": metadata["namespace"],
                               "uid": metadata.get("uid")},
            "type": event_type, "reason": reason, "message": message[:1024],
            "source": {"component": names.MANAGED_BY}, "reportingComponent": names.MANAGED_BY,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            self._call("post event", lambda: self._resource("v1", "Event").create(body=event,
                                                                                  namespace=metadata["namespace"]))
        except ApiError as exc:  # an event is a courtesy: never fail a reconcile for it
            log.warning("could not post event %s on %s/%s: %s", reason, metadata["namespace"], metadata["name"], exc)
