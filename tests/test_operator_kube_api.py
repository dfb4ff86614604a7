"""``KubernetesApi`` (the operator's real boundary) through the official client, against a small API
server on loopback: the requests it makes, and a reconcile through it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
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
        ["deployments", "llm-router"], ["services", "llm-router"], ["poddisruptionbudgets", "llm-router"]]
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
    assert {item["kind"] for item in api.list_managed(NS)} == {"ConfigMap", "Deployment", "Service",
                                                               "PodDisruptionBudget"}
    api.delete("v1", "Service", NS, names.TRITON)
    assert api.get("v1", "Service", NS, names.TRITON) is None


def test_budget_and_network_policies_come_and_go_through_the_real_client(apiserver: FakeApiServer,
                                                                        tmp_path: Path) -> None:
    api = kubernetes_api(apiserver, tmp_path)
    fenced = OperatorSettings.model_validate({"proxy": {"network_policy": {"enabled": True}}})
    reconcile_namespace(NS, api, fenced, read_catalog(None), now="2026-03-01T00:00:00Z")
    applied = {tuple(request.path.rsplit("/", 2)[-2:]) for request in apiserver.writes() if request.method == "PATCH"}
    assert {("poddisruptionbudgets", "llm-router"), ("networkpolicies", "llm-router"),
            ("networkpolicies", "llm-router-triton")} <= applied
    assert any(request.path.startswith("/apis/policy/v1/namespaces/team-a/") for request in apiserver.writes())
    assert any(request.path.startswith("/apis/networking.k8s.io/v1/namespaces/team-a/")
               for request in apiserver.writes())
    before = len(apiserver.writes())
    open_settings = OperatorSettings.model_validate({"proxy": {"pod_disruption_budget": {"enabled": False}}})
    reconcile_namespace(NS, api, open_settings, read_catalog(None), now="2026-03-01T01:00:00Z")
    deletes = sorted(tuple(request.path.rsplit("/", 2)[-2:]) for request in apiserver.writes()[before:]
                     if request.method == "DELETE")
    assert deletes == [("networkpolicies", "llm-router"), ("networkpolicies", "llm-router-triton"),
                       ("poddisruptionbudgets", "llm-router")]
    assert {item["kind"] for item in api.list_managed(NS)} == {"ConfigMap", "Deployment", "Service"}


# ----------------------------------------------------- the operator command, end to end


def wait_until(check: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, f"not reached in {deadline}s: {what}"
        time.sleep(0.1)


def condition_of(server: FakeApiServer, plural: str, name: str, kind: str) -> dict[str, Any]:
    obj = server.get(names.API_VERSION, plural, NS, name) or {}
    return next((item for item in (obj.get("status") or {}).get("conditions", []) if item["type"] == kind), {})


def revision(server: FakeApiServer) -> str | None:
    config = server.get("v1", "configmaps", NS, names.CONFIG_MAP)
    return config["metadata"]["annotations"][names.REVISION_ANNOTATION] if config else None


@contextmanager
def running_operator(apiserver: FakeApiServer, tmp_path: Path, *arguments: str) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m llm_router.operator`` finding the loopback API server through KUBECONFIG, for the body of
    the ``with``; then terminated, and its log (stdout and stderr) must hold no traceback."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": apiserver.url}}],
        "users": [{"name": "fake", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
    }))
    env = {key: value for key, value in os.environ.items() if key != "KUBERNETES_SERVICE_HOST"}
    env.update(KUBECONFIG=str(kubeconfig), TMPDIR=str(tmp_path))
    log_path = tmp_path / "operator.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "llm_router.operator", "--namespace", NS, "--liveness", "",
                                    *arguments], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)
    output = log_path.read_text()
    assert "Traceback" not in output, output[-3000:]


def test_operator_command_reacts_to_changes(apiserver: FakeApiServer, tmp_path: Path) -> None:
    """``python -m llm_router.operator`` with kopf, the handlers and the real client, against the loopback
    API server found through KUBECONFIG: it renders, follows changes, reacts to a referenced Secret appearing,
    and adds no finalizer."""
    with running_operator(apiserver, tmp_path):
        wait_until(lambda: condition_of(apiserver, names.POLICY_PLURAL, "tasks", "Ready").get("status") == "True",
                   "the policy Ready")
        first = revision(apiserver)
        assert first is not None
        time.sleep(1.0)
        settled = len(apiserver.writes())
        time.sleep(2.0)
        assert len(apiserver.writes()) == settled, "the operator's own writes must not trigger it again"
        assert apiserver.get("apps/v1", "deployments", NS, names.TRITON) is not None

        apiserver.put(names.API_VERSION, names.POLICY_PLURAL,
                      routing_policy("tasks", default=True, routes={"Chatbot": ["small"]}))
        wait_until(lambda: revision(apiserver) not in (None, first), "a new config revision")
        wait_until(lambda: condition_of(apiserver, names.POLICY_PLURAL, "tasks", "Ready").get(
            "observedGeneration") == 2, "Ready for generation 2")

        apiserver.put(names.API_VERSION, names.LLM_PLURAL, downstream_llm("vendor", secret="vendor-key"))
        wait_until(lambda: condition_of(apiserver, names.LLM_PLURAL, "vendor", "ResolvedRefs").get(
            "reason") == "SecretNotFound", "the missing Secret reported")
        apiserver.put("v1", "secrets", {"apiVersion": "v1", "kind": "Secret",
                                        "metadata": {"name": "vendor-key", "namespace": NS},
                                        "data": {"api-key": base64.b64encode(b"k").decode()}})
        wait_until(lambda: condition_of(apiserver, names.LLM_PLURAL, "vendor", "ResolvedRefs").get(
            "status") == "True", "the Secret's arrival noticed")

        apiserver.remove(names.API_VERSION, names.LLM_PLURAL, NS, "small")
        wait_until(lambda: condition_of(apiserver, names.POLICY_PLURAL, "tasks", "ResolvedRefs").get(
            "reason") == "LLMNotFound", "the deleted LLM flips the policy")

        for (group_version, _, _, _), obj in list(apiserver.objects.items()):
            if group_version == names.API_VERSION:
                assert not obj["metadata"].get("finalizers"), obj["metadata"]["name"]


def test_operator_command_reacts_to_the_client_keys_secret(apiserver: FakeApiServer, tmp_path: Path) -> None:
    """The client keys Secret is watched too (kopf's filter sees the settings through its memo)."""
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"proxy": {"client_auth": {"enabled": True, "secret_name": "clients"}}}))
    with running_operator(apiserver, tmp_path, "--settings", str(settings)):
        wait_until(lambda: condition_of(apiserver, names.POLICY_PLURAL, "tasks", "Ready").get(
            "reason") == "ClientKeysNotFound", "the missing client keys reported")
        settled = -1
        while settled != len(apiserver.writes()):  # the start-up reconciles (one per object resumed) are over
            settled = len(apiserver.writes())
            time.sleep(2.0)
        deployment = apiserver.get("apps/v1", "deployments", NS, names.PROXY)
        assert deployment is not None
        assert any(volume.get("secret", {}).get("secretName") == "clients"
                   for volume in deployment["spec"]["template"]["spec"]["volumes"])
        apiserver.put("v1", "secrets", {"apiVersion": "v1", "kind": "Secret",
                                        "metadata": {"name": "clients", "namespace": NS},
                                        "data": {"keys.yaml": base64.b64encode(b"keys: []").decode()}})
        wait_until(lambda: condition_of(apiserver, names.POLICY_PLURAL, "tasks", "Ready").get("status") == "True",
                   "the client keys Secret's arrival noticed")
        events = [obj for (_, plural, _, _), obj in apiserver.objects.items() if plural == "events"]
        assert any(event["reason"] == "ClientKeysNotFound" for event in events)
