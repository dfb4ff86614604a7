"""The routing configuration: the one contract between the operator and the proxy.

Rule of this module: nothing here depends on Kubernetes. The operator builds a
``RouterConfig`` from custom resources and writes it as YAML into a ConfigMap; a
person running the proxy on a laptop writes the same YAML by hand. Both sides
import these definitions.

The config never carries an API key. Keys are *referenced*: an environment
variable or a file (in a cluster, a mounted Secret). A plain string where a key
reference belongs is rejected, so a key cannot end up in a ConfigMap by accident.

The proxy validates a new config completely (schema here, cross references in
``RouterConfig``'s validators) before swapping it in; anything invalid is
refused and the last good config keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import re
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1
"""The config schema this proxy understands. A config with another version is
refused (during a rolling upgrade the proxy keeps its previous config)."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
"""LLM and policy names: DNS-label-like, so they work as Kubernetes names,
metric labels and the ``model`` field alike."""

POLICY_MODEL_PREFIX = "router:"
"""``"model": "router:<policy>"`` selects a policy."""


class _Strict(BaseModel):
    """Base for every config model: unknown fields are errors (typos must not
    silently fall back to defaults), instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------- LLMs


class EnvKeyRef(_Strict):
    """The API key is the value of this environment variable of the proxy."""

    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class FileKeyRef(_Strict):
    """The API key is the content of this file (stripped). The file is re-read
    when it changes, so a rotated Secret takes effect without a restart."""

    file: Annotated[str, Field(min_length=1)]


KeyRef = EnvKeyRef | FileKeyRef


class Cost(_Strict):
    """Price in USD per million tokens, used for the estimated cost metric."""

    input_per_million: Annotated[float, Field(ge=0)] = 0.0
    output_per_million: Annotated[float, Field(ge=0)] = 0.0


class Timeouts(_Strict):
    """Deadlines for one call to this LLM, in seconds."""

    connect: Annotated[float, Field(gt=0, le=300)] = 5.0
    """Establishing the TCP (and TLS) connection."""
    first_token: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """From sending the request until the answer starts (non-streaming: the
    response headers; streaming: the first event with content, so role-only or
    empty events do not count). Past it the route's next LLM is tried."""
    idle: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """Longest silence between two chunks of a response body."""
    total: Annotated[float, Field(gt=0, le=7200)] = 600.0
    """The whole call, from request to last byte."""
    queue: Annotated[float, Field(ge=0, le=600)] = 5.0
    """Longest wait for a free slot when ``max_concurrency`` requests are in flight; then 429."""

    @model_validator(mode="after")
    def _ordered(self) -> Timeouts:
        for name in ("connect", "first_token", "idle"):
            if getattr(self, name) > self.total:
                raise ValueError(f"timeouts.{name} ({getattr(self, name)}s) exceeds timeouts.total ({self.total}s)")
        return self


class RetryConfig(_Strict):
    """Tries on the same LLM before the route moves on to its next LLM.

    Retried: connection errors, deadlines, HTTP 429 and 5xx, broken answers. The
    wait before retry ``n`` (0-based) is ``min(backoff_max, backoff_base * 2**n)``
    shortened by a random share of up to ``jitter`` of it; an upstream
    ``Retry-After`` of at most ``retry_after_cap`` seconds is waited instead, a
    longer one moves on to the next LLM at once."""

    attempts: Annotated[int, Field(ge=0, le=10)] = 0
    """Extra tries on this LLM (0: fail over to the next LLM straight away)."""
    backoff_base: Annotated[float, Field(ge=0, le=60)] = 0.1
    backoff_max: Annotated[float, Field(ge=0, le=300)] = 2.0
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.5
    retry_after_cap: Annotated[float, Field(ge=0, le=300)] = 5.0


class CircuitBreakerConfig(_Strict):
    """Stop sending to an LLM that keeps failing.

    ``failures`` consecutive failures (connection errors, deadlines, HTTP 5xx,
    broken answers; not 4xx or 429), each within ``window_seconds`` of the first,
    open the circuit: the LLM is skipped for ``open_seconds``. Then up to
    ``half_open_probes`` requests at a time are let through; the first success
    closes the circuit, a failure opens it again. When every LLM of a route has
    an open circuit the request gets 503 (``llm_circuit_open``, with
    ``Retry-After``) at once, rather than waiting on LLMs known to be failing."""

    enabled: bool = True
    failures: Annotated[int, Field(ge=1, le=1000)] = 5
    window_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    open_seconds: Annotated[float, Field(gt=0, le=3600)] = 15.0
    half_open_probes: Annotated[int, Field(ge=1, le=100)] = 1


