"""The README's Kubernetes walkthrough, control-plane part, against a real cluster (``pytest -m cluster``).

Skipped unless ``KUBECONFIG`` is set, ``kubectl`` is on PATH and the API server answers: no cluster can
run on the development machines, so this has not run there. On a kind cluster (``kind create cluster
--config kind-config.yaml``) it: installs the CRDs of ``crds/`` (server-side apply), applies
``manifests/`` and ``manifests/in-cluster/`` into a fresh namespace, runs the operator from this checkout
(``llm-router operator run --namespace <it>``; set ``LLM_ROUTER_E2E_OPERATOR=installed`` when the chart's
operator already watches every namespace), waits for every RoutingPolicy and DownstreamLLM to be
``Ready``, checks what the operator rendered (the proxy's ConfigMap without the key, the proxy and
Triton Deployments), then deletes an LLM and waits for the policies that route to it to report
``ResolvedRefs=False`` with reason ``LLMNotFound``. The namespace is deleted afterwards; the CRDs stay.
Images are not needed: nothing here waits for pods.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.cluster

REPO_ROOT = Path(__file__).resolve().parent.parent
KUBECTL = shutil.which("kubectl")
WAIT = "240s"


def kubectl(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                            check=False)
    if check and result.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _api_server_answers() -> str | None:
    """Why the cluster cannot be used, or None when it can."""
    if not os.environ.get("KUBECONFIG"):
        return "KUBECONFIG is not set"
    if KUBECTL is None:
        return "kubectl is not on PATH"
    try:
        result = subprocess.run([KUBECTL, "version", "--request-timeout=5s", "-o", "json"], capture_output=True,
                                text=True, timeout=15, check=False)
    except subprocess.TimeoutExpired:
        return "the API server did not answer within 15 s"
    if result.returncode != 0 or "serverVersion" not in result.stdout:
        return f"the API server does not answer: {result.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    reason = _api_server_answers()
    if reason is not None:
        pytest.skip(f"no Kubernetes cluster: {reason}")
    name = f"llm-router-e2e-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def operator(namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    kubectl("apply", "--server-side", "-f", "crds/")
    kubectl("wait", "--for=condition=Established", "crd/routingpolicies.llm-router.io",
            "crd/downstreamllms.llm-router.io", f"--timeout={WAIT}")
    if os.environ.get("LLM_ROUTER_E2E_OPERATOR") == "installed":
        yield
        return
    command = [str(Path(sys.executable).parent / "llm-router"), "operator", "run", "--namespace", namespace,
               "--liveness", f"http://127.0.0.1:{_free_port()}/healthz"]
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
        assert process.poll() is None, f"the operator exited: {log_path.read_text(encoding='utf-8')[-2000:]}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def custom_resources(namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    listed = json.loads(kubectl("get", "llm-router", "-n", namespace, "-o", "json").stdout)
    return {(item["kind"], item["metadata"]["name"]): item for item in listed["items"]}


def condition(resource: dict[str, Any], kind: str) -> dict[str, Any]:
    [found] = [item for item in resource.get("status", {}).get("conditions", []) if item["type"] == kind]
    return found


def test_walkthrough_on_a_real_cluster(namespace: str, operator: None) -> None:
    kubectl("apply", "-n", namespace, "-k", "manifests/")
    kubectl("apply", "-n", namespace, "-k", "manifests/in-cluster/")

    kubectl("wait", "-n", namespace, "--for=condition=Ready", "routingpolicy", "--all", f"--timeout={WAIT}",
            timeout=400)
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "downstreamllm", "--all", f"--timeout={WAIT}",
            timeout=400)
    resources = custom_resources(namespace)
    assert sorted(name for kind, name in resources if kind == "RoutingPolicy") == [
        "complexity-router", "cost-quality", "intent-router", "local-first", "task-router"]
    for resource in resources.values():
        assert resource["status"]["observedGeneration"] == resource["metadata"]["generation"]
        for kind in ("Accepted", "ResolvedRefs", "Ready"):
            assert condition(resource, kind)["status"] == "True", (resource["metadata"]["name"], kind)

    config_map = json.loads(kubectl("get", "configmap", "llm-router-config", "-n", namespace, "-o", "json").stdout)
    text = config_map["data"]["config.yaml"]
    assert "REPLACE_ME" not in text
    config = yaml.safe_load(text)
    assert sorted(policy["name"] for policy in config["policies"]) == [
        "complexity-router", "cost-quality", "intent-router", "local-first", "task-router"]
    for name in ("deployment/llm-router", "service/llm-router", "deployment/llm-router-triton",
                 "service/llm-router-triton"):
        kubectl("get", "-n", namespace, name)

    # A deleted LLM flips the policies that route to it, naming it.
    kubectl("delete", "-n", namespace, "downstreamllm", "deepseek-r1")
    for policy in ("task-router", "local-first"):
        kubectl("wait", "-n", namespace, "--for=condition=ResolvedRefs=False", f"routingpolicy/{policy}",
                f"--timeout={WAIT}", timeout=400)
        refs = condition(custom_resources(namespace)[("RoutingPolicy", policy)], "ResolvedRefs")
        assert refs["reason"] == "LLMNotFound"
        assert "deepseek-r1" in refs["message"]
    intent_router = custom_resources(namespace)[("RoutingPolicy", "intent-router")]
    assert condition(intent_router, "ResolvedRefs")["status"] == "True"
