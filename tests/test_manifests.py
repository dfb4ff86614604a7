"""manifests/ beyond the CRD examples (those are in test_crds.py), kind-config.yaml and the README walkthrough.

- ``manifests/in-cluster/``: the llama.cpp Deployment and Service validated strictly with
  ``kubernetes-validate`` (Kubernetes 1.28 and the newest it ships); its DownstreamLLM and RoutingPolicy
  accepted by the CRD schemas; together with the NVIDIA examples, translated by the operator's own
  ``translate`` into a config the proxy accepts, and the local-first rules classifying as documented.
- ``manifests/argocd/``: the Argo CD Application against a small schema of our own (Argo CD publishes
  no OpenAPI schema that installs offline), then what the schema cannot say: both sources point at
  folders that exist, the placeholder Secret is ignored, the sync options the walkthrough relies on.
- ``kind-config.yaml`` and the README section "Run it on Kubernetes (kind)": every file or folder its
  commands name exists, and every ``--set`` it passes names a value of the chart (once the chart is here).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from crd_schema import load_crds, load_yaml_documents, validate
from llm_router.operator.model_catalog import read_catalog
from llm_router.operator.translate import NamespaceResources, translate
from llm_router.proxy.classifiers import ClassifierInput, RuleClassifier
from llm_router.proxy.conversation import Turn

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = REPO_ROOT / "manifests"
IN_CLUSTER = MANIFESTS / "in-cluster"
APPLICATION = MANIFESTS / "argocd" / "llm-router.application.yaml"
CHART = REPO_ROOT / "charts" / "llm-router"
README = REPO_ROOT / "README.md"
WALKTHROUGH_TITLE = "## Run it on Kubernetes (kind)"
VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]
CRDS = load_crds()


def documents(folder: Path) -> list[dict[str, Any]]:
    return [document for path in sorted(folder.glob("*.yaml")) if path.name != "kustomization.yaml"
            for document in load_yaml_documents(path)]


def one(folder: Path, kind: str, name: str | None = None) -> dict[str, Any]:
    [document] = [document for document in documents(folder)
                  if document["kind"] == kind and (name is None or document["metadata"]["name"] == name)]
    return document


# ------------------------------------------------------------------ kustomizations


@pytest.mark.parametrize("folder", [MANIFESTS, IN_CLUSTER], ids=["manifests", "in-cluster"])
def test_kustomization_lists_exactly_the_folders_files(folder: Path) -> None:
    [kustomization] = load_yaml_documents(folder / "kustomization.yaml")
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    files = sorted(path.name for path in folder.glob("*.yaml") if path.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files


def test_argocd_application_is_outside_the_kustomization() -> None:
    """``kubectl apply -k manifests/`` must work on a cluster without Argo CD (and Argo CD would sync the
    Application into itself)."""
    [kustomization] = load_yaml_documents(MANIFESTS / "kustomization.yaml")
    assert APPLICATION.parent.name not in kustomization["resources"]
    assert all(document["kind"] != "Application" for document in documents(MANIFESTS))


# ------------------------------------------------------------------ the in-cluster server


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", ["Deployment", "Service"])
def test_in_cluster_server_objects_validate_strictly(kind: str, version: str) -> None:
    kubernetes_validate.validate(one(IN_CLUSTER, kind), version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_strict_validation_refuses_a_misspelt_field(version: str) -> None:
    deployment = copy.deepcopy(one(IN_CLUSTER, "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessProbes"):
        kubernetes_validate.validate(deployment, version, strict=True)


def test_in_cluster_server_is_locked_down_and_probed() -> None:
    pod = one(IN_CLUSTER, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert re.fullmatch(r"ghcr\.io/ggml-org/llama\.cpp:server-b\d+", container["image"]), container["image"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    # Everything it writes lands on emptyDirs.
    mounted = {mount["mountPath"] for mount in container["volumeMounts"]}
    env = {item["name"]: item["value"] for item in container["env"]}
    assert {env["LLAMA_CACHE"], env["HOME"]} <= mounted
    assert "memory" in container["resources"]["limits"]


def test_service_reaches_the_server_and_the_llm_points_at_the_service() -> None:
    deployment, service = one(IN_CLUSTER, "Deployment"), one(IN_CLUSTER, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    [service_port] = service["spec"]["ports"]
    assert service_port["targetPort"] in ports
    args = container["args"]
    assert int(args[args.index("--port") + 1]) == ports[service_port["targetPort"]]

    llm = one(IN_CLUSTER, "DownstreamLLM")
    base = urlsplit(llm["spec"]["apiBase"])
    assert (base.scheme, base.hostname, base.port, base.path) == (
        "http", service["metadata"]["name"], service_port["port"], "/v1")
    assert llm["spec"]["model"] == args[args.index("--alias") + 1]
    assert "apiKeySecretRef" not in llm["spec"]


@pytest.mark.parametrize("kind", ["DownstreamLLM", "RoutingPolicy"])
def test_in_cluster_resources_are_accepted_by_the_crds(kind: str) -> None:
    assert validate(one(IN_CLUSTER, kind), CRDS[kind]) == []


def _namespace_resources() -> NamespaceResources:
    every = documents(MANIFESTS) + documents(IN_CLUSTER)
    secrets = {document["metadata"]["name"]: frozenset(document["stringData"])
               for document in every if document["kind"] == "Secret"}
    for document in every:
        document.setdefault("metadata", {}).update(generation=1, creationTimestamp="2026-01-01T00:00:00Z")
    return NamespaceResources("llm-router",
                              [document for document in every if document["kind"] == "DownstreamLLM"],
                              [document for document in every if document["kind"] == "RoutingPolicy"],
                              secrets, read_catalog(None))


def test_both_folders_together_make_one_valid_router_config() -> None:
    translation = translate(_namespace_resources())
    assert translation.problem is None
    assert {key: result.valid for key, result in translation.results.items()} == {
        key: True for key in translation.results}
    config = translation.config
    assert config is not None
    assert sorted(policy.name for policy in config.policies) == [
        "complexity-router", "cost-quality", "intent-router", "local-first", "task-router"]
    [local] = [llm for llm in config.llms if llm.name == "qwen2-5-0-5b-local"]
    assert local.api_key is None
    # Only the NVIDIA key is mounted: the in-cluster server gets no Authorization header.
    assert translation.secret_mounts == {"nvidia-api-key": ("api-key",)}


@pytest.mark.parametrize(("text", "category", "first_llm"), [
    ("Why does this python function raise a KeyError?", "code", "deepseek-r1"),
    ("```\nSELECT 1\n```", "code", "deepseek-r1"),
    ("Prove that the square root of 2 is irrational.", "math", "deepseek-r1"),
    ("Write a haiku about autumn leaves.", None, "qwen2-5-0-5b-local"),
])
def test_local_first_routes_as_its_comment_says(text: str, category: str | None, first_llm: str) -> None:
    config = translate(_namespace_resources()).config
    assert config is not None
    [policy] = [policy for policy in config.policies if policy.name == "local-first"]
    result = RuleClassifier(policy.classifier).classify_now(ClassifierInput([Turn("user", text)], {}))
    assert result.category == category
    chosen = policy.routes.get(category, policy.default_route) if category else policy.default_route
    assert chosen[0] == first_llm
    assert chosen[-1] in {"qwen2-5-0-5b-local", "llama-3-1-8b"}


# ------------------------------------------------------------------ Argo CD


SOURCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["repoURL", "targetRevision"],
    "additionalProperties": False,
    "properties": {
        "repoURL": {"type": "string", "pattern": r"^(https://|git@|oci://)\S+$"},
        "targetRevision": {"type": "string", "minLength": 1},
        "path": {"type": "string", "pattern": r"^[^/]\S*$"},
        "chart": {"type": "string"},
        "ref": {"type": "string"},
        "helm": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "releaseName": {"type": "string"},
                "valuesObject": {"type": "object"},
                "values": {"type": "string"},
                "valueFiles": {"type": "array", "items": {"type": "string"}},
                "parameters": {"type": "array"},
            },
        },
        "kustomize": {"type": "object"},
        "directory": {"type": "object"},
    },
}
APPLICATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "argoproj.io/v1alpha1"},
        "kind": {"const": "Application"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "finalizers": {"type": "array", "items": {"enum": ["resources-finalizer.argocd.argoproj.io"]}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["project", "sources", "destination"],
            "additionalProperties": False,
            # Argo CD takes either one source or several, never both.
            "not": {"required": ["source"]},
            "properties": {
                "project": {"type": "string"},
                "source": SOURCE_SCHEMA,
                "sources": {"type": "array", "minItems": 2, "items": SOURCE_SCHEMA},
                "destination": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["namespace"],
                    "oneOf": [{"required": ["server"]}, {"required": ["name"]}],
                    "properties": {"server": {"type": "string", "format": "uri"}, "name": {"type": "string"},
                                   "namespace": {"type": "string"}},
                },
                "ignoreDifferences": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["kind"],
                        "additionalProperties": False,
                        "properties": {
                            "group": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"},
                            "namespace": {"type": "string"},
                            "jsonPointers": {"type": "array", "items": {"type": "string", "pattern": "^/"}},
                            "jqPathExpressions": {"type": "array", "items": {"type": "string", "pattern": r"^\."}},
                            "managedFieldsManagers": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
                "syncPolicy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "automated": {
                            "type": "object", "additionalProperties": False,
                            "properties": {"prune": {"type": "boolean"}, "selfHeal": {"type": "boolean"},
                                           "allowEmpty": {"type": "boolean"}},
                        },
                        "syncOptions": {
                            "type": "array",
                            "items": {"enum": [
                                "ServerSideApply=true", "CreateNamespace=true", "RespectIgnoreDifferences=true",
                                "PruneLast=true", "ApplyOutOfSyncOnly=true", "SkipDryRunOnMissingResource=true",
                                "Validate=false", "PrunePropagationPolicy=foreground",
                                "PrunePropagationPolicy=background", "Replace=true", "FailOnSharedResource=true"]},
                        },
                        "retry": {
                            "type": "object", "additionalProperties": False,
                            "properties": {
                                "limit": {"type": "integer", "minimum": 0},
                                "backoff": {
                                    "type": "object", "additionalProperties": False,
                                    "properties": {"duration": {"type": "string", "pattern": r"^\d+[smh]$"},
                                                   "factor": {"type": "integer", "minimum": 1},
                                                   "maxDuration": {"type": "string", "pattern": r"^\d+[smh]$"}},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def application() -> dict[str, Any]:
    [document] = load_yaml_documents(APPLICATION)
    return document


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(APPLICATION_SCHEMA, format_checker=jsonschema.FormatChecker())
    return sorted(f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
                  for error in validator.iter_errors(document))


def test_application_matches_the_schema() -> None:
    assert schema_errors(application()) == []


@pytest.mark.parametrize(("change", "expected"), [
    (lambda app: app["spec"]["syncPolicy"].update(syncOptions=["ServerSideApply=True"]),
     "spec/syncPolicy/syncOptions/0"),
    (lambda app: app["spec"].update(source=app["spec"]["sources"][0]), "spec: {"),
    (lambda app: app["spec"]["sources"][1].update(pathh="manifests"), "spec/sources/1"),
    (lambda app: app["spec"]["destination"].pop("server"), "spec/destination"),
    (lambda app: app.update(apiVersion="argoproj.io/v1beta1"), "apiVersion"),
])
def test_the_schema_refuses_mistakes(change: Any, expected: str) -> None:
    document = copy.deepcopy(application())
    change(document)
    errors = schema_errors(document)
    assert any(error.startswith(expected) for error in errors), errors


def test_application_syncs_the_chart_and_the_manifests_of_one_revision() -> None:
    spec = application()["spec"]
    chart, manifests = spec["sources"]
    assert chart["path"] == "charts/llm-router"
    assert chart["helm"]["valuesObject"]["crds"]["install"] is True
    assert manifests["path"] == "manifests"
    assert (REPO_ROOT / manifests["path"] / "kustomization.yaml").is_file()
    assert chart["repoURL"] == manifests["repoURL"]
    assert chart["targetRevision"] == manifests["targetRevision"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", chart["targetRevision"]), "a release tag, not a moving branch"
    options = spec["syncPolicy"]["syncOptions"]
    assert {"ServerSideApply=true", "CreateNamespace=true"} <= set(options)


def test_application_never_overwrites_the_real_api_key() -> None:
    spec = application()["spec"]
    secret = one(MANIFESTS, "Secret")
    [ignored] = [item for item in spec["ignoreDifferences"] if item["kind"] == "Secret"]
    assert ignored["name"] == secret["metadata"]["name"]
    assert {"/data", "/stringData"} <= set(ignored["jsonPointers"])
    assert "RespectIgnoreDifferences=true" in spec["syncPolicy"]["syncOptions"]


def test_chart_source_exists_once_the_chart_is_merged() -> None:
    """The chart is written on another branch; once it is here, the Application's path must be a chart."""
    if not CHART.exists():
        pytest.skip("charts/llm-router is not on this branch yet")
    assert (CHART / "Chart.yaml").is_file()


