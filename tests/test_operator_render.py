"""Rendering (``llm_router.operator.render``, ``rbac``): pure functions, checked against the Kubernetes
OpenAPI schemas (strict) for the oldest and newest Kubernetes versions supported, and against the proxy's
own config loader."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
import yaml
from llm_router.operator import names
from llm_router.operator.apply import MANAGED_KINDS
from llm_router.operator.model_catalog import read_catalog
from llm_router.operator.rbac import rbac_manifests
from llm_router.operator.reconcile import config_options
from llm_router.operator.render import (
    Owner,
    SecretMount,
    pod_disruption_budget_min_available,
    render_namespace,
    termination_grace_seconds,
)
from llm_router.operator.settings import OperatorSettings
from llm_router.operator.translate import ConfigOptions, NamespaceResources, Translation, translate
from llm_router.proxy.config_file import parse_config
from llm_router.proxy.model_classifier import DEFAULT_MODEL_REPOSITORY
from operator_resources import downstream_llm, routing_policy, rules_classifier

OLDEST, NEWEST = "1.28.0", kubernetes_validate.latest_version()
CATALOG = read_catalog(None)
OWNERS = [Owner(names.API_VERSION, names.POLICY_KIND, "tasks", "uid-1"),
          Owner(names.API_VERSION, names.POLICY_KIND, "rules", "uid-2")]
LLMS = [downstream_llm("big", secret="big-key"), downstream_llm("small", secret="shared.keys.example", key="small"),
        downstream_llm("local")]
SECRETS = {"big-key": frozenset({"api-key", "unused"}), "shared.keys.example": frozenset({"small", "other"})}
POLICIES = [routing_policy("tasks", default=True),
            routing_policy("rules", classifier=rules_classifier(), routes={"code": ["local", "big"]})]


DEFAULT_OPTIONS = ConfigOptions(model_repository="/opt/llm-router/triton_models")


def translated(policies: list[dict[str, Any]] = POLICIES, options: ConfigOptions = DEFAULT_OPTIONS) -> Translation:
    return translate(NamespaceResources("team-a", LLMS, policies, SECRETS, CATALOG), options)


def rendered(settings: OperatorSettings | None = None, policies: list[dict[str, Any]] = POLICIES,
             owners: list[Owner] = OWNERS) -> dict[str, dict[str, Any]]:
    translation = translated(policies, config_options(settings) if settings else DEFAULT_OPTIONS)
    assert translation.config is not None
    objects = render_namespace(settings or OperatorSettings(), "team-a", translation.config,
                               translation.secret_mounts, translation.served_models, owners)
    return {f"{obj['kind']}/{obj['metadata']['name']}": obj for obj in objects}


SETTINGS_VARIANTS = {
    "defaults": OperatorSettings(),
    "autoscaling, CPU-only Triton, placement": OperatorSettings.model_validate({
        "proxy": {"autoscaling": {"enabled": True, "min_replicas": 2, "max_replicas": 6}},
        "triton": {"gpus": 0, "node_selector": {"pool": "inference"}, "instances_per_model": 2,
                   "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute",
                                    "tolerationSeconds": 30}]},
    }),
    "two GPUs, no tolerations": OperatorSettings.model_validate({"triton": {"gpus": 2, "tolerations": []}}),
    "fenced, client keys, text logs, long drain": OperatorSettings.model_validate({"proxy": {
        "log_format": "text", "drain": {"delay_seconds": 2.5, "timeout_seconds": 60},
        "pod_disruption_budget": {"enabled": True, "min_available": 0},
        "network_policy": {"enabled": True, "allow_from": [
            {"namespace_labels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
            {"namespace_labels": {}, "pod_labels": {"app.kubernetes.io/name": "prometheus"}},
            {"pod_labels": {"role": "client"}}]},
        "client_auth": {"enabled": True, "secret_name": "llm-router-clients", "secret_key": "clients.yaml"}}}),
}


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("variant", list(SETTINGS_VARIANTS))
def test_every_object_validates_strictly(variant: str, version: str) -> None:
    objects = list(rendered(SETTINGS_VARIANTS[variant]).values())
    objects += rbac_manifests(SETTINGS_VARIANTS[variant], "llm-router-operator", "llm-router-system")
    objects += rbac_manifests(OperatorSettings(watch_namespaces=["team-a", "team-b"]), "op", "llm-router-system")
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_catches_a_misplaced_field() -> None:
    """The check above can fail: an unknown field in a rendered object is an error."""
    deployment = rendered()["Deployment/llm-router"]
    deployment["spec"]["template"]["spec"]["containers"][0]["mountPath"] = "/oops"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, NEWEST, strict=True)


def test_the_config_map_is_the_proxys_own_config() -> None:
    config_map = rendered()["ConfigMap/llm-router-config"]
    text = config_map["data"][names.CONFIG_KEY]
    loaded = parse_config(text, source="config.yaml")
    assert loaded == translated().config
    assert config_map["metadata"]["annotations"][names.REVISION_ANNOTATION] == loaded.revision
    assert [policy.name for policy in loaded.policies] == ["rules", "tasks"]
    assert loaded.router.default_policy == "tasks"
    assert loaded.llm("small").api_key.file == "/var/run/secrets/llm-router/shared.keys.example/small"


def test_proxy_deployment_mounts_config_directory_and_only_referenced_secret_keys() -> None:
    pod = rendered()["Deployment/llm-router"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["llm-router", "serve", "--config", "/etc/llm-router/config.yaml", "--host",
                                    "0.0.0.0", "--port", "8080", "--log-format", "json"]
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert "subPath" not in mounts["/etc/llm-router"], "a subPath mount never sees kubelet's ..data swap"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes[mounts["/etc/llm-router"]["name"]]["configMap"]["name"] == names.CONFIG_MAP
    big = volumes[mounts["/var/run/secrets/llm-router/big-key"]["name"]]["secret"]
    assert big["items"] == [{"key": "api-key", "path": "api-key"}]
    dotted = volumes[mounts["/var/run/secrets/llm-router/shared.keys.example"]["name"]]["secret"]
    assert (dotted["secretName"], dotted["items"]) == ("shared.keys.example", [{"key": "small", "path": "small"}])
    assert all(mount["readOnly"] for path, mount in mounts.items() if path.startswith(names.SECRETS_DIR))
    assert (container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"]) == \
        ("/health/ready", "/health/live")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_secret_volume_names_are_dns_labels() -> None:
    long_name = "a" * 70 + ".example"
    assert SecretMount("big-key", ("api-key",)).volume == "secret-big-key"
    for name in ("shared.keys.example", long_name):
        volume = SecretMount(name, ("k",)).volume
        assert len(volume) <= 63 and "." not in volume
    assert SecretMount(long_name, ("k",)).volume != SecretMount(long_name + "x", ("k",)).volume


def test_replicas_or_autoscaler() -> None:
    fixed = rendered()
    assert fixed["Deployment/llm-router"]["spec"]["replicas"] == 2
    assert "HorizontalPodAutoscaler/llm-router" not in fixed
    scaled = rendered(SETTINGS_VARIANTS["autoscaling, CPU-only Triton, placement"])
    assert "replicas" not in scaled["Deployment/llm-router"]["spec"], "the HPA owns replicas"
    hpa = scaled["HorizontalPodAutoscaler/llm-router"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"], hpa["scaleTargetRef"]["name"]) == (2, 6, "llm-router")


def test_triton_serves_the_policies_models_on_gpus() -> None:
    objects = rendered(SETTINGS_VARIANTS["two GPUs, no tolerations"])
    models = objects["ConfigMap/llm-router-triton-models"]["data"]
    assert sorted(models) == ["task_router.config.pbtxt"]
    assert "instance_group [ { kind: KIND_GPU count: 1 } ]" in models["task_router.config.pbtxt"]
    pod = objects["Deployment/llm-router-triton"]["spec"]["template"]["spec"]
    triton = pod["containers"][0]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert "--model-repository=/models" in triton["command"]
    assert pod["initContainers"][0]["command"][-4:] == ["/opt/llm-router/triton_models", "/model-configs", "/models",
                                                        "task_router"]
    ports = {port["name"]: port["port"] for port in objects["Service/llm-router-triton"]["spec"]["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}


QUALITY_POLICY = routing_policy("cost", classifier={"type": "Quality", "model": "quality_router", "threshold": 0.5},
                                routes={"strong": ["big", "local"], "weak": ["small"]})


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
def test_quality_policy_renders_triton_on_gpus_and_the_proxys_config(version: str) -> None:
    objects = rendered(SETTINGS_VARIANTS["two GPUs, no tolerations"], policies=[*POLICIES, QUALITY_POLICY])
    for obj in objects.values():
        kubernetes_validate.validate(obj, version, strict=True)
    models = objects["ConfigMap/llm-router-triton-models"]["data"]
    assert sorted(models) == ["quality_router.config.pbtxt", "task_router.config.pbtxt"]
    # The committed CPU config of the model, with the GPU instance group: 3 classes, no SCORES output.
    committed = (DEFAULT_MODEL_REPOSITORY / "quality_router" / "config.pbtxt").read_text()
    assert models["quality_router.config.pbtxt"] == committed.replace("KIND_CPU", "KIND_GPU")
    assert "SCORES" not in models["quality_router.config.pbtxt"]
    init = objects["Deployment/llm-router-triton"]["spec"]["template"]["spec"]["initContainers"][0]
    assert init["command"][-2:] == ["quality_router", "task_router"]
    loaded = parse_config(objects["ConfigMap/llm-router-config"]["data"][names.CONFIG_KEY], source="config.yaml")
    cost = loaded.policy("cost")
    assert (cost.classifier.type, cost.classifier.model, cost.classifier.threshold) == ("quality", "quality_router",
                                                                                        0.5)
    assert loaded.router.classifier_backend.triton_url == "llm-router-triton.team-a.svc:8001"


def test_quality_policy_alone_still_brings_triton() -> None:
    objects = rendered(policies=[QUALITY_POLICY], owners=[Owner(names.API_VERSION, names.POLICY_KIND, "cost", "u")])
    assert sorted(objects["ConfigMap/llm-router-triton-models"]["data"]) == ["quality_router.config.pbtxt"]


def test_cpu_only_triton_has_no_gpu_limit_and_honours_placement() -> None:
    objects = rendered(SETTINGS_VARIANTS["autoscaling, CPU-only Triton, placement"])
    pod = objects["Deployment/llm-router-triton"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert pod["nodeSelector"] == {"pool": "inference"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute",
                                   "tolerationSeconds": 30}]
    assert "kind: KIND_CPU count: 2" in objects["ConfigMap/llm-router-triton-models"]["data"][
        "task_router.config.pbtxt"]


def triton_hash(objects: dict[str, dict[str, Any]]) -> str:
    return objects["Deployment/llm-router-triton"]["spec"]["template"]["metadata"]["annotations"][
        names.TRITON_MODELS_ANNOTATION]


def test_triton_pod_template_changes_only_with_what_triton_serves() -> None:
    base = rendered()
    rerouted = rendered(policies=[routing_policy("tasks", default=True, routes={"Chatbot": ["small"]}), POLICIES[1]])
    assert rerouted["ConfigMap/llm-router-config"] != base["ConfigMap/llm-router-config"]
    assert rerouted["Deployment/llm-router-triton"] == base["Deployment/llm-router-triton"]
    assert rerouted["Deployment/llm-router"] == base["Deployment/llm-router"]
    more_models = rendered(policies=[*POLICIES, routing_policy("complex", classifier={"type": "ComplexityRouter"},
                                                               routes={"Reasoning": ["big"]})])
    assert triton_hash(more_models) != triton_hash(base)
    more_instances = rendered(OperatorSettings.model_validate({"triton": {"instances_per_model": 3}}))
    assert triton_hash(more_instances) != triton_hash(base)


def test_no_triton_without_model_policies() -> None:
    objects = rendered(policies=[POLICIES[1]])
    assert sorted(objects) == ["ConfigMap/llm-router-config", "Deployment/llm-router",
                               "PodDisruptionBudget/llm-router", "Service/llm-router"]


def test_every_object_is_labelled_and_owned_by_every_policy() -> None:
    for obj in rendered().values():
        metadata = obj["metadata"]
        assert metadata["namespace"] == "team-a"
        assert metadata["labels"][names.LABEL_MANAGED_BY] == names.MANAGED_BY
        assert metadata["labels"][names.LABEL_PART_OF] == "llm-router"
        assert [(ref["name"], ref["uid"], ref["controller"]) for ref in metadata["ownerReferences"]] == \
            [("rules", "uid-2", False), ("tasks", "uid-1", False)]
        assert "finalizers" not in metadata


def test_values_cannot_change_the_documents_structure() -> None:
    """Everything enters the templates through tojson: a hostile string stays one string."""
    hostile = 'registry.example/img:1"\n  kind: Secret\nx: {'
    settings = OperatorSettings.model_validate({"proxy": {"image": hostile}, "triton": {"image": hostile}})
    objects = rendered(settings)
    assert objects["Deployment/llm-router"]["spec"]["template"]["spec"]["containers"][0]["image"] == hostile
    assert objects["Deployment/llm-router-triton"]["spec"]["template"]["spec"]["containers"][0]["image"] == hostile
    assert {obj["kind"] for obj in objects.values()} == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}


def test_rbac_is_namespaced_when_namespaces_are_listed() -> None:
    cluster_wide = rbac_manifests(OperatorSettings(), "sa", "ops")
    assert [obj["kind"] for obj in cluster_wide] == ["ClusterRole", "ClusterRoleBinding"]
    listed = rbac_manifests(OperatorSettings(watch_namespaces=["team-a"]), "sa", "ops")
    assert [obj["kind"] for obj in listed] == ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
    cluster_rules = json.dumps(listed[0]["rules"])
    assert "secrets" not in cluster_rules and "deployments" not in cluster_rules
    for obj in cluster_wide + listed:
        for rule in obj.get("rules", []):
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            if "secrets" in rule["resources"]:
                assert set(rule["verbs"]) == {"list", "watch"}


def test_settings_from_file_and_environment(tmp_path: Any) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump({"triton": {"gpus": 4}, "watch_namespaces": ["a"]}))
    settings = OperatorSettings.load(path, environ={"LLM_ROUTER_OPERATOR_NAMESPACES": "b, c"})
    assert (settings.triton.gpus, settings.watch_namespaces) == (4, ["b", "c"])
    with pytest.raises(ValueError, match="min_replicas"):
        OperatorSettings.model_validate({"proxy": {"autoscaling": {"min_replicas": 5, "max_replicas": 2}}})


FENCED = SETTINGS_VARIANTS["fenced, client keys, text logs, long drain"]


def proxy_pod(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return objects["Deployment/llm-router"]["spec"]["template"]["spec"]


def test_log_format_and_drain_reach_the_container_and_the_config() -> None:
    default = rendered()
    assert proxy_pod(default)["containers"][0]["command"][-2:] == ["--log-format", "json"]
    assert proxy_pod(default)["terminationGracePeriodSeconds"] == 5 + 30 + 5
    fenced = rendered(FENCED)
    assert proxy_pod(fenced)["containers"][0]["command"][-2:] == ["--log-format", "text"]
    assert proxy_pod(fenced)["terminationGracePeriodSeconds"] == 68, "ceil(2.5 + 60) + 5"
    config = parse_config(fenced["ConfigMap/llm-router-config"]["data"][names.CONFIG_KEY])
    assert (config.router.drain.delay_seconds, config.router.drain.timeout_seconds) == (2.5, 60)


@pytest.mark.parametrize(("drain", "grace"), [((0, 0.5), 6), ((5, 30), 40), ((300, 3600), 3905), ((0.1, 0.1), 6)])
def test_termination_grace_covers_the_drain(drain: tuple[float, float], grace: int) -> None:
    settings = OperatorSettings.model_validate({"proxy": {"drain": {"delay_seconds": drain[0],
                                                                    "timeout_seconds": drain[1]}}})
    assert termination_grace_seconds(settings.proxy) == grace
    assert grace >= sum(drain) + 5


def test_drain_settings_have_the_proxys_bounds() -> None:
    for field, bad in (("delay_seconds", -1), ("delay_seconds", 301), ("timeout_seconds", 0),
                       ("timeout_seconds", 3601)):
        with pytest.raises(ValueError, match=f"drain.{field}"):
            OperatorSettings.model_validate({"proxy": {"drain": {field: bad}}})


@pytest.mark.parametrize(("proxy", "min_available"), [
    ({}, 1),
    ({"pod_disruption_budget": {"enabled": False}}, None),
    ({"replicas": 1}, None),
    ({"replicas": 0}, None),
    ({"replicas": 3, "pod_disruption_budget": {"min_available": 2}}, 2),
    ({"replicas": 3, "pod_disruption_budget": {"min_available": 3}}, None),
    ({"replicas": 3, "pod_disruption_budget": {"min_available": 0}}, 0),
    ({"replicas": 1, "autoscaling": {"enabled": True, "min_replicas": 3}}, 1),
    ({"replicas": 5, "autoscaling": {"enabled": True, "min_replicas": 1}}, None),
])
def test_budget_only_where_it_cannot_block_every_eviction(proxy: dict[str, Any], min_available: int | None) -> None:
    settings = OperatorSettings.model_validate({"proxy": proxy})
    assert pod_disruption_budget_min_available(settings.proxy) == min_available
    objects = rendered(settings)
    budget = objects.get("PodDisruptionBudget/llm-router")
    if min_available is None:
        assert budget is None
    else:
        assert budget is not None
        assert budget["spec"] == {"minAvailable": min_available,
                                  "selector": objects["Deployment/llm-router"]["spec"]["selector"]}


def test_network_policies_fence_the_proxy_and_triton() -> None:
    assert not any(key.startswith("NetworkPolicy/") for key in rendered())
    objects = rendered(FENCED)
    proxy = objects["NetworkPolicy/llm-router"]["spec"]
    assert proxy["podSelector"] == objects["Deployment/llm-router"]["spec"]["selector"]
    assert proxy["policyTypes"] == ["Ingress"], "egress stays open: the LLMs are outside"
    [rule] = proxy["ingress"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
        {"namespaceSelector": {"matchLabels": {}}, "podSelector": {"matchLabels": {"app.kubernetes.io/name":
                                                                                      "prometheus"}}},
        {"podSelector": {"matchLabels": {"role": "client"}}}]
    triton = objects["NetworkPolicy/llm-router-triton"]["spec"]
    assert triton["podSelector"] == objects["Deployment/llm-router-triton"]["spec"]["selector"]
    assert triton["policyTypes"] == ["Ingress"]
    [rule] = triton["ingress"]
    assert rule["from"] == [{"podSelector": objects["Deployment/llm-router"]["spec"]["selector"]}]
    assert [port["port"] for port in rule["ports"]] == [8000, 8001, 8002]
    # The proxy's selector picks the proxy pods only, never Triton's.
    proxy_labels = objects["Deployment/llm-router"]["spec"]["template"]["metadata"]["labels"]
    triton_labels = objects["Deployment/llm-router-triton"]["spec"]["template"]["metadata"]["labels"]
    selector = rule["from"][0]["podSelector"]["matchLabels"]
    assert selector.items() <= proxy_labels.items() and not selector.items() <= triton_labels.items()


def test_open_network_policy_admits_every_source_on_the_port_only() -> None:
    objects = rendered(OperatorSettings.model_validate({"proxy": {"network_policy": {"enabled": True}}}))
    [rule] = objects["NetworkPolicy/llm-router"]["spec"]["ingress"]
    assert rule == {"ports": [{"port": 8080, "protocol": "TCP"}]}, "no 'from': every source"
    rules_only = rendered(OperatorSettings.model_validate({"proxy": {"network_policy": {"enabled": True}}}),
                          policies=[POLICIES[1]])
    assert "NetworkPolicy/llm-router-triton" not in rules_only, "no Triton, no policy for it"


def test_client_keys_secret_is_mounted_read_only_and_named_in_the_config() -> None:
    objects = rendered(FENCED)
    pod = proxy_pod(objects)
    [mount] = [mount for mount in pod["containers"][0]["volumeMounts"] if mount["name"] == "client-keys"]
    assert mount == {"name": "client-keys", "mountPath": "/var/run/secrets/llm-router-clients", "readOnly": True}
    [volume] = [volume for volume in pod["volumes"] if volume["name"] == "client-keys"]
    assert volume["secret"] == {"secretName": "llm-router-clients", "defaultMode": 0o440, "optional": True,
                                "items": [{"key": "clients.yaml", "path": "clients.yaml"}]}
    config = parse_config(objects["ConfigMap/llm-router-config"]["data"][names.CONFIG_KEY])
    assert (config.router.auth.enabled, config.router.auth.keys_file) == (
        True, "/var/run/secrets/llm-router-clients/clients.yaml")
    plain = rendered(OperatorSettings())
    assert not any(volume["name"] == "client-keys" for volume in proxy_pod(plain)["volumes"])
    assert parse_config(plain["ConfigMap/llm-router-config"]["data"][names.CONFIG_KEY]).router.auth.enabled is False


@pytest.mark.parametrize(("client_auth", "problem"), [
    ({"enabled": True}, "client_auth.enabled needs client_auth.secret_name"),
    ({"enabled": True, "secret_name": "Clients_Keys"}, "secret_name"),
    ({"enabled": True, "secret_name": "clients", "secret_key": ".."}, "secret_key"),
    ({"enabled": True, "secret_name": "clients", "secret_key": "a/b"}, "secret_key"),
    ({"enabled": True, "secret_name": "clients", "secret_key": "..data"}, "secret_key"),
])
def test_invalid_client_auth_settings_are_refused(client_auth: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        OperatorSettings.model_validate({"proxy": {"client_auth": client_auth}})


@pytest.mark.parametrize("secret_key", ["keys.yaml", ".keys", "client-keys_v2.json", "K"])
def test_client_keys_file_is_under_the_mount(secret_key: str) -> None:
    settings = OperatorSettings.model_validate(
        {"proxy": {"client_auth": {"enabled": True, "secret_name": "clients.team-a", "secret_key": secret_key}}})
    assert settings.proxy.client_auth.keys_file == f"/var/run/secrets/llm-router-clients/{secret_key}"


@pytest.mark.parametrize("allow_from", [[{}], [{"pod_labels": {"app": "bad value!"}}],
                                        [{"namespace_labels": {"-bad-key": "x"}}]])
def test_invalid_network_policy_peers_are_refused(allow_from: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="allow_from"):
        OperatorSettings.model_validate({"proxy": {"network_policy": {"enabled": True, "allow_from": allow_from}}})


def test_settings_shape_agreed_with_the_chart() -> None:
    """The keys the Helm chart emits (operator/README.md), read back with their defaults."""
    settings = OperatorSettings.model_validate(yaml.safe_load("""
