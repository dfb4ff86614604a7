"""A tiny Kubernetes API server over HTTP on loopback, for testing ``KubernetesApi`` through the official
client: discovery, list/get with label selectors, server-side apply (PATCH application/apply-patch+yaml),
merge patches of status, delete, and events. Objects live in a dict; every request is recorded."""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RESOURCES = {
    # (group, version): [(plural, kind, has a status subresource, namespaced)]
    ("", "v1"): [("configmaps", "ConfigMap", False, True), ("services", "Service", True, True),
                 ("secrets", "Secret", False, True), ("events", "Event", False, True),
                 ("namespaces", "Namespace", True, False)],
    ("apps", "v1"): [("deployments", "Deployment", True, True)],
    ("autoscaling", "v2"): [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True, True)],
    ("policy", "v1"): [("poddisruptionbudgets", "PodDisruptionBudget", True, True)],
    ("networking.k8s.io", "v1"): [("networkpolicies", "NetworkPolicy", False, True)],
    ("apiextensions.k8s.io", "v1"): [("customresourcedefinitions", "CustomResourceDefinition", True, False)],
    ("llm-router.io", "v1alpha1"): [("downstreamllms", "DownstreamLLM", True, True),
                                    ("routingpolicies", "RoutingPolicy", True, True)],
}
Key = tuple[str, str, str, str]
"""(group/version, plural, namespace, name)"""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str