# ------------------------------------------------------------------ kind and the README walkthrough


def test_kind_config_is_one_control_plane_and_one_worker() -> None:
    [config] = load_yaml_documents(REPO_ROOT / "kind-config.yaml")
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["kind"] == "Cluster"
    assert [node["role"] for node in config["nodes"]] == ["control-plane", "worker"]


def walkthrough() -> str:
    text = README.read_text(encoding="utf-8")
    assert WALKTHROUGH_TITLE in text
    section = text.split(WALKTHROUGH_TITLE, 1)[1]
    return section.split("\n## ", 1)[0]


def walkthrough_commands() -> list[str]:
    """The shell lines of the section's ```sh blocks, continuation lines joined."""
    blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", walkthrough(), flags=re.DOTALL)
    joined = "\n".join(blocks).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


PATH_ARGUMENT = re.compile(
    r"(?<![\w./-])((?:kind-config\.yaml|crds/|charts/[\w./-]+|manifests/[\w./-]*|docker/[\w./-]+))")


def referenced_paths() -> list[str]:
    return sorted({match.rstrip("/") for command in walkthrough_commands() for match in PATH_ARGUMENT.findall(command)})


def test_walkthrough_runs_the_steps_the_issue_asks_for() -> None:
    commands = "\n".join(walkthrough_commands())
    for step in ("kind create cluster", "--config kind-config.yaml", "helm install", "charts/llm-router",
                 "--set triton.gpus=0", "--set crds.install=true", "kubectl apply -n llm-router -k manifests/",
                 "kubectl get llm-router -A", "port-forward svc/llm-router 8080", "curl ", "kubectl wait",
                 "kind load docker-image"):
        assert step in commands, step
    assert "from openai import OpenAI" in walkthrough()


