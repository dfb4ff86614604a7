"""One reconcile of one namespace: read, translate, render, write what changed, report status.

Plain synchronous code over a ``ClusterApi``; the kopf handlers only call it.
Whatever triggered it (a policy, an LLM, a Secret), the whole namespace is
recomputed from what is in the API now, so a missed event is repaired by the
next one and the outcome never depends on the order of events.

Minimal change: every rendered object carries the hash of its rendered form
(``llm-router.io/applied-hash``); an object whose live copy has the same hash
is not written, and a status equal to the live one is not written. A reconcile
with nothing changed writes nothing.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from . import names
from .apply import ApiError, ClusterApi
from .conditions import READY, Verdict, merge_conditions, now_rfc3339
from .model_catalog import ModelInfo
from .render import Owner, content_hash, render_namespace
from .settings import OperatorSettings
from .translate import ConfigOptions, NamespaceResources, ObjectResult, Translation, translate

log = logging.getLogger(__name__)


@dataclass
class ReconcileOutcome:
    """What one reconcile did, for logs and tests."""

    revision: str | None = None
    """The config revision the ConfigMap holds afterwards (None: no ConfigMap)."""
    applied: list[str] = field(default_factory=list)
    """``Kind/name`` of every object written."""
    deleted: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    """``Kind/name`` of every custom resource whose status was written."""
    error: str | None = None


def with_applied_hash(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` annotated with the hash of its content (the annotation itself left out)."""
    annotated = copy.deepcopy(obj)
    annotations = annotated["metadata"].setdefault("annotations", {})
    annotations.pop(names.APPLIED_HASH_ANNOTATION, None)
    annotations[names.APPLIED_HASH_ANNOTATION] = content_hash(annotated)
    return annotated


def applied_hash(obj: dict[str, Any] | None) -> str | None:
    if obj is None:
        return None
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(names.APPLIED_HASH_ANNOTATION)


def object_key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["apiVersion"], obj["kind"], obj["metadata"]["name"]


def owners_of(policies: list[dict[str, Any]]) -> list[Owner]:
    return [Owner(names.API_VERSION, names.POLICY_KIND, policy["metadata"]["name"], policy["metadata"]["uid"])
            for policy in policies if (policy.get("metadata") or {}).get("uid")]


def config_options(settings: OperatorSettings) -> ConfigOptions:
    proxy = settings.proxy
    return ConfigOptions(proxy.model_repository, proxy.classifier_timeout_ms, proxy.log_prompts, proxy.drain,
                         proxy.client_auth.keys_file)


def client_keys_problem(settings: OperatorSettings, namespace: str,
                        secret_keys: dict[str, frozenset[str]]) -> str | None:
    """Why the proxy of ``namespace`` cannot read its client keys (None: it can, or client auth is off)."""
    auth = settings.proxy.client_auth
    if not auth.enabled or auth.secret_name is None:
        return None
    keys = secret_keys.get(auth.secret_name)
    if keys is not None and auth.secret_key in keys:
        return None
    missing = (f"Secret {auth.secret_name!r} does not exist in namespace {namespace!r}" if keys is None
               else f"Secret {auth.secret_name!r} has no key {auth.secret_key!r}")
    return (f"client keys unavailable: {missing} (operator setting proxy.client_auth); the proxy answers 503 "
            "to every /v1/ request until it does")


def ready_verdict(result: ObjectResult, translation: Translation, revision: str | None,
                  apply_error: str | None, client_keys: str | None = None) -> Verdict:
    """``Ready``: the config revision that carries this object's generation is in the ConfigMap (and, for a
    RoutingPolicy, the proxy can serve it: its client keys, when required, exist)."""
    if not result.accepted.status:
        return Verdict(READY, False, "NotAccepted", f"left out of the router config: {result.accepted.message}")
    if not result.resolved_refs.status:
        return Verdict(READY, False, "RefsNotResolved",
                       f"left out of the router config: {result.resolved_refs.message}")
    if translation.config is None:
        kept = f"; the proxy keeps serving revision {revision}" if revision else ""
        return Verdict(READY, False, "NoValidPolicy", f"no router config written: {translation.problem}{kept}")
    if apply_error is not None:
        return Verdict(READY, False, "ApplyFailed", apply_error)
    if revision != translation.config.revision:
        return Verdict(READY, False, "Pending", f"config revision {translation.config.revision} is not yet in "
                                                f"ConfigMap {names.CONFIG_MAP}")
    if client_keys is not None and result.kind == names.POLICY_KIND:
        return Verdict(READY, False, "ClientKeysNotFound", client_keys)
    # The revision stays out of the message: otherwise every config change would rewrite every status.
    return Verdict(READY, True, "Ready", f"generation {result.generation} is in the router config "
                                         f"(ConfigMap {names.CONFIG_MAP})")


