"""Client API keys: who may call the router, which policies and LLMs each may
use, and at what rate.

The keys file (YAML or JSON; in a cluster, a mounted Secret)::

    keys:
      - name: team-a                    # shows in logs and metrics; the key never does
        key_sha256: 9f86d081884c7d65...  # sha256 hex of the key (preferred), or
        # key: sk-team-a-...             # the key itself
        policies: ["*"]                 # policies it may use; "*" for all
        llms: [fast]                    # LLMs it may reach (default: any its policies route to)
        requests_per_minute: 600        # optional
        tokens_per_minute: 200000       # optional: prompt + completion tokens reported by the LLMs

A client presents its key as ``Authorization: Bearer <key>`` (what the
``openai`` SDKs send) or in an ``api-key`` header (Azure style). Keys are
compared as sha256 digests with ``hmac.compare_digest``, against every entry,
so timing tells nothing about which or how much matched.

The file is re-read when it changes (one ``stat`` per request). A file that
fails to parse or validate is refused with a log line and a metric; the last
good one stays in force.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .config import NAME_PATTERN
from .errors import RouterError
from .metrics import RouterMetrics
from .rate_limits import Limits
from .routing import RouteDecision

log = logging.getLogger(__name__)

ALL = "*"


class Unauthorized(RouterError):
    status = 401
    error_type = "invalid_request_error"


class Forbidden(RouterError):
    status = 403
    error_type = "permission_error"


class KeysUnavailable(RouterError):
    status = 503
    error_type = "service_unavailable"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    key: Annotated[str, Field(min_length=16)] | None = None
    key_sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    policies: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    llms: list[Annotated[str, Field(min_length=1)]] | None = None
    requests_per_minute: Annotated[int, Field(gt=0)] | None = None
    tokens_per_minute: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one_key(self) -> _Entry:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of key, key_sha256")
        return self


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[_Entry]


@dataclass(frozen=True, slots=True)
class ClientKey:
    """One client's identity and permissions (never its key)."""

    name: str
    digest: bytes = dataclasses.field(repr=False)
    policies: frozenset[str]
    llms: frozenset[str] | None
    """``None``: any LLM its policies route to; direct LLM picks then need ``"*"`` in ``policies``."""
    limits: Limits

    def may_use_policy(self, policy: str) -> bool:
        return ALL in self.policies or policy in self.policies

    def may_use_llm(self, llm: str) -> bool:
        return self.llms is None or ALL in self.llms or llm in self.llms

    @property
    def may_see_config(self) -> bool:
        """The whole config names every policy and LLM: only for keys allowed all policies."""
        return ALL in self.policies


class KeysFileError(ValueError):
    """The keys file cannot be used; the message never contains a key."""