class FakeApiServer:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.requests: list[Request] = []
        self._counter = 0
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._changes: list[tuple[int, Key, str, dict[str, Any]]] = []
        """(resourceVersion, key, ADDED|MODIFIED|DELETED, object): what watch streams send."""
        self._stopping = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self, namespaces: tuple[str, ...] = ("team-a",)) -> FakeApiServer:
        for namespace in namespaces:
            self.put("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": namespace, "namespace": ""}})
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def put(self, group_version: str, plural: str, obj: dict[str, Any]) -> None:
        """Create or replace an object as a user would; a spec change bumps the generation."""
        obj = copy.deepcopy(obj)
        metadata = obj["metadata"]
        key = (group_version, plural, metadata["namespace"], metadata["name"])
        with self._lock:
            live = self.objects.get(key)
            if live is not None:
                for field in ("uid", "creationTimestamp", "annotations", "finalizers"):
                    if field in live["metadata"]:
                        metadata[field] = live["metadata"][field]
                generation = live["metadata"].get("generation", 1)
                metadata["generation"] = generation + (live.get("spec") != obj.get("spec"))
                if "status" in live:
                    obj["status"] = live["status"]
            self._store(key, obj, "MODIFIED" if live is not None else "ADDED")

    def remove(self, group_version: str, plural: str, namespace: str, name: str) -> None:
        with self._lock:
            obj = self.objects.pop((group_version, plural, namespace, name))
            self._counter += 1
            self._record((group_version, plural, namespace, name), "DELETED", obj)

    def get(self, group_version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self.objects.get((group_version, plural, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def _store(self, key: Key, obj: dict[str, Any], change: str) -> dict[str, Any]:
        self._counter += 1
        obj["metadata"].setdefault("uid", f"uid-{self._counter}")
        obj["metadata"].setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        obj["metadata"]["resourceVersion"] = str(self._counter)
        self.objects[key] = obj
        self._record(key, change, obj)
        return obj

    def _record(self, key: Key, change: str, obj: dict[str, Any]) -> None:
        self._changes.append((self._counter, key, change, copy.deepcopy(obj)))
        self._changed.notify_all()

    def watch(self, group_version: str, plural: str, namespace: str, since: int, write: Any) -> None:
        """Send the changes after ``since`` as they happen, until the server stops."""
        while True:
            with self._changed:
                pending = [(version, change, obj) for version, key, change, obj in self._changes
                           if version > since and key[:3] == (group_version, plural, namespace)]
                if not pending:
                    if self._stopping:
                        return
                    self._changed.wait(0.2)
                    continue
            for version, change, obj in pending:
                write({"type": change, "object": obj})
                since = version

    def writes(self) -> list[Request]:
        return [request for request in self.requests if request.method != "GET"]

    # ------------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def _handle(self) -> None:
                url = urlsplit(self.path)
                request = Request(self.command, url.path, parse_qs(url.query), self.headers.get("Content-Type", ""))
                with server._lock:
                    server.requests.append(request)
                if request.query.get("watch") == ["true"]:
                    self._stream(request)
                    return
                status, body = server.answer(request, self._body() if self.command in ("POST", "PATCH") else {})
                self._send(status, body)

            def _stream(self, request: Request) -> None:
                parts = [part for part in request.path.split("/") if part]
                prefix_length = 2 if parts[0] == "api" else 3
                group_version = "/".join(parts[1:prefix_length])
                namespace, plural, _, _ = _route(parts[prefix_length:])
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()

                def write(event: dict[str, Any]) -> None:
                    self.wfile.write(json.dumps(event).encode() + b"\n")
                    self.wfile.flush()

                since = int((request.query.get("resourceVersion") or ["0"])[0])
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    server.watch(group_version, plural, namespace, since, write)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

        return Handler

    def answer(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        parts = [part for part in request.path.split("/") if part]
        if parts == ["version"]:
            return 200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0"}
        if parts == ["apis"]:
            groups = [{"name": group, "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
                       "preferredVersion": {"groupVersion": f"{group}/{version}", "version": version}}
                      for group, version in RESOURCES if group]
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if parts == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        prefix_length = 2 if parts[0] == "api" else 3
        group_version = "/".join(parts[1:prefix_length])
        group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
        rest = parts[prefix_length:]
        if not rest:
            return 200, self._resource_list(group, version)
        namespace, plural, name, subresource = _route(rest)
        kind = next((kind for each, kind, _, _ in RESOURCES.get((group, version), []) if each == plural), None)
        if kind is None:
            return 404, _status(404, "NotFound", f"no resource {plural}")
        key = (group_version, plural, namespace, name or "")
        with self._lock:
            if request.method == "GET" and name is None:
                selector = (request.query.get("labelSelector") or [""])[0]
                items = [obj for (gv, each, ns, _), obj in sorted(self.objects.items())
                         if gv == group_version and each == plural and ns == namespace and _matches(obj, selector)]
                return 200, {"kind": f"{kind}List", "apiVersion": group_version,
                             "metadata": {"resourceVersion": str(self._counter)}, "items": items}
            if request.method == "GET":
                return (200, self.objects[key]) if key in self.objects else (404, _status(404, "NotFound", name))
            if request.method == "POST":
                body["metadata"]["name"] = body["metadata"].pop("generateName", "") + str(self._counter + 1)
                return 201, self._store((group_version, plural, namespace, body["metadata"]["name"]), body, "ADDED")
            if request.method == "DELETE":
                obj = self.objects.pop(key, None)
                if obj is None:
                    return 404, _status(404, "NotFound", name)
                self._counter += 1
                self._record(key, "DELETED", obj)
                return 200, _status(200, "Success", "deleted")
            if request.method == "PATCH" and "merge-patch" in request.content_type:
                if key not in self.objects:
                    return 404, _status(404, "NotFound", name)
                patch = body if subresource is None else {"status": body.get("status", {})}
                merged = _merge_patch(copy.deepcopy(self.objects[key]), patch)
                return 200, self._store(key, merged, "MODIFIED")
            if request.method == "PATCH":
                if "apply-patch" not in request.content_type or not request.query.get("fieldManager"):
                    return 400, _status(400, "BadRequest", "server-side apply needs a field manager")
                live = self.objects.get(key)
                if live is not None:
                    body["metadata"]["uid"] = live["metadata"]["uid"]
                return 200, self._store(key, body, "MODIFIED" if live else "ADDED")
        return 405, _status(405, "MethodNotAllowed", request.method)

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources = []
        for plural, kind, has_status, namespaced in RESOURCES.get((group, version), []):
            resources.append({"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                              "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
            if has_status:
                resources.append({"name": f"{plural}/status", "singularName": "", "namespaced": namespaced,
                                  "kind": kind,
                                  "verbs": ["get", "patch", "update"]})
        group_version = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _route(rest: list[str]) -> tuple[str, str, str | None, str | None]:
    """The part of a path after the group version -> (namespace or "", plural, name, subresource)."""
    if rest[0] == "namespaces" and len(rest) >= 3:
        return rest[1], rest[2], rest[3] if len(rest) > 3 else None, rest[4] if len(rest) > 4 else None
    return "", rest[0], rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_patch(target.get(key), value)
    return target


def _matches(obj: dict[str, Any], selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure" if code >= 400 else "Success",
            "code": code, "reason": reason, "message": message}