def desired_status(obj: dict[str, Any], result: ObjectResult, ready: Verdict, now: str) -> dict[str, Any]:
    previous = (obj.get("status") or {}).get("conditions")
    status: dict[str, Any] = {
        "observedGeneration": result.generation,
        "conditions": merge_conditions(previous, [result.accepted, result.resolved_refs, ready], result.generation,
                                       now),
    }
    if result.kind == names.POLICY_KIND and result.categories is not None:
        status["categories"] = result.categories
    return status


def status_changed(obj: dict[str, Any], status: dict[str, Any]) -> bool:
    live = obj.get("status") or {}
    return any(live.get(key) != value for key, value in status.items())


def new_failures(obj: dict[str, Any], verdicts: list[Verdict]) -> list[Verdict]:
    """False verdicts that were not already reported with the same reason and message (one Event each)."""
    previous = {item.get("type"): item for item in (obj.get("status") or {}).get("conditions") or []}
    fresh = []
    for verdict in verdicts:
        if verdict.status:
            continue
        old = previous.get(verdict.type) or {}
        if (old.get("status"), old.get("reason"), old.get("message")) != ("False", verdict.reason, verdict.message):
            fresh.append(verdict)
    return fresh


def reconcile_namespace(namespace: str, api: ClusterApi, settings: OperatorSettings,
                        models: dict[str, ModelInfo], now: str | None = None) -> ReconcileOutcome:
    """Bring one namespace's router and statuses in line with its custom resources."""
    now = now or now_rfc3339()
    outcome = ReconcileOutcome()
    # Objects on their way out (a deletionTimestamp, waiting for someone else's finalizer) are gone for us.
    llms = [obj for obj in api.list_custom(namespace, names.LLM_PLURAL) if not _deleting(obj)]
    policies = [obj for obj in api.list_custom(namespace, names.POLICY_PLURAL) if not _deleting(obj)]
    secret_keys = api.secret_keys(namespace)
    resources = NamespaceResources(namespace, llms, policies, secret_keys, models)
    translation = translate(resources, config_options(settings))
    if translation.config is not None:
        try:
            _write_objects(namespace, api, settings, translation, owners_of(policies), outcome)
        except ApiError as exc:
            outcome.error = str(exc)
            log.error("namespace %s: writing the router failed: %s", namespace, exc)
    live_config = api.get("v1", "ConfigMap", namespace, names.CONFIG_MAP)
    outcome.revision = ((live_config or {}).get("metadata", {}).get("annotations") or {}).get(
        names.REVISION_ANNOTATION)
    for kind, plural, objects in ((names.LLM_KIND, names.LLM_PLURAL, llms),
                                  (names.POLICY_KIND, names.POLICY_PLURAL, policies)):
        for obj in objects:
            result = translation.results[(kind, obj["metadata"]["name"])]
            ready = ready_verdict(result, translation, outcome.revision, outcome.error,
                                  client_keys_problem(settings, namespace, secret_keys))
            _report(api, plural, namespace, obj, result, ready, now, outcome)
    return outcome


def _deleting(obj: dict[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _write_objects(namespace: str, api: ClusterApi, settings: OperatorSettings, translation: Translation,
                   owners: list[Owner], outcome: ReconcileOutcome) -> None:
    assert translation.config is not None
    desired = [with_applied_hash(obj) for obj in render_namespace(
        settings, namespace, translation.config, translation.secret_mounts, translation.served_models, owners)]
    # One listing of what the operator wrote before answers both "unchanged?" and "still wanted?".
    live = {object_key(obj): obj for obj in api.list_managed(namespace)}
    for obj in desired:
        if applied_hash(live.get(object_key(obj))) == applied_hash(obj):
            continue
        api.apply(obj)
        outcome.applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
    wanted = {object_key(obj) for obj in desired}
    for key in live.keys() - wanted:
        api.delete(key[0], key[1], namespace, key[2])
        outcome.deleted.append(f"{key[1]}/{key[2]}")


def _report(api: ClusterApi, plural: str, namespace: str, obj: dict[str, Any], result: ObjectResult, ready: Verdict,
            now: str, outcome: ReconcileOutcome) -> None:
    """Write the object's status if it changed, and an Event for each newly failing condition."""
    involved = {**obj, "apiVersion": names.API_VERSION, "kind": result.kind}
    # Pending is a passing state of every reconcile, not worth an Event; a refusal is.
    for verdict in new_failures(obj, [result.accepted, result.resolved_refs]):
        api.post_event(involved, "Warning", verdict.reason, verdict.message)
    if ready.reason in ("ApplyFailed", "ClientKeysNotFound") and new_failures(obj, [ready]):
        api.post_event(involved, "Warning", ready.reason, ready.message)
    status = desired_status(obj, result, ready, now)
    if not status_changed(obj, status):
        return
    try:
        api.patch_status(plural, namespace, result.name, status)
        outcome.statuses.append(f"{result.kind}/{result.name}")
    except ApiError as exc:  # the object may have been deleted meanwhile; the next event repairs the rest
        log.warning("namespace %s: status of %s %s not written: %s", namespace, result.kind, result.name, exc)