class ReplicaConfig(_Strict):
    """One more server of the same model (equivalent to the LLM's ``api_base``)."""

    api_base: HttpUrl
    weight: Annotated[int, Field(ge=0, le=100)] = 100
    """Share of traffic relative to the other replicas; 0 sends none (drained)."""

    @property
    def base_url(self) -> str:
        return str(self.api_base).rstrip("/")


class LLMConfig(_Strict):
    """One downstream OpenAI-compatible LLM endpoint."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    """Name used in routes, metrics and ``"model": "<name>"`` direct picks."""
    api_base: HttpUrl
    """Base URL up to and including the version, e.g. ``https://api.example.com/v1``;
    ``/chat/completions`` and ``/completions`` are appended."""
    model: Annotated[str, Field(min_length=1, max_length=256)]
    """The model id sent upstream in the ``model`` field."""
    api_key: KeyRef | None = None
    """Where the key comes from; ``None`` sends no Authorization header."""
    cost: Cost = Cost()
    context_window: Annotated[int, Field(gt=0)] | None = None
    """Tokens the model accepts (prompt plus completion). A request whose
    estimate (see ``context_window.estimate_tokens``) does not fit skips this
    LLM for the next one of its route; ``None``: no limit known."""
    timeouts: Timeouts = Timeouts()
    max_concurrency: Annotated[int, Field(gt=0)] | None = None
    """Requests in flight to this LLM at most; more wait, then get 429."""
    retry: RetryConfig = RetryConfig()
    hedge_after: Annotated[float, Field(gt=0, le=3600)] | None = None
    """Seconds without an answer from this LLM after which the route's next LLM
    is asked too; the first answer wins and the other call is cancelled. Off
    unless set; no effect on the last LLM of a route."""
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    weight: Annotated[int, Field(ge=0, le=100)] = 100
    """Share of traffic of ``api_base`` among the ``endpoints`` (canary splits)."""
    endpoints: list[ReplicaConfig] = []
    """Further servers of the same model; with them, each request goes to one
    of ``api_base`` and these, chosen by ``balancing``."""
    balancing: Literal["least_outstanding", "latency_weighted"] = "least_outstanding"
    """``least_outstanding``: fewest requests in flight per unit of weight;
    ``latency_weighted``: recent latency times requests in flight per unit of
    weight. Ties (an idle LLM) are split at random by weight."""

    @field_validator("api_key", mode="before")
    @classmethod
    def _no_inline_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                "an API key must not be written into the config: reference it as "
                "{env: VARIABLE_NAME} or {file: /path/to/key}"
            )
        return value

    @property
    def base_url(self) -> str:
        return str(self.api_base).rstrip("/")

    @model_validator(mode="after")
    def _replicas_distinct(self) -> LLMConfig:
        bases = [self.base_url, *(replica.base_url for replica in self.endpoints)]
        if len(set(bases)) != len(bases):
            raise ValueError(f"endpoints: each api_base may appear once (the LLM's api_base included): {bases}")
        if self.endpoints and not (self.weight or any(replica.weight for replica in self.endpoints)):
            raise ValueError("endpoints: every weight is 0, so no server would get traffic")
        return self


# ------------------------------------------------------------------ policies


class RuleMatch(_Strict):
    """One rule of a rule classifier: when it matches, ``weight`` is added to
    ``category``'s score. Conditions given together must all hold; within
    ``keywords`` or ``patterns`` any one suffices."""

    category: Annotated[str, Field(min_length=1, max_length=128)]
    keywords: list[Annotated[str, Field(min_length=1)]] = []
    """Whole words or phrases, case-insensitive, searched in the conversation."""
    patterns: list[str] = []
    """Regular expressions (Python syntax, case-insensitive) searched in the conversation."""
    roles: list[Literal["system", "developer", "user", "assistant", "tool"]] = []
    """Which messages to search; empty means all of them."""
    last_message_only: bool = False
    """Search only the last message of the selected roles."""
    headers: dict[str, str] = {}
    """Request header name -> regular expression its value must match."""
    user: str | None = None
    """Regular expression the request's ``user`` field must match."""
    weight: Annotated[float, Field(gt=0)] = 1.0

    @field_validator("patterns")
    @classmethod
    def _valid_regexes(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            _check_regex(pattern)
        return patterns

    @field_validator("headers")
    @classmethod
    def _valid_header_regexes(cls, headers: dict[str, str]) -> dict[str, str]:
        for pattern in headers.values():
            _check_regex(pattern)
        return headers

    @field_validator("user")
    @classmethod
    def _valid_user_regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            _check_regex(pattern)
        return pattern

    @model_validator(mode="after")
    def _has_condition(self) -> RuleMatch:
        if not (self.keywords or self.patterns or self.headers or self.user is not None):
            raise ValueError("a rule needs at least one of keywords, patterns, headers, user")
        return self


def _check_regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


class RulesClassifierRef(_Strict):
    """Keyword/regex rules over the conversation, request headers and ``user``."""

    type: Literal["rules"]
    rules: Annotated[list[RuleMatch], Field(min_length=1)]

    def categories(self) -> list[str]:
        return list(dict.fromkeys(rule.category for rule in self.rules))


class ModelClassifierRef(_Strict):
    """A trained classifier: a head over the sentence encoder, from the model
    repository (Triton layout: ``<repository>/<model>/<version>/head.npz`` and
    ``labels.json``), run embedded in the proxy or by Triton (see
    ``ClassifierBackend``)."""

    type: Literal["model"]
    model: Annotated[str, Field(pattern=NAME_PATTERN)]
    """The model's name in the repository, e.g. ``task_router``."""

    def categories(self) -> list[str] | None:
        """Unknown until the model is loaded: its ``labels.json`` says. The routes
        are checked against them when the classifier is built."""
        return None


class QualityTier(_Strict):
    """One tier of a ``quality`` classifier: prompts scoring at least ``min_score`` (and below the tiers
    above) get the category ``name``, which the policy's ``routes`` map to LLMs."""

    name: Annotated[str, Field(min_length=1, max_length=128)]
    min_score: Annotated[float, Field(ge=0, le=1)]


STRONG_TIER = "strong"
WEAK_TIER = "weak"


def tier_list_problem(tiers: list[QualityTier]) -> tuple[tuple[str | int, ...], str] | None:
    """The first broken rule of a tier list, at its path below the classifier (``("tiers", 1, "min_score")``),
    so that each report names the field in its own terms; the messages name no field for the same reason."""
    if len(tiers) < 2:
        return ("tiers",), f"at least two tiers are needed (a strong and a weak one), got {len(tiers)}"
    names = [tier.name for tier in tiers]
    scores = [tier.min_score for tier in tiers]
    repeated = next((index for index, name in enumerate(names) if name in names[:index]), None)
    if repeated is not None:
        return ("tiers", repeated, "name"), f"tier names must be distinct, got {names}"
    rising = next((index for index, (upper, lower) in enumerate(pairwise(scores), start=1) if lower >= upper), None)
    if rising is not None:
        return (("tiers", rising, "min_score"),
                f"tier scores must strictly descend from the strongest tier, got {scores}")
    if scores[-1] != 0:
        return (("tiers", len(tiers) - 1, "min_score"),
                f"the last tier's score must be 0 (it takes every other prompt), got {scores[-1]}")
    return None


class QualityClassifierRef(_Strict):
    """Cost-quality routing (RouteLLM's idea): a trained model scores the strong LLM's expected win rate
    on the prompt, in [0, 1] (``proxy/quality.py``); the score picks a tier. Either ``threshold``
    (two tiers: ``strong`` at or above it, ``weak`` below) or ``tiers`` (ordered by descending
    ``min_score``, the last one 0).
    ``llm-router calibrate`` finds the threshold that sends a chosen share of prompts to the top tier;
    ``"model": "router-<policy>-<threshold>"`` overrides the top tier's ``min_score`` per request."""

    type: Literal["quality"]
    model: Annotated[str, Field(pattern=NAME_PATTERN)]
    """The quality model in the repository, e.g. ``quality_router``."""
    threshold: Annotated[float, Field(ge=0, le=1)] | None = None
    tiers: list[QualityTier] | None = None

    @model_validator(mode="after")
    def _one_tiering(self) -> QualityClassifierRef:
        if (self.threshold is None) == (self.tiers is None):
            raise ValueError("a quality classifier needs exactly one of threshold (strong/weak) and tiers")
        if self.tiers is not None:
            problem = tier_list_problem(self.tiers)
            if problem is not None:
                raise LocatedError([problem])
        return self

    @property
    def resolved_tiers(self) -> list[QualityTier]:
        """The tiers, strongest first; ``threshold`` as the two tiers it stands for."""
        if self.tiers is not None:
            return list(self.tiers)
        assert self.threshold is not None
        return [QualityTier(name=STRONG_TIER, min_score=self.threshold), QualityTier(name=WEAK_TIER, min_score=0.0)]

    def categories(self) -> list[str]:
        return [tier.name for tier in self.resolved_tiers]


ClassifierRef = Annotated[RulesClassifierRef | ModelClassifierRef | QualityClassifierRef,
                          Field(discriminator="type")]
"""How a policy classifies, chosen by ``type``: ``rules``, a trained ``model``, or a ``quality`` score."""


class PolicyConfig(_Strict):
    """A routing policy: classify the conversation, then map the category to
    an ordered list of LLMs (the first is primary, the rest are fallbacks)."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    classifier: ClassifierRef
    routes: Annotated[dict[str, Annotated[list[str], Field(min_length=1)]], Field(min_length=1)]
    """Category -> LLM names, primary first."""
    default_route: Annotated[list[str], Field(min_length=1)]
    """Used when no category matched, the category has no route, or the
    confidence is below ``min_confidence``."""
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.0
    failure_mode: Literal["open", "closed"] = "open"
    """When the classifier fails: ``open`` takes the default route, ``closed``
    answers 503."""

    @model_validator(mode="after")
    def _routes_name_known_categories(self) -> PolicyConfig:
        known = self.classifier.categories()
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for category, llms in self.routes.items():
            if known is not None and category not in known:
                problems.append((("routes", category),
                                 f"category {category!r} is never returned by the classifier; its categories: {known}"))
            if len(set(llms)) != len(llms):
                problems.append((("routes", category), f"route {category!r} lists an LLM twice: {llms}"))
        if problems:
            raise CrossReferenceError(problems)
        return self


# ------------------------------------------------------------------- router


class ClassifierBackend(_Strict):
    """Where trained classifier models run."""

    triton_url: str | None = None
    """``host:port`` of Triton's gRPC endpoint; ``None`` runs models embedded
    in the proxy process."""
    timeout_ms: Annotated[float, Field(gt=0, le=60_000)] = 200.0
    """Deadline of one classification call (embedded: waiting in the batch
    queue plus encoding; past it the policy's ``failure_mode`` applies)."""
    encoder_variant: Literal["fp32", "int8"] | None = None
    """Embedded encoder precision. ``None``: the one each model was trained on (its
    ``labels.json`` says; the built-in models use ``int8``, about 2.5x faster on a
    CPU than ``fp32``). Forcing the other one runs the head on embeddings it was
    not trained on (cosine 0.97-0.99 to the trained ones): some decisions change."""
    model_repository: str | None = None
    """Directory of the model repository (Triton layout) that embedded ``model``
    classifiers load from; a relative path is taken from the proxy's working
    directory. ``None``: the ``triton_models/`` folder of the source tree, next
    to the ``proxy/`` package (the trained heads committed with the project)."""


class ClientAuthSettings(_Strict):
    """API keys clients must present (``Authorization: Bearer <key>`` or ``api-key``)."""

    enabled: bool = False
    keys_file: Annotated[str, Field(min_length=1)] | None = None
    """YAML or JSON listing the keys (in a cluster, a mounted Secret); re-read
    when it changes. An invalid new file is refused and the last good one kept.
    ``proxy/client_auth.py`` documents the format."""

    @model_validator(mode="after")
    def _file_when_enabled(self) -> ClientAuthSettings:
        if self.enabled and self.keys_file is None:
            raise ValueError("auth.enabled needs auth.keys_file")
        return self


class DrainSettings(_Strict):
    """What ``llm-router serve`` does on SIGTERM. Kubernetes sends it while the
    Service endpoints still point at the pod, so: readiness turns false at once,
    requests are still accepted for ``delay_seconds``, then new ones get 503
    ``server_shutting_down``; requests in flight get ``timeout_seconds`` to
    finish (streams still open then end with an error event); then the process
    exits. Set the pod's ``terminationGracePeriodSeconds`` above the sum.
    Read at start-up; a reload does not change it."""

    delay_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0


class RequestLimits(_Strict):
    """Limits on what a client may send, besides ``max_body_bytes``."""

    max_messages: Annotated[int, Field(gt=0, le=1_000_000)] = 10_000
    """Chat requests with more messages get 400."""
    max_header_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 32 * 1024
    """All request header names and values together; more gets 431. ``serve``
    also caps one header line, and the request line, at this size while parsing
    (aiohttp's plain-text 400; read at start-up)."""
    body_read_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    """Longest time to receive a request body; a slower client gets 408 and the
    connection is closed."""
    header_read_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """``serve`` closes a connection that has not completed a request's headers
    this long after it opened or went idle (aiohttp's keep-alive timeout;
    read at start-up)."""


class RouterSettings(_Strict):
    default_policy: str | None = None
    """Policy used when a request names neither a policy nor an LLM."""
    classifier_backend: ClassifierBackend = ClassifierBackend()
    max_body_bytes: Annotated[int, Field(gt=0, le=512 * 1024 * 1024)] = 16 * 1024 * 1024
    """Larger request bodies get 413."""
    max_response_bytes: Annotated[int, Field(gt=0, le=1024 * 1024 * 1024)] = 64 * 1024 * 1024
    """Largest answer accepted from an LLM (a whole non-streamed body, or one
    stream event); a larger one is a failure of that LLM."""
    log_prompts: bool = False
    """Log prompts (and non-streamed completions) at INFO. Off unless the
    operator of the router turns it on."""
    auth: ClientAuthSettings = ClientAuthSettings()
    drain: DrainSettings = DrainSettings()
    limits: RequestLimits = RequestLimits()


class RouterConfig(_Strict):
    """The whole routing configuration, validated as one unit."""

    schema_version: Literal[1] = SCHEMA_VERSION
    router: RouterSettings = RouterSettings()
    llms: Annotated[list[LLMConfig], Field(min_length=1)]
    policies: list[PolicyConfig] = []

    @model_validator(mode="after")
    def _cross_references(self) -> RouterConfig:
        problems = cross_reference_problems(self)
        if problems:
            raise CrossReferenceError(problems)
        return self

    @property
    def revision(self) -> str:
        """Content hash: equal configs have equal revisions, whatever their YAML formatting."""
        return config_revision(self)

    def llm(self, name: str) -> LLMConfig | None:
        return next((llm for llm in self.llms if llm.name == name), None)

    def policy(self, name: str) -> PolicyConfig | None:
        return next((policy for policy in self.policies if policy.name == name), None)


class LocatedError(ValueError):
    """Problems a model validator found, each at its path relative to that model, so that error reports
    (``config_file``, the operator's status conditions) name the exact field rather than the model."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(message for _, message in problems))


class CrossReferenceError(LocatedError):
    """Names that do not resolve, each with the document path it is at."""


def cross_reference_problems(config: RouterConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """Every name that clashes or does not resolve, with its path in the document."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    llm_names = [llm.name for llm in config.llms]
    policy_names = [policy.name for policy in config.policies]
    for field, names in (("llms", llm_names), ("policies", policy_names)):
        seen: set[str] = set()
        for index, name in enumerate(names):
            if name in seen:
                problems.append(((field, index, "name"), f"duplicate name {name!r} in {field}"))
            seen.add(name)
    for index, name in enumerate(policy_names):
        if name in llm_names:
            problems.append((("policies", index, "name"), f"{name!r} names both an LLM and a policy"))
    known = set(llm_names)
    for index, policy in enumerate(config.policies):
        routes = [(("routes", category), llms) for category, llms in policy.routes.items()]
        for where, route in [*routes, (("default_route",), policy.default_route)]:
            missing = [name for name in route if name not in known]
            if missing:
                problems.append((("policies", index, *where),
                                 f"policy {policy.name!r} names unknown LLMs {missing}; known LLMs: {sorted(known)}"))
    default = config.router.default_policy
    if default is not None and default not in policy_names:
        problems.append((("router", "default_policy"),
                         f"default_policy {default!r} is not a policy; policies: {policy_names}"))
    return problems


def config_revision(config: RouterConfig) -> str:
    """A short sha256 of the canonical JSON form of the config."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def redacted(config: RouterConfig) -> dict[str, Any]:
    """The config as served by ``GET /v1/router/config``.

    Keys are never in the config, but key references can name file paths
    and variables that are nobody's business: show only the kind of source."""
    data = config.model_dump(mode="json")
    for llm in data["llms"]:
        ref = llm.get("api_key")
        if ref is not None:
            llm["api_key"] = {"source": next(iter(ref)), "value": "[REDACTED]"}
    return data
