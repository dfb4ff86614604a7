"""``reconcile_namespace`` against an in-memory API (the Kubernetes boundary replaced, nothing else): what
gets written when, the statuses and Events, and the rendered config served by a real proxy."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kopf
import openai
import pytest
from aiohttp import ClientSession
from llm_router.operator import handlers, names
from llm_router.operator.conditions import Verdict, condition, merge_conditions
from llm_router.operator.model_catalog import read_catalog
from llm_router.operator.reconcile import ReconcileOutcome, reconcile_namespace
from llm_router.operator.settings import OperatorSettings
from llm_router.proxy.config_file import load_config_file
from llm_router.proxy.model_classifier import DEFAULT_MODEL_REPOSITORY
from operator_fake_cluster import FakeCluster
from operator_resources import downstream_llm, routing_policy, rules_classifier

NS = "team-a"
CATALOG = read_catalog(None)
SETTINGS = OperatorSettings()
SECRET_VALUE = "sk-live-never-show-me-0123456789"
EVERYTHING = ["apply ConfigMap/llm-router-config", "apply ConfigMap/llm-router-triton-models",
              "apply Deployment/llm-router-triton", "apply Service/llm-router-triton",
              "apply Deployment/llm-router", "apply Service/llm-router", "apply PodDisruptionBudget/llm-router"]
L, P = names.LLM_KIND, names.POLICY_KIND


def reconcile(cluster: FakeCluster, settings: OperatorSettings = SETTINGS, now: str = "2026-03-01T00:00:00Z",
              namespace: str = NS) -> ReconcileOutcome:
    return reconcile_namespace(namespace, cluster, settings, CATALOG, now=now)


def new_writes(cluster: FakeCluster, action: Any) -> list[str]:
    before = len(cluster.writes)
    action()
    return cluster.writes[before:]


@pytest.fixture
def cluster() -> FakeCluster:
    cluster = FakeCluster()
    cluster.put_secret(NS, "big-key", {"api-key": SECRET_VALUE})
    cluster.put(downstream_llm("big", secret="big-key"))
    cluster.put(downstream_llm("small"))
    cluster.put(routing_policy("tasks", default=True))
    cluster.put(routing_policy("rules", classifier=rules_classifier(), routes={"code": ["big"]},
                               default_route=["big"]))
    return cluster


def conditions_of(cluster: FakeCluster, kind: str, name: str) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in cluster.custom(kind, NS, name)["status"]["conditions"]}


def live_config(cluster: FakeCluster) -> dict[str, Any]:
    obj = cluster.object("v1", "ConfigMap", NS, names.CONFIG_MAP)
    assert obj is not None
    return obj


def test_first_reconcile_writes_everything_and_reports_ready(cluster: FakeCluster) -> None:
    outcome = reconcile(cluster)
    assert cluster.writes[:7] == EVERYTHING
    assert sorted(cluster.writes[7:]) == ["status DownstreamLLM/big", "status DownstreamLLM/small",
                                          "status RoutingPolicy/rules", "status RoutingPolicy/tasks"]
    assert outcome.revision == live_config(cluster)["metadata"]["annotations"][names.REVISION_ANNOTATION]
    for kind, name in [(L, "big"), (L, "small"), (P, "tasks"), (P, "rules")]:
        status = cluster.custom(kind, NS, name)["status"]
        assert status["observedGeneration"] == 1
        assert [(item["type"], item["status"], item["observedGeneration"]) for item in status["conditions"]] == \
            [("Accepted", "True", 1), ("ResolvedRefs", "True", 1), ("Ready", "True", 1)]
    assert cluster.custom(P, NS, "tasks")["status"]["categories"] == 2
    assert cluster.events == []


def test_second_reconcile_writes_nothing(cluster: FakeCluster) -> None:
    reconcile(cluster)
    assert new_writes(cluster, lambda: reconcile(cluster, now="2026-03-01T01:00:00Z")) == []
    assert cluster.events == []


def test_policy_change_writes_only_the_config_map_and_its_status(cluster: FakeCluster) -> None:
    reconcile(cluster)
    revision = live_config(cluster)["metadata"]["annotations"][names.REVISION_ANNOTATION]
    proxy_before = cluster.object("apps/v1", "Deployment", NS, names.PROXY)
    cluster.put(routing_policy("tasks", default=True, routes={"Code Generation": ["big", "small"]}))
    writes = new_writes(cluster, lambda: reconcile(cluster))
    assert writes == ["apply ConfigMap/llm-router-config", "status RoutingPolicy/tasks"]
    assert cluster.object("apps/v1", "Deployment", NS, names.PROXY) == proxy_before, "no proxy restart"
    config = live_config(cluster)
    assert config["metadata"]["annotations"][names.REVISION_ANNOTATION] != revision
    assert "- small" in config["data"][names.CONFIG_KEY]
    status = cluster.custom(P, NS, "tasks")["status"]
    assert status["observedGeneration"] == 2
    assert condition(status["conditions"], "Ready")["observedGeneration"] == 2


def test_llm_change_writes_only_the_config_map(cluster: FakeCluster) -> None:
    reconcile(cluster)
    cluster.put(downstream_llm("small", maxConcurrency=4))
    assert new_writes(cluster, lambda: reconcile(cluster)) == ["apply ConfigMap/llm-router-config",
                                                               "status DownstreamLLM/small"]


def triton_template_hash(cluster: FakeCluster) -> str:
    deployment = cluster.object("apps/v1", "Deployment", NS, names.TRITON)
    assert deployment is not None
    return deployment["spec"]["template"]["metadata"]["annotations"][names.TRITON_MODELS_ANNOTATION]


def test_a_change_of_served_models_rolls_triton_only(cluster: FakeCluster) -> None:
    reconcile(cluster)
    before = triton_template_hash(cluster)
    cluster.put(routing_policy("complex", classifier={"type": "ComplexityRouter"}, routes={"Reasoning": ["big"]}))
    writes = new_writes(cluster, lambda: reconcile(cluster))
    assert triton_template_hash(cluster) != before
    applied = [write for write in writes if write.startswith("apply")]
    assert "apply Deployment/llm-router-triton" in applied
    assert "apply ConfigMap/llm-router-triton-models" in applied
    proxy = cluster.object("apps/v1", "Deployment", NS, names.PROXY)
    assert proxy is not None
    # A new policy is a new owner of every object (metadata only); the proxy's pods stay as they were.
    assert [ref["name"] for ref in proxy["metadata"]["ownerReferences"]] == ["complex", "rules", "tasks"]


def test_instance_group_setting_rolls_triton(cluster: FakeCluster) -> None:
    reconcile(cluster)
    before = triton_template_hash(cluster)
    settings = OperatorSettings.model_validate({"triton": {"instances_per_model": 2}})
    writes = new_writes(cluster, lambda: reconcile(cluster, settings))
    assert writes == ["apply ConfigMap/llm-router-triton-models", "apply Deployment/llm-router-triton"]
    assert triton_template_hash(cluster) != before


def test_invalid_policy_never_breaks_the_valid_ones(cluster: FakeCluster) -> None:
    reconcile(cluster)
    cluster.put(routing_policy("broken", routes={"Poetry": ["big"]}))
    reconcile(cluster)
    loaded = load_config_text(live_config(cluster))
    assert sorted(policy.name for policy in loaded.policies) == ["rules", "tasks"]
    broken = conditions_of(cluster, P, "broken")
    assert (broken["Accepted"]["status"], broken["Accepted"]["reason"]) == ("False", "UnknownCategory")
    assert (broken["Ready"]["status"], broken["Ready"]["reason"]) == ("False", "NotAccepted")
    assert conditions_of(cluster, P, "tasks")["Ready"]["status"] == "True"
    assert [(event["object"], event["type"], event["reason"]) for event in cluster.events] == \
        [("RoutingPolicy/broken", "Warning", "UnknownCategory")]
    reconcile(cluster, now="2026-03-02T00:00:00Z")
    assert len(cluster.events) == 1, "an unchanged failure is reported once"


def test_deleted_llm_flips_the_policy_that_uses_it(cluster: FakeCluster) -> None:
    reconcile(cluster)
    cluster.remove(L, NS, "small")
    reconcile(cluster, now="2026-03-01T02:00:00Z")
    tasks = conditions_of(cluster, P, "tasks")
    assert (tasks["ResolvedRefs"]["status"], tasks["ResolvedRefs"]["reason"]) == ("False", "LLMNotFound")
    assert "['small']" in tasks["ResolvedRefs"]["message"]
    assert tasks["ResolvedRefs"]["lastTransitionTime"] == "2026-03-01T02:00:00Z"
    assert tasks["Accepted"]["lastTransitionTime"] == "2026-03-01T00:00:00Z", "unchanged status keeps its time"
    loaded = load_config_text(live_config(cluster))
    assert [policy.name for policy in loaded.policies] == ["rules"]
    assert [llm.name for llm in loaded.llms] == ["big"]
    assert any(event["reason"] == "LLMNotFound" and "small" in event["message"] for event in cluster.events)


def test_missing_secret_then_created(cluster: FakeCluster) -> None:
    cluster.put(downstream_llm("vendor", secret="vendor-key"))
    cluster.put(routing_policy("vendor-route", classifier=rules_classifier(), routes={"code": ["vendor"]}))
    reconcile(cluster)
    vendor = conditions_of(cluster, L, "vendor")
    assert (vendor["ResolvedRefs"]["status"], vendor["ResolvedRefs"]["reason"]) == ("False", "SecretNotFound")
    assert "'vendor-key'" in vendor["ResolvedRefs"]["message"]
    assert conditions_of(cluster, P, "vendor-route")["ResolvedRefs"]["reason"] == "LLMNotUsable"
    cluster.put_secret(NS, "vendor-key", {"api-key": "sk-other"})
    writes = new_writes(cluster, lambda: reconcile(cluster, now="2026-03-01T03:00:00Z"))
    # A newly referenced Secret is a new volume: the proxy rolls (documented); Triton does not.
    assert [write for write in writes if write.startswith("apply")] == ["apply ConfigMap/llm-router-config",
                                                                        "apply Deployment/llm-router"]
    assert conditions_of(cluster, L, "vendor")["Ready"]["status"] == "True"
    assert conditions_of(cluster, P, "vendor-route")["Ready"]["status"] == "True"


def test_secret_values_never_leave_the_secret(cluster: FakeCluster) -> None:
    cluster.put(downstream_llm("broken", secret="big-key", key="missing"))
    reconcile(cluster)
    written = json.dumps([obj for key, obj in cluster.objects.items()]) + json.dumps(cluster.events)
    assert SECRET_VALUE not in written
    assert "/var/run/secrets/llm-router/big-key/api-key" in live_config(cluster)["data"][names.CONFIG_KEY]


def test_no_valid_policy_writes_no_config(cluster: FakeCluster) -> None:
    empty = FakeCluster()
    empty.put(downstream_llm("small"))
    empty.put(routing_policy("broken", routes={"Poetry": ["small"]}, default_route=["small"]))
    outcome = reconcile(empty)
    assert [write for write in empty.writes if not write.startswith("status")] == []
    assert outcome.revision is None
    small = conditions_of(empty, L, "small")["Ready"]
    assert (small["status"], small["reason"]) == ("False", "NoValidPolicy")
    # With a config already serving, it stays as it was.
    reconcile(cluster)
    before = live_config(cluster)
    for name in ("tasks", "rules"):
        cluster.put(routing_policy(name, routes={"Poetry": ["big"]}))
    writes = new_writes(cluster, lambda: reconcile(cluster))
    assert [write for write in writes if not write.startswith("status")] == []
    assert live_config(cluster) == before
    assert "keeps serving revision" in conditions_of(cluster, L, "big")["Ready"]["message"]


def test_triton_goes_when_no_policy_needs_it(cluster: FakeCluster) -> None:
    reconcile(cluster)
    cluster.remove(P, NS, "tasks")
    writes = new_writes(cluster, lambda: reconcile(cluster))
    assert sorted(write for write in writes if write.startswith("delete")) == [
        "delete ConfigMap/llm-router-triton-models", "delete Deployment/llm-router-triton",
        "delete Service/llm-router-triton"]
    assert "triton_url: null" in live_config(cluster)["data"][names.CONFIG_KEY]


def test_failed_apply_is_reported_and_recovers(cluster: FakeCluster) -> None:
    cluster.fail_apply = "apply ConfigMap llm-router-config: 403 Forbidden"
    outcome = reconcile(cluster)
    assert outcome.error == "apply ConfigMap llm-router-config: 403 Forbidden"
    ready = conditions_of(cluster, P, "tasks")["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ApplyFailed")
    assert {event["reason"] for event in cluster.events} == {"ApplyFailed"}
    cluster.fail_apply = None
    reconcile(cluster, now="2026-03-01T04:00:00Z")
    ready = conditions_of(cluster, P, "tasks")["Ready"]
    assert (ready["status"], ready["lastTransitionTime"]) == ("True", "2026-03-01T04:00:00Z")


def test_objects_being_deleted_are_left_out(cluster: FakeCluster) -> None:
    reconcile(cluster)
    cluster.custom(P, NS, "rules")["metadata"]["deletionTimestamp"] = "2026-03-01T05:00:00Z"
    reconcile(cluster)
    assert [policy.name for policy in load_config_text(live_config(cluster)).policies] == ["tasks"]
    proxy = cluster.object("apps/v1", "Deployment", NS, names.PROXY)
    assert proxy is not None
    assert [ref["name"] for ref in proxy["metadata"]["ownerReferences"]] == ["tasks"]


def test_namespaces_are_independent(cluster: FakeCluster) -> None:
    other = routing_policy("tasks")
    other["metadata"]["namespace"] = "team-b"
    cluster.put(other)
    reconcile(cluster, namespace="team-b")
    assert cluster.object("v1", "ConfigMap", "team-b", names.CONFIG_MAP) is None
    assert cluster.object("v1", "ConfigMap", NS, names.CONFIG_MAP) is None
    status = cluster.custom(P, "team-b", "tasks")["status"]
    assert condition(status["conditions"], "ResolvedRefs")["reason"] == "LLMNotFound"


def test_conditions_keep_their_time_while_the_status_holds() -> None:
    first = merge_conditions(None, [Verdict("Ready", False, "Pending", "waiting")], 1, "t1")
    same = merge_conditions(first, [Verdict("Ready", False, "ApplyFailed", "403")], 2, "t2")
    assert (same[0]["lastTransitionTime"], same[0]["reason"], same[0]["observedGeneration"]) == ("t1", "ApplyFailed", 2)
    flipped = merge_conditions(same, [Verdict("Ready", True, "Ready", "ok")], 2, "t3")
    assert flipped[0]["lastTransitionTime"] == "t3"
    foreign = {"type": "Progressing", "status": "True", "reason": "X", "message": "", "lastTransitionTime": "t0"}
    assert merge_conditions([foreign], [Verdict("Ready", True, "Ready", "ok")], 1, "t4")[1] == foreign


def test_handlers_add_no_finalizer_and_retry_failures(cluster: FakeCluster) -> None:
    registry = kopf.get_default_registry()
    changing = list(registry._changing.get_all_handlers())
    assert {handler.fn.__name__ for handler in changing} == {"routing_policy_changed", "downstream_llm_changed"}
    assert not any(handler.requires_finalizer for handler in changing)
    assert {handler.fn.__name__ for handler in registry._watching.get_all_handlers()} == {
        "downstream_llm_deleted", "routing_policy_deleted", "referenced_secret_changed"}
    assert not list(registry._spawning.get_all_handlers()), "timers and daemons would force a finalizer"
    reconciler = handlers.new_reconciler(SETTINGS, api=cluster)
    assert reconciler.reconcile(NS).revision is not None
    cluster.fail_apply = "apply: 500 Internal Server Error"
    cluster.put(routing_policy("tasks", default=True, routes={"Chatbot": ["small"]}))
    with pytest.raises(kopf.TemporaryError, match="500"):
        reconciler.reconcile(NS)


def load_config_text(config_map: dict[str, Any]) -> Any:
    from llm_router.proxy.config_file import parse_config

    return parse_config(config_map["data"][names.CONFIG_KEY])


# ---------------------------------------------------------------- the contract, end to end


def write_like_kubelet(directory: Path, config_map: dict[str, Any], generation: int) -> None:
    """Project a ConfigMap the way kubelet does: a timestamped directory, ``..data`` pointing at it, and
    each key a symlink through ``..data``; an update swaps ``..data`` atomically."""
    target = directory / f"..2026_03_01_00_00_{generation:02d}"
    target.mkdir()
    for key, value in config_map["data"].items():
        (target / key).write_text(value)
        if not (directory / key).is_symlink():
            (directory / key).symlink_to(Path("..data") / key)
    temporary = directory / "..data_tmp"
    temporary.symlink_to(target.name)
    os.replace(temporary, directory / "..data")


async def wait_for(check: Any, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not await check():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_rendered_config_map_is_served_by_a_real_proxy(tmp_path: Path, upstreams: Any, router: Any) -> None:
    fast, strong = await upstreams("fast"), await upstreams("strong")
    cluster = FakeCluster()
    cluster.put(downstream_llm("fast", api_base=fast.api_base))
    cluster.put(downstream_llm("strong", api_base=strong.api_base))
    cluster.put(routing_policy("tasks", routes={"Code Generation": ["strong"]}, default_route=["fast"]))
    cluster.put(routing_policy("rules", default=True, classifier=rules_classifier(
        {"category": "code", "keywords": ["python"]}), routes={"code": ["strong", "fast"]}, default_route=["fast"]))
    # The image's model repository is this checkout's: the proxy reads the labels of Triton's models there.
    settings = OperatorSettings.model_validate({"proxy": {"model_repository": str(DEFAULT_MODEL_REPOSITORY)}})
    reconcile(cluster, settings)
    mounted = tmp_path / "config"
    mounted.mkdir()
    write_like_kubelet(mounted, live_config(cluster), 1)
    path = mounted / names.CONFIG_KEY
    running = await router(load_config_file(path).model_dump(mode="json"), path=path, write=False)
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key="unused", max_retries=0)

    models = {model.id for model in (await client.models.list()).data}
    assert models == {"router:rules", "router:tasks", "fast", "strong"}
    answer = await client.chat.completions.create(model="router:rules",
                                                  messages=[{"role": "user", "content": "fix my python loop"}])
    assert answer.choices[0].message.content == strong.text()
    assert strong.received[-1].body["model"] == "vendor/strong"

    # A policy change: the operator writes the ConfigMap, kubelet swaps it, the proxy reloads live.
    cluster.put(routing_policy("rules", default=True, classifier=rules_classifier(
        {"category": "code", "keywords": ["python"]}), routes={"code": ["fast"]}, default_route=["fast"]))
    cluster.put(routing_policy("chat", classifier=rules_classifier({"category": "chat", "keywords": ["hello"]}),
                               routes={"chat": ["fast"]}, default_route=["fast"]))
    assert "apply ConfigMap/llm-router-config" in new_writes(cluster, lambda: reconcile(cluster, settings))
    write_like_kubelet(mounted, live_config(cluster), 2)

    async def reloaded() -> bool:
        async with ClientSession() as session, session.get(f"{running.url}/v1/router/config") as response:
            body = await response.json()
        return body["revision"] == live_config(cluster)["metadata"]["annotations"][names.REVISION_ANNOTATION]

    await wait_for(reloaded)
    assert {model.id for model in (await client.models.list()).data} == {"router:chat", "router:rules",
                                                                         "router:tasks", "fast", "strong"}
    answer = await client.chat.completions.create(model="router:rules",
                                                  messages=[{"role": "user", "content": "fix my python loop"}])
    assert answer.choices[0].message.content == fast.text()


@pytest.mark.parametrize("command", [["-m", "llm_router.operator"], ["-m", "llm_router.proxy.cli", "operator", "run"]])
def test_operator_command_without_a_cluster_says_so(tmp_path: Path, command: list[str]) -> None:
    env = {key: value for key, value in os.environ.items() if key != "KUBERNETES_SERVICE_HOST"}
    env["KUBECONFIG"] = str(tmp_path / "no-such-kubeconfig")
    result = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 1
    assert "no cluster to talk to" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------- budget, network policies, client keys, drain


def test_budget_and_network_policies_follow_the_settings(cluster: FakeCluster) -> None:
    reconcile(cluster)
    assert cluster.object("policy/v1", "PodDisruptionBudget", NS, names.PROXY) is not None
    fenced = OperatorSettings.model_validate({"proxy": {"network_policy": {"enabled": True}}})
    writes = new_writes(cluster, lambda: reconcile(cluster, fenced))
    assert writes == ["apply NetworkPolicy/llm-router-triton", "apply NetworkPolicy/llm-router"]
    assert new_writes(cluster, lambda: reconcile(cluster, fenced)) == [], "unchanged: nothing written"
    unfenced = OperatorSettings.model_validate({"proxy": {"pod_disruption_budget": {"enabled": False}}})
    writes = new_writes(cluster, lambda: reconcile(cluster, unfenced))
    assert sorted(writes) == ["delete NetworkPolicy/llm-router", "delete NetworkPolicy/llm-router-triton",
                              "delete PodDisruptionBudget/llm-router"]
    assert cluster.object("networking.k8s.io/v1", "NetworkPolicy", NS, names.PROXY) is None
    # A budget that would block every eviction is not rendered, and one already there goes.
    reconcile(cluster)
    single = OperatorSettings.model_validate({"proxy": {"replicas": 1}})
    writes = new_writes(cluster, lambda: reconcile(cluster, single))
    assert "delete PodDisruptionBudget/llm-router" in writes


def test_drain_change_rolls_the_proxy_with_a_longer_grace_period(cluster: FakeCluster) -> None:
    reconcile(cluster)
    longer = OperatorSettings.model_validate({"proxy": {"drain": {"delay_seconds": 10, "timeout_seconds": 120}}})
    writes = new_writes(cluster, lambda: reconcile(cluster, longer))
    assert [write for write in writes if write.startswith("apply")] == ["apply ConfigMap/llm-router-config",
                                                                         "apply Deployment/llm-router"]
    proxy = cluster.object("apps/v1", "Deployment", NS, names.PROXY)
    assert proxy is not None
    assert proxy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 135
    assert "delay_seconds: 10.0" in live_config(cluster)["data"][names.CONFIG_KEY]


CLIENT_AUTH = OperatorSettings.model_validate(
    {"proxy": {"client_auth": {"enabled": True, "secret_name": "llm-router-clients"}}})


def test_missing_client_keys_secret_is_reported_on_every_policy(cluster: FakeCluster) -> None:
    reconcile(cluster, CLIENT_AUTH)
    assert "keys_file: /var/run/secrets/llm-router-clients/keys.yaml" in live_config(cluster)["data"][names.CONFIG_KEY]
    for name in ("tasks", "rules"):
        ready = conditions_of(cluster, P, name)["Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "ClientKeysNotFound")
        assert "'llm-router-clients' does not exist" in ready["message"] and "503" in ready["message"]
    assert conditions_of(cluster, L, "big")["Ready"]["status"] == "True", "the LLMs are in the config"
    assert sorted((event["object"], event["reason"]) for event in cluster.events) == [
        ("RoutingPolicy/rules", "ClientKeysNotFound"), ("RoutingPolicy/tasks", "ClientKeysNotFound")]
    reconcile(cluster, CLIENT_AUTH, now="2026-03-01T01:00:00Z")
    assert len(cluster.events) == 2, "reported once"
    cluster.put_secret(NS, "llm-router-clients", {"other.yaml": "keys: []"})
    reconcile(cluster, CLIENT_AUTH, now="2026-03-01T02:00:00Z")
    assert "no key 'keys.yaml'" in conditions_of(cluster, P, "tasks")["Ready"]["message"]
    cluster.put_secret(NS, "llm-router-clients", {"keys.yaml": "keys: []"})
    writes = new_writes(cluster, lambda: reconcile(cluster, CLIENT_AUTH, now="2026-03-01T03:00:00Z"))
    assert sorted(writes) == ["status RoutingPolicy/rules", "status RoutingPolicy/tasks"], "no object rewritten"
    ready = conditions_of(cluster, P, "tasks")["Ready"]
    assert (ready["status"], ready["lastTransitionTime"]) == ("True", "2026-03-01T03:00:00Z")


def test_client_keys_secret_triggers_a_reconcile() -> None:
    memo = kopf.Memo(reconciler=handlers.new_reconciler(CLIENT_AUTH, api=FakeCluster()))
    referenced = {("team-a", "big-key"): True}
    assert handlers._is_referenced("team-b", "llm-router-clients", referenced, memo)
    assert handlers._is_referenced("team-a", "big-key", referenced, memo)
    assert not handlers._is_referenced("team-a", "unrelated", referenced, memo)
    plain = kopf.Memo(reconciler=handlers.new_reconciler(SETTINGS, api=FakeCluster()))
    assert not handlers._is_referenced("team-b", "llm-router-clients", referenced, plain)


async def test_client_keys_through_a_real_proxy_503_until_the_secret_is_projected(tmp_path: Path, upstreams: Any,
                                                                                  router: Any) -> None:
    fast = await upstreams("fast")
    cluster = FakeCluster()
    cluster.put(downstream_llm("fast", api_base=fast.api_base))
    cluster.put(routing_policy("rules", default=True, classifier=rules_classifier(), routes={"code": ["fast"]},
                               default_route=["fast"]))
    reconcile(cluster, CLIENT_AUTH)
    assert conditions_of(cluster, P, "rules")["Ready"]["reason"] == "ClientKeysNotFound"
    deployment = cluster.object("apps/v1", "Deployment", NS, names.PROXY)
    assert deployment is not None
    [volume] = [volume for volume in deployment["spec"]["template"]["spec"]["volumes"] if volume["name"] ==
                "client-keys"]
    assert volume["secret"]["optional"] is True, "a missing Secret must not keep the pod from starting"
    # The optional volume of a missing Secret: an empty directory where the rendered keys_file points.
    mount = tmp_path / "clients"
    mount.mkdir()
    text = live_config(cluster)["data"][names.CONFIG_KEY].replace(names.CLIENT_KEYS_DIR, str(mount))
    running = await router(load_config_text({"data": {names.CONFIG_KEY: text}}).model_dump(mode="json"))
    key = "sk-client-team-a-0123456789"
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key=key, max_retries=0)
    messages = [{"role": "user", "content": "fix my python loop"}]
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(model="router:rules", messages=messages)
    assert (refused.value.status_code, refused.value.code) == (503, "auth_unavailable")
    assert fast.received == []

    # The Secret appears: the operator flips Ready, kubelet projects the key, the proxy re-reads it.
    keys = f"keys:\n  - name: team-a\n    key_sha256: {hashlib.sha256(key.encode()).hexdigest()}\n    policies: ['*']\n"
    cluster.put_secret(NS, "llm-router-clients", {"keys.yaml": keys})
    reconcile(cluster, CLIENT_AUTH, now="2026-03-01T01:00:00Z")
    assert conditions_of(cluster, P, "rules")["Ready"]["status"] == "True"
    (mount / "keys.yaml").write_text(keys)
    answer = await client.chat.completions.create(model="router:rules", messages=messages)
    assert answer.choices[0].message.content == fast.text()
    stranger = openai.AsyncOpenAI(base_url=running.base_url, api_key="sk-unknown", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await stranger.chat.completions.create(model="router:rules", messages=messages)
