"""``KubernetesApi`` (the operator's real boundary) through the official client, against a small API
server on loopback: the requests it makes, and a reconcile through it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from llm_router.operator import names
from llm_router.operator.apply import KubernetesApi
from llm_router.operator.model_catalog import read_catalog
from llm_router.operator.reconcile import reconcile_namespace
from llm_router.operator.settings import OperatorSettings
from operator_fake_apiserver import FakeApiServer
from operator_resources import downstream_llm, routing_policy

NS = "team-a"
SECRET_VALUE = "sk-live-do-not-leak-42"


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    server.put("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "big-key", "namespace": NS},
                                 "data": {"api-key": base64.b64encode(SECRET_VALUE.encode()).decode()}})
    server.put(names.API_VERSION, names.LLM_PLURAL, downstream_llm("big", secret="big-key"))
    server.put(names.API_VERSION, names.LLM_PLURAL, downstream_llm("small"))
    server.put(names.API_VERSION, names.POLICY_PLURAL, routing_policy("tasks", default=True))
    yield server
    server.stop()


def kubernetes_api(server: FakeApiServer, tmp_path: Path) -> KubernetesApi:
    configuration = client.Configuration(host=server.url)
    return KubernetesApi("llm-router-operator", api_client=client.ApiClient(configuration),
                         discovery_cache=str(tmp_path / "discovery.json"))


def test_reconcile_through_the_real_client(apiserver: FakeApiServer, tmp_path: Path) -> None:
    api = kubernetes_api(apiserver, tmp_path)
    outcome = reconcile_namespace(NS, api, OperatorSettings(), read_catalog(None), now="2026-03-01T00:00:00Z")
    assert outcome.error is None and outcome.revision is not None
    applies = [request for request in apiserver.writes() if "status" not in request.path]
    assert [request.path.rsplit("/", 2)[-2:] for request in applies] == [
        ["configmaps", "llm-router-config"], ["configmaps", "llm-router-triton-models"],
        ["deployments", "llm-router-triton"], ["services", "llm-router-triton"],
        ["deployments", "llm-router"], ["services", "llm-router"]]
    for request in applies:
        assert request.method == "PATCH"
        assert request.content_type.startswith("application/apply-patch+yaml")
        assert request.query["fieldManager"] == ["llm-router-operator"]
        assert request.query["force"] == ["true"]
    statuses = [request for request in apiserver.writes() if request.path.endswith("/status")]
    assert len(statuses) == 3
    assert all(request.content_type.startswith("application/merge-patch+json") for request in statuses)
    policy = apiserver.objects[(names.API_VERSION, names.POLICY_PLURAL, NS, "tasks")]
    assert {item["type"]: item["status"] for item in policy["status"]["conditions"]} == \
        {"Accepted": "True", "ResolvedRefs": "True", "Ready": "True"}
    assert SECRET_VALUE not in json.dumps([obj for key, obj in apiserver.objects.items() if key[1] != "secrets"])

    before = len(apiserver.writes())
    again = reconcile_namespace(NS, api, OperatorSettings(), read_catalog(None), now="2026-03-01T01:00:00Z")
    assert again.revision == outcome.revision
    assert len(apiserver.writes()) == before, "nothing changed: only reads"


def test_missing_objects_events_and_deletes(apiserver: FakeApiServer, tmp_path: Path) -> None:
    api = kubernetes_api(apiserver, tmp_path)
    assert api.get("v1", "ConfigMap", NS, "nothing-here") is None
    assert api.secret_keys(NS) == {"big-key": frozenset({"api-key"})}
    apiserver.put(names.API_VERSION, names.POLICY_PLURAL, routing_policy("broken", routes={"Poetry": ["big"]}))
    reconcile_namespace(NS, api, OperatorSettings(), read_catalog(None))
    events = [obj for (_, plural, _, _), obj in apiserver.objects.items() if plural == "events"]
    assert [(event["involvedObject"]["name"], event["reason"], event["type"]) for event in events] == \
        [("broken", "UnknownCategory", "Warning")]
    assert {item["kind"] for item in api.list_managed(NS)} == {"ConfigMap", "Deployment", "Service"}
    api.delete("v1", "Service", NS, names.TRITON)
    assert api.get("v1", "Service", NS, names.TRITON) is None