def test_walkthrough_names_files_that_exist_or_come_with_the_chart() -> None:
    paths = referenced_paths()
    assert {"kind-config.yaml", "manifests", "manifests/in-cluster", "charts/llm-router"} <= set(paths)
    missing = [path for path in paths if not (REPO_ROOT / path).exists() and not path.startswith("charts/")]
    assert missing == []


def _helm_sets() -> list[str]:
    return sorted({match for command in walkthrough_commands() for match in re.findall(r"--set ([\w.]+)=", command)})


@pytest.mark.parametrize("key", _helm_sets())
def test_helm_set_names_a_chart_value(key: str) -> None:
    """``--set`` silently accepts any name; check the chart's values.yaml has it (once the chart is merged)."""
    values_file = CHART / "values.yaml"
    if not values_file.is_file():
        pytest.skip("charts/llm-router is not on this branch yet")
    node: Any = yaml.safe_load(values_file.read_text(encoding="utf-8"))
    for part in key.split("."):
        assert isinstance(node, dict) and part in node, f"{key}: no {part!r} in {values_file}"
        node = node[part]


def test_files_named_in_the_walkthroughs_prose_exist() -> None:
    """Backticked repository paths in the section (``docker/proxy.Dockerfile``, ``manifests/argocd/...``)."""
    named = {token.rstrip("/") for token in re.findall(r"`([\w.-]+(?:/[\w.-]*)+|[\w-]+\.(?:yaml|py))`", walkthrough())
             if not token.startswith(("http", "x-llm-router", "/"))}
    assert {"docker/proxy.Dockerfile", "manifests/argocd/llm-router.application.yaml",
            "tests/test_manifests_cluster.py"} <= named
    missing = sorted(path for path in named if not (REPO_ROOT / path).exists() and not path.startswith("charts/"))
    assert missing == []
