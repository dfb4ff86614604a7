"""A tiny Kubernetes API server over HTTP on loopback, for testing ``KubernetesApi`` through the official
client: discovery, list/get with label selectors, server-side apply (PATCH application/apply-patch+yaml),
merge patches of status, delete, and events. Objects live in a dict; every request is recorded."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RESOURCES = {
    # (group, version): [(plural, kind, has status subresource)]
    ("", "v1"): [("configmaps", "ConfigMap", False), ("services", "Service", True), ("secrets", "Secret", False),
                 ("events", "Event", False)],
    ("apps", "v1"): [("deployments", "Deployment", True)],
    ("autoscaling", "v2"): [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    ("llm-router.io", "v1alpha1"): [("downstreamllms", "DownstreamLLM", True),
                                    ("routingpolicies", "RoutingPolicy", True)],
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
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def put(self, group_version: str, plural: str, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        with self._lock:
            self._counter += 1
            metadata.setdefault("uid", f"uid-{self._counter}")
            metadata["resourceVersion"] = str(self._counter)
            self.objects[(group_version, plural, metadata["namespace"], metadata["name"])] = obj

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
                status, body = server.answer(request, self._body() if self.command in ("POST", "PATCH") else {})
                self._send(status, body)

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
        if rest[0] != "namespaces" or len(rest) < 3:
            return 404, _status(404, "NotFound", "unsupported path")
        namespace, plural, name = rest[1], rest[2], rest[3] if len(rest) > 3 else None
        subresource = rest[4] if len(rest) > 4 else None
        kind = next((kind for each, kind, _ in RESOURCES[(group, version)] if each == plural), None)
        if kind is None:
            return 404, _status(404, "NotFound", f"no resource {plural}")
        key = (group_version, plural, namespace, name or "")
        with self._lock:
            if request.method == "GET" and name is None:
                selector = (request.query.get("labelSelector") or [""])[0]
                items = [obj for (gv, each, ns, _), obj in sorted(self.objects.items())
                         if gv == group_version and each == plural and ns == namespace and _matches(obj, selector)]
                return 200, {"kind": f"{kind}List", "apiVersion": group_version, "metadata": {}, "items": items}
            if request.method == "GET":
                return (200, self.objects[key]) if key in self.objects else (404, _status(404, "NotFound", name))
            if request.method == "POST":
                self._counter += 1
                body["metadata"]["name"] = body["metadata"].pop("generateName", "") + str(self._counter)
                self.objects[(group_version, plural, namespace, body["metadata"]["name"])] = body
                return 201, body
            if request.method == "DELETE":
                if self.objects.pop(key, None) is None:
                    return 404, _status(404, "NotFound", name)
                return 200, _status(200, "Success", "deleted")
            if request.method == "PATCH" and subresource == "status":
                if key not in self.objects or "merge-patch" not in request.content_type:
                    return 415, _status(415, "UnsupportedMediaType", request.content_type)
                self.objects[key]["status"] = {**self.objects[key].get("status", {}), **body["status"]}
                return 200, self.objects[key]
            if request.method == "PATCH":
                if "apply-patch" not in request.content_type or not request.query.get("fieldManager"):
                    return 400, _status(400, "BadRequest", "server-side apply needs a field manager")
                self._counter += 1
                live = self.objects.get(key)
                body["metadata"]["uid"] = live["metadata"]["uid"] if live else f"uid-{self._counter}"
                body["metadata"]["resourceVersion"] = str(self._counter)
                self.objects[key] = body
                return 200, body
        return 405, _status(405, "MethodNotAllowed", request.method)

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources = []
        for plural, kind, has_status in RESOURCES.get((group, version), []):
            resources.append({"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind,
                              "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
            if has_status:
                resources.append({"name": f"{plural}/status", "singularName": "", "namespaced": True, "kind": kind,
                                  "verbs": ["get", "patch", "update"]})
        group_version = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


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
