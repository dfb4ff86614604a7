"""Prometheus metrics of one router instance.

Names follow the OpenTelemetry GenAI semantic conventions where one exists
(``gen_ai.client.token.usage`` -> ``gen_ai_client_token_usage``, with
``gen_ai_token_type``); router-specific series are prefixed ``llm_router_``.
Every app owns its registry, so tests can run several routers in one process.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase

CONTENT_TYPE = CONTENT_TYPE_LATEST

# 50 us .. 20 min: resolves sub-millisecond router overhead and multi-minute generations.
LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05,
    0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0,
)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)


class RouterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "llm_router_requests", "Requests answered, by policy, category, chosen LLM and HTTP status.",
            ["endpoint", "policy", "category", "llm", "status"], registry=r)
        self.errors = Counter(
            "llm_router_errors", "Requests that ended in an error, by error type.",
            ["endpoint", "error_type"], registry=r)
        self.request_duration = Histogram(
            "llm_router_request_duration_seconds", "Total request latency as the client sees it.",
            ["policy", "llm", "stream"], buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of calls to downstream LLMs, from request sent to last byte received.",
            ["gen_ai_operation_name", "gen_ai_request_model", "llm", "error_type"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.classification_duration = Histogram(
            "llm_router_classification_duration_seconds", "Time to classify a request.",
            ["policy", "classifier"], buckets=LATENCY_BUCKETS, registry=r)
        self.overhead = Histogram(
            "llm_router_overhead_seconds",
            "Time the router adds: request handling before the upstream call plus relaying its answer "
            "(streams: until the first chunk is relayed).",
            ["policy", "stream"], buckets=LATENCY_BUCKETS, registry=r)
        self.time_to_first_token = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "From the request's arrival until the first content chunk of a stream is sent to the client.",
            ["policy", "llm"], buckets=LATENCY_BUCKETS, registry=r)
        self.token_usage = Histogram(
            "gen_ai_client_token_usage", "Tokens per request as reported by the downstream LLM.",
            ["llm", "gen_ai_request_model", "gen_ai_token_type"], buckets=TOKEN_BUCKETS, registry=r)
        self.usage_estimated = Counter(
            "llm_router_usage_estimated", "Streams whose LLM reported no usage: output tokens were estimated "
            "as one per content event and input tokens were not counted.", ["llm"], registry=r)
        self.cost = Counter(
            "llm_router_estimated_cost_usd", "Estimated spend from reported tokens and configured prices.",
            ["llm"], registry=r)
        self.inflight = Gauge(
            "llm_router_inflight_requests", "Requests in flight to each downstream LLM.", ["llm"], registry=r)
        self.fallbacks = Counter(
            "llm_router_fallbacks", "Times a request moved on to the next LLM of its route.",
            ["policy", "from_llm", "reason"], registry=r)
        self.circuit_state = Gauge(
            "llm_router_circuit_state", "Circuit breaker of each LLM: 0 closed, 1 half-open, 2 open.",
            ["llm"], registry=r)
        self.circuit_transitions = Counter(
            "llm_router_circuit_transitions", "Circuit breaker state changes, by the state entered.",
            ["llm", "state"], registry=r)
        self.retries = Counter(
            "llm_router_retries", "Tries of the same LLM again after a failure.", ["llm", "reason"], registry=r)
        self.hedges = Counter(
            "llm_router_hedges", "Requests that also asked the route's next LLM (hedging), by the LLM "
            "that was slow.", ["llm"], registry=r)
        self.skipped = Counter(
            "llm_router_skipped", "LLMs of a route passed over without a call, by reason (circuit_open, "
            "context_window).", ["llm", "reason"], registry=r)
        self.decisions = Counter(
            "llm_router_decisions", "Routing decisions by policy, route and reason.",
            ["policy", "route", "reason"], registry=r)
        self.config_reloads = Counter(
            "llm_router_config_reloads", "Config load attempts by result (applied, invalid, unchanged).",
            ["result"], registry=r)
        self.client_keys_reloads = Counter(
            "llm_router_client_keys_reloads", "Client keys file loads by result (applied, invalid).",
            ["result"], registry=r)
        self.rate_limited = Counter(
            "llm_router_client_rate_limited", "Requests refused by a client key's limit.",
            ["client", "limit"], registry=r)
        self.draining = Gauge(
            "llm_router_draining", "1 while the router drains before exiting (readiness false).", registry=r)
        self.config_info = Gauge(
            "llm_router_config_info", "The active config: 1 for its revision and schema version.",
            ["revision", "schema_version"], registry=r)
        self.config_last_reload = Gauge(
            "llm_router_config_last_reload_timestamp_seconds", "When the active config was applied.", registry=r)

    def child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """``metric.labels(*values)``, cached: the hot path skips prometheus'
        label validation and lock. Label values come from the config, so the
        cache stays as small as the set of series."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def set_active_config(self, revision: str, schema_version: int, applied_at: float) -> None:
        self.config_info.clear()
        self.config_info.labels(revision, str(schema_version)).set(1)
        self.config_last_reload.set(applied_at)

    def render(self) -> bytes:
        return generate_latest(self.registry)