def parse_keys(text: str) -> tuple[ClientKey, ...]:
    """The client keys of a keys file; raises ``KeysFileError``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise KeysFileError(f"not valid YAML or JSON{where}") from None
    try:
        parsed = _KeysFile.model_validate(data)
    except ValidationError as exc:
        # Only locations and messages: pydantic's input echo could show a key.
        problems = "; ".join(f"{'.'.join(str(part) for part in error['loc']) or '<file>'}: {error['msg']}"
                             for error in exc.errors(include_input=False, include_url=False))
        raise KeysFileError(problems) from None
    keys: list[ClientKey] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for index, entry in enumerate(parsed.keys):
        digest = (hashlib.sha256(entry.key.encode()).digest() if entry.key is not None
                  else bytes.fromhex(entry.key_sha256 or ""))
        if entry.name in names:
            raise KeysFileError(f"keys.{index}.name: duplicate name {entry.name!r}")
        if digest in digests:
            raise KeysFileError(f"keys.{index}: the same key as an earlier entry")
        names.add(entry.name)
        digests.add(digest)
        keys.append(ClientKey(entry.name, digest, frozenset(entry.policies),
                              frozenset(entry.llms) if entry.llms is not None else None,
                              Limits(entry.requests_per_minute, entry.tokens_per_minute)))
    return tuple(keys)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries: ``Authorization: Bearer <key>``, else ``api-key``."""
    authorization = headers.get("Authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = headers.get("api-key")
    return api_key.strip() or None if api_key else None


def find_key(keys: Sequence[ClientKey], presented: str) -> ClientKey | None:
    """The entry for ``presented``, comparing digests in constant time against every entry."""
    digest = hashlib.sha256(presented.encode(errors="surrogateescape")).digest()
    found: ClientKey | None = None
    for key in keys:
        if hmac.compare_digest(key.digest, digest):
            found = key
    return found


def authenticate(keys: Sequence[ClientKey], headers: Mapping[str, str]) -> ClientKey:
    presented = presented_key(headers)
    if presented is None:
        raise Unauthorized("this router needs an API key: send 'Authorization: Bearer <key>'",
                           code="invalid_api_key")
    key = find_key(keys, presented)
    if key is None:
        raise Unauthorized("the API key is not valid", code="invalid_api_key")
    return key


def authorize(key: ClientKey, decision: RouteDecision) -> RouteDecision:
    """The decision narrowed to what ``key`` may use; 403 when nothing is left.

    Messages name only what the request itself asked for, never other clients' policies or LLMs."""
    if decision.policy is not None:
        if not key.may_use_policy(decision.policy):
            raise Forbidden(f"this API key may not use policy {decision.policy!r}", code="policy_not_allowed")
    elif ALL not in key.policies and not (key.llms is not None and decision.chosen in key.llms):
        raise Forbidden(f"this API key may not call LLM {decision.chosen!r} directly", code="llm_not_allowed")
    allowed = tuple(name for name in decision.candidates if key.may_use_llm(name))
    if not allowed:
        raise Forbidden(f"this API key may not use the LLMs of route {decision.route!r}", code="llm_not_allowed")
    if allowed == decision.candidates:
        return decision
    return dataclasses.replace(decision, candidates=allowed)


def visible_models(key: ClientKey, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``/v1/models`` entries ``key`` may use (policies as ``router:<name>``, then LLMs)."""
    visible = []
    for model in models:
        kind = model.get("llm_router", {}).get("kind")
        name = model["id"].split(":", 1)[1] if kind == "policy" else model["id"]
        allowed = (key.may_use_policy(name) if kind == "policy"
                   else ALL in key.policies or (key.llms is not None and name in key.llms))
        if allowed:
            visible.append(model)
    return visible


class ClientKeyFile:
    """The keys of one file, re-read when it changes; the last good set stays in force."""

    def __init__(self, path: str, metrics: RouterMetrics) -> None:
        self.path = path
        self.metrics = metrics
        self.keys: tuple[ClientKey, ...] | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._missing_reported = False

    def current(self) -> tuple[ClientKey, ...]:
        """The keys in force; raises ``KeysUnavailable`` when no good file was ever read."""
        try:
            info = os.stat(self.path)  # follows a mounted Secret's ..data symlink
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        except OSError as exc:
            stamp = None
            if not self._missing_reported:  # once per disappearance, not per request
                self._missing_reported = True
                self._refuse(f"cannot read: {exc.strerror}")
            self._stamp = None
        if stamp is not None and stamp != self._stamp:
            self._stamp = stamp
            self._missing_reported = False
            self._load()
        if self.keys is None:
            raise KeysUnavailable("client API keys are not available; the router's operator has been told",
                                  code="auth_unavailable")
        return self.keys

    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read()
            keys = parse_keys(text)
        except (OSError, UnicodeDecodeError) as exc:
            self._refuse(f"cannot read: {getattr(exc, 'strerror', None) or type(exc).__name__}")
            return
        except KeysFileError as exc:
            self._refuse(str(exc))
            return
        self.keys = keys
        self.metrics.child(self.metrics.client_keys_reloads, "applied").inc()
        log.info("client keys loaded from %s: %d keys", self.path, len(keys))

    def _refuse(self, reason: str) -> None:
        self.metrics.child(self.metrics.client_keys_reloads, "invalid").inc()
        kept = f"keeping the last good {len(self.keys)} keys" if self.keys is not None else "no keys in force"
        log.error("refused client keys file %s (%s): %s", self.path, kept, reason)
