"""An in-memory ``ClusterApi`` for the operator's reconcile tests: the Kubernetes API replaced at the
operator's boundary, and nothing else.

It keeps objects the way the API server would after a server-side apply by the operator's single field
manager (the applied fields replace the previous ones; the server adds uid, resourceVersion and, for
spec changes, a new generation) and records every write. It does not decide whether to write: that is
the operator's job, and what the tests check.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from llm_router.operator import names
from llm_router.operator.apply import MANAGED_KINDS, ApiError

Key = tuple[str, str, str, str]
"""(apiVersion, kind, namespace, name)"""
PLURAL_KIND = {names.LLM_PLURAL: names.LLM_KIND, names.POLICY_PLURAL: names.POLICY_KIND}


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.writes: list[str] = []
        """``apply Kind/name``, ``delete Kind/name``, ``status Kind/name`` in order."""
        self.events: list[dict[str, str]] = []
        self.fail_apply: str | None = None
        """When set, every apply fails with this message."""
        self._versions = itertools.count(1)

    # --- what a user does (kubectl apply / delete) -------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or update a custom resource; a spec change bumps the generation, as the API server does."""
        obj = copy.deepcopy(obj)
        metadata = obj["metadata"]
        key = (obj["apiVersion"], obj["kind"], metadata["namespace"], metadata["name"])
        live = self.objects.get(key)
        if live is not None:
            metadata["uid"] = live["metadata"]["uid"]
            metadata["creationTimestamp"] = live["metadata"]["creationTimestamp"]
            generation = live["metadata"]["generation"]
            metadata["generation"] = generation + 1 if live.get("spec") != obj.get("spec") else generation
            if "status" in live:
                obj["status"] = live["status"]
        metadata["resourceVersion"] = str(next(self._versions))
        self.objects[key] = obj
        return obj

    def remove(self, kind: str, namespace: str, name: str) -> None:
        del self.objects[(names.API_VERSION, kind, namespace, name)]

    def put_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.secrets[(namespace, name)] = dict(data)

    def custom(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self.objects[(names.API_VERSION, kind, namespace, name)]

    def object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((api_version, kind, namespace, name))

    # --- ClusterApi ----------------------------------------------------------------------------

    def list_custom(self, namespace: str, plural: str) -> list[dict[str, Any]]:
        kind = PLURAL_KIND[plural]
        return [copy.deepcopy(obj) for (api_version, obj_kind, obj_namespace, _), obj in sorted(self.objects.items())
                if api_version == names.API_VERSION and obj_kind == kind and obj_namespace == namespace]

    def secret_keys(self, namespace: str) -> dict[str, frozenset[str]]:
        return {name: frozenset(data) for (secret_namespace, name), data in self.secrets.items()
                if secret_namespace == namespace}

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def apply(self, obj: dict[str, Any]) -> None:
        if self.fail_apply is not None:
            raise ApiError(self.fail_apply)
        metadata = obj["metadata"]
        key = (obj["apiVersion"], obj["kind"], metadata["namespace"], metadata["name"])
        live = self.objects.get(key)
        stored = copy.deepcopy(obj)
        stored["metadata"]["uid"] = live["metadata"]["uid"] if live else f"uid-{next(self._versions)}"
        stored["metadata"]["resourceVersion"] = str(next(self._versions))
        self.objects[key] = stored
        self.writes.append(f"apply {obj['kind']}/{metadata['name']}")

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        del self.objects[(api_version, kind, namespace, name)]
        self.writes.append(f"delete {kind}/{name}")

    def list_managed(self, namespace: str) -> list[dict[str, Any]]:
        kinds = set(MANAGED_KINDS)
        return [copy.deepcopy(obj) for (api_version, kind, obj_namespace, _), obj in sorted(self.objects.items())
                if (api_version, kind) in kinds and obj_namespace == namespace
                and obj["metadata"].get("labels", {}).get(names.LABEL_MANAGED_BY) == names.MANAGED_BY]

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        key = (names.API_VERSION, PLURAL_KIND[plural], namespace, name)
        if key not in self.objects:
            raise ApiError(f"{PLURAL_KIND[plural]} {name} not found")
        self.objects[key]["status"] = {**self.objects[key].get("status", {}), **copy.deepcopy(status)}
        self.writes.append(f"status {PLURAL_KIND[plural]}/{name}")

    def post_event(self, involved: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        self.events.append({"object": f"{involved['kind']}/{involved['metadata']['name']}", "type": event_type,
                            "reason": reason, "message": message})