proxy:
  log_format: json
  drain: {delay_seconds: 5, timeout_seconds: 30}
  pod_disruption_budget: {enabled: true, min_available: 1}
  network_policy:
    enabled: false
    allow_from: []
  client_auth: {enabled: false, secret_name: null, secret_key: keys.yaml}
"""))
    assert settings == OperatorSettings()


def test_rbac_grants_exactly_what_the_rendered_kinds_need() -> None:
    [cluster_role, _] = rbac_manifests(OperatorSettings(), "sa", "ops")
    apply_verbs = {"get", "list", "create", "patch", "delete"}
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in cluster_role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    plurals = {"ConfigMap": "configmaps", "Service": "services", "Deployment": "deployments",
               "HorizontalPodAutoscaler": "horizontalpodautoscalers", "PodDisruptionBudget": "poddisruptionbudgets",
               "NetworkPolicy": "networkpolicies"}
    managed = {(api_version.rpartition("/")[0], plurals[kind]) for api_version, kind in MANAGED_KINDS}
    for key in managed:
        assert granted[key] == apply_verbs, key
    rendered_kinds = {(obj["apiVersion"].rpartition("/")[0], plurals[obj["kind"]])
                      for variant in SETTINGS_VARIANTS.values() for obj in rendered(variant).values()}
    assert rendered_kinds == managed, "every rendered kind is managed (deleted when unwanted), and only those"
    writable = {key for key, verbs in granted.items() if verbs & {"create", "patch", "delete"}}
    assert writable - managed == {("llm-router.io", "downstreamllms"), ("llm-router.io", "routingpolicies"),
                                  ("llm-router.io", "downstreamllms/status"),
                                  ("llm-router.io", "routingpolicies/status"), ("", "events")}
