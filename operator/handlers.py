"""The kopf handlers: thin reactions that all end in ``reconcile_namespace``.

Any change of a DownstreamLLM or RoutingPolicy (created, changed, resumed
after an operator restart, deleted) reconciles its whole namespace; so does a
change of a Secret that a DownstreamLLM references (an index keeps which
those are, so other Secrets cost nothing) or that holds the client keys.

No finalizers: there are no ``on.delete`` handlers, timers or daemons, so
kopf adds none and a namespace deletion never waits for the operator.
Deletions are seen as raw ``DELETED`` watch events instead (kopf's delete
handlers run only while an object with a finalizer is being deleted, which
ours never is). The rendered objects are owned by the namespace's
RoutingPolicies and go away with the last one by garbage collection; the
deletion handlers take a deleted object out of the config of the others.

Reconciles of one namespace are serialised by a lock; different namespaces
run in parallel (kopf runs synchronous handlers in its thread pool).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import kopf

from . import names
from .apply import ClusterApi, KubernetesApi
from .model_catalog import ModelInfo, read_catalog
from .reconcile import ReconcileOutcome, reconcile_namespace
from .settings import OperatorSettings

log = logging.getLogger(__name__)


@dataclass
class Reconciler:
    """What every handler needs, created once at start-up and kept in kopf's memo."""

    api: ClusterApi
    settings: OperatorSettings
    models: dict[str, ModelInfo]
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)

    def _lock(self, namespace: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(namespace, threading.Lock())

    def reconcile(self, namespace: str) -> ReconcileOutcome:
        with self._lock(namespace):
            outcome = reconcile_namespace(namespace, self.api, self.settings, self.models)
        log.info("namespace %s: revision %s, wrote %s, deleted %s, statuses %s%s", namespace, outcome.revision,
                 outcome.applied or "nothing", outcome.deleted or "nothing", outcome.statuses or "unchanged",
                 f", error: {outcome.error}" if outcome.error else "")
        if outcome.error:
            raise kopf.TemporaryError(outcome.error, delay=15)
        return outcome


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """One replica, no peering objects; kopf's bookkeeping in annotations (a status field it wrote
    would be pruned by the CRDs' status schema)."""
    settings.peering.standalone = True
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.GROUP, key="last-handled-configuration")
    settings.posting.level = logging.WARNING


def new_reconciler(operator_settings: OperatorSettings, api: ClusterApi | None = None) -> Reconciler:
    return Reconciler(api or KubernetesApi(operator_settings.field_manager), operator_settings,
                      read_catalog(operator_settings.model_repository))


def _reconcile(memo: kopf.Memo, namespace: str | None) -> None:
    if namespace:
        memo.reconciler.reconcile(namespace)


@kopf.on.resume(names.GROUP, names.VERSION, names.LLM_PLURAL)
@kopf.on.create(names.GROUP, names.VERSION, names.LLM_PLURAL)
@kopf.on.update(names.GROUP, names.VERSION, names.LLM_PLURAL)
def downstream_llm_changed(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    _reconcile(memo, namespace)


def _is_deletion(type: str | None, **_: Any) -> bool:  # "type" is kopf's keyword for the event type
    return type == "DELETED"


@kopf.on.event(names.GROUP, names.VERSION, names.LLM_PLURAL, when=_is_deletion)
def downstream_llm_deleted(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    _reconcile(memo, namespace)


@kopf.on.resume(names.GROUP, names.VERSION, names.POLICY_PLURAL)
@kopf.on.create(names.GROUP, names.VERSION, names.POLICY_PLURAL)
@kopf.on.update(names.GROUP, names.VERSION, names.POLICY_PLURAL)
def routing_policy_changed(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    _reconcile(memo, namespace)


@kopf.on.event(names.GROUP, names.VERSION, names.POLICY_PLURAL, when=_is_deletion)
def routing_policy_deleted(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    _reconcile(memo, namespace)


@kopf.index(names.GROUP, names.VERSION, names.LLM_PLURAL)
def referenced_secrets(namespace: str | None, spec: kopf.Spec, **_: Any) -> dict[tuple[str | None, str], bool]:
    """(namespace, Secret name) for every Secret a DownstreamLLM references."""
    ref = spec.get("apiKeySecretRef")
    return {(namespace, ref["name"]): True} if isinstance(ref, dict) and ref.get("name") else {}


def _is_referenced(namespace: str | None, name: str | None, referenced_secrets: kopf.Index, memo: kopf.Memo,
                   **_: Any) -> bool:
    """A Secret a DownstreamLLM references, or the client keys Secret (``proxy.client_auth``) of any namespace."""
    client_auth = memo.reconciler.settings.proxy.client_auth
    return (namespace, name) in referenced_secrets or (client_auth.enabled and name == client_auth.secret_name)


@kopf.on.event("", "v1", "secrets", when=_is_referenced)
def referenced_secret_changed(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A referenced Secret appeared, changed or went away: its LLMs' ResolvedRefs (or, for the client keys,
    the policies' Ready) may flip."""
    _reconcile(memo, namespace)


@kopf.on.startup()
def start(settings: kopf.OperatorSettings, **_: Any) -> None:
    configure_kopf(settings)
