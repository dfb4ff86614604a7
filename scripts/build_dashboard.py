"""Write the Grafana dashboard ``charts/llm-router/dashboards/llm-router.json``: ``make dashboard``.

The dashboard is data; this script is where its panels are decided, so a change is a reviewable diff of
queries rather than of thousands of lines of JSON. ``tests/test_dashboard.py`` checks that every metric and
label a query uses exists on a real proxy's ``/metrics``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TARGET = Path(__file__).resolve().parent.parent / "charts" / "llm-router" / "dashboards" / "llm-router.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'
POLICY = f'{NS}, policy=~"$policy"'
LLM = f'{NS}, llm=~"$llm"'
RATE = "[$__rate_interval]"


def target(expr: str, legend: str, ref: str, *, instant: bool = False, table: bool = False) -> dict[str, Any]:
    query: dict[str, Any] = {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        query["instant"] = True
        query["range"] = False
    if table:
        query["format"] = "table"
    return query


def timeseries(title: str, description: str, unit: str, targets: list[dict[str, Any]], *,
               stack: bool = False) -> dict[str, Any]:
    return {
        "type": "timeseries", "title": title, "description": description, "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit, "custom": {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0, "showPoints": "never",
            "stacking": {"mode": "normal" if stack else "none", "group": "A"}}}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": targets,
    }


def quantiles(metric: str, selector: str, by: str) -> list[dict[str, Any]]:
    """p50 and p99 of a histogram, split by ``by``."""
    return [target(f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}{RATE})))",
                   f"p{int(q * 100)} {{{{{by}}}}}", ref)
            for q, ref in ((0.5, "A"), (0.99, "B"))]


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def panels() -> list[dict[str, Any]]:
    circuit = timeseries(
        "Circuit breaker state by LLM", "0 closed, 1 half-open, 2 open (worst over the proxy pods).", "none",
        [target(f"max by (llm) (llm_router_circuit_state{{{LLM}}})", "{{llm}}", "A")])
    circuit["fieldConfig"]["defaults"]["mappings"] = [{"type": "value", "options": {
        "0": {"text": "closed", "color": "green"}, "1": {"text": "half-open", "color": "yellow"},
        "2": {"text": "open", "color": "red"}}}]
    circuit["type"] = "state-timeline"
    circuit["fieldConfig"]["defaults"]["custom"] = {"fillOpacity": 70, "lineWidth": 0}
    circuit["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": [
        {"color": "green", "value": None}, {"color": "yellow", "value": 1}, {"color": "red", "value": 2}]}
    circuit["options"] = {"showValue": "never", "mergeValues": True, "rowHeight": 0.9,
                          "legend": {"displayMode": "list", "placement": "bottom"}}

    revision = {
        "type": "table", "title": "Active config revision",
        "description": "The revision each proxy pod serves (llm_router_config_info); pods of a namespace should agree.",
        "datasource": DATASOURCE,
        "targets": [target(f"max by (namespace, pod, revision, schema_version) (llm_router_config_info{{{NS}}})",
                           "", "A", instant=True, table=True),
                    target(f"max by (namespace, pod) (llm_router_config_last_reload_timestamp_seconds{{{NS}}}) * 1000",
                           "", "B", instant=True, table=True)],
        "transformations": [{"id": "merge", "options": {}},
                            {"id": "organize", "options": {"excludeByName": {"Time": True, "Value #A": True},
                                                           "renameByName": {"Value #B": "applied at"}}}],
        "fieldConfig": {"defaults": {}, "overrides": [
            {"matcher": {"id": "byName", "options": "applied at"},
             "properties": [{"id": "unit", "value": "dateTimeAsIso"}]}]},
        "options": {"showHeader": True},
    }

    cost = {
        "type": "bargauge", "title": "Estimated cost by LLM (selected range)",
        "description": "From the tokens the LLMs reported and the prices in their DownstreamLLM.",
        "datasource": DATASOURCE,
        "targets": [target(f"sum by (llm) (increase(llm_router_estimated_cost_usd_total{{{LLM}}}[$__range]))",
                           "{{llm}}", "A", instant=True)],
        "fieldConfig": {"defaults": {"unit": "currencyUSD", "decimals": 2}, "overrides": []},
        "options": {"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
    }

    layout = [
        row("Traffic"),
        timeseries("Requests/s by policy", "Answered requests, all endpoints.", "reqps",
                   [target(f"sum by (policy) (rate(llm_router_requests_total{{{POLICY}}}{RATE}))", "{{policy}}", "A")],
                   stack=True),
        timeseries("Requests/s by LLM", "Answered requests by the LLM that answered.", "reqps",
                   [target(f"sum by (llm) (rate(llm_router_requests_total{{{LLM}}}{RATE}))", "{{llm}}", "A")],
                   stack=True),
        timeseries("Requests/s by HTTP status", "", "reqps",
                   [target(f"sum by (status) (rate(llm_router_requests_total{{{POLICY}}}{RATE}))", "{{status}}",
                           "A")], stack=True),
        timeseries("In flight by LLM", "Calls open to each downstream LLM.", "short",
                   [target(f"sum by (llm) (llm_router_inflight_requests{{{LLM}}})", "{{llm}}", "A")]),
        row("Latency"),
        timeseries("Request latency p50/p99 by policy", "As the client sees it, whole request.", "s",
                   quantiles("llm_router_request_duration_seconds", f'{POLICY}, llm=~"$llm"', "policy")),
        timeseries("Router overhead p50/p99 by policy",
                   "Time the router adds: handling before the upstream call plus relaying (streams: until the "
                   "first chunk).", "s",
                   quantiles("llm_router_overhead_seconds", POLICY, "policy")),
        timeseries("Time to first token p50/p99 by LLM", "Streams: request arrival to first content chunk sent.",
                   "s", quantiles("gen_ai_server_time_to_first_token_seconds", f'{POLICY}, llm=~"$llm"', "llm")),
        timeseries("Upstream call duration p50/p99 by LLM", "Request sent to last byte received, per LLM call.",
                   "s", quantiles("gen_ai_client_operation_duration_seconds", LLM, "llm")),
        timeseries("Classification latency p99 by classifier", "", "s",
                   [target("histogram_quantile(0.99, sum by (le, classifier) "
                           f"(rate(llm_router_classification_duration_seconds_bucket{{{POLICY}}}{RATE})))",
                           "p99 {{classifier}}", "A")]),
        row("Tokens and cost"),
        timeseries("Tokens/s by LLM and type", "Reported by the LLMs (input, output).", "short",
                   [target(f"sum by (llm, gen_ai_token_type) (rate(gen_ai_client_token_usage_sum{{{LLM}}}{RATE}))",
                           "{{llm}} {{gen_ai_token_type}}", "A")], stack=True),
        timeseries("Estimated cost by LLM (USD/hour)", "", "currencyUSD",
                   [target(f"sum by (llm) (rate(llm_router_estimated_cost_usd_total{{{LLM}}}{RATE})) * 3600",
                           "{{llm}}", "A")], stack=True),
        cost,
        timeseries("Streams with estimated usage", "Streams whose LLM reported no usage (output tokens estimated).",
                   "reqps", [target(f"sum by (llm) (rate(llm_router_usage_estimated_total{{{LLM}}}{RATE}))",
                                    "{{llm}}", "A")]),
        row("Resilience and errors"),
        timeseries("Fallbacks/s by policy, LLM and reason", "A request moved on to the route's next LLM.", "reqps",
                   [target("sum by (policy, from_llm, reason) "
                           f"(rate(llm_router_fallbacks_total{{{POLICY}}}{RATE}))",
                           "{{policy}}: {{from_llm}} ({{reason}})", "A")]),
        timeseries("Retries, hedges and skips/s by LLM", "", "reqps",
                   [target(f"sum by (llm, reason) (rate(llm_router_retries_total{{{LLM}}}{RATE}))",
                           "retry {{llm}} ({{reason}})", "A"),
                    target(f"sum by (llm) (rate(llm_router_hedges_total{{{LLM}}}{RATE}))", "hedge {{llm}}", "B"),
                    target(f"sum by (llm, reason) (rate(llm_router_skipped_total{{{LLM}}}{RATE}))",
                           "skip {{llm}} ({{reason}})", "C")]),
        timeseries("Errors/s by type", "Requests that ended in an error, by OpenAI error type or code.", "reqps",
                   [target(f"sum by (error_type) (rate(llm_router_errors_total{{{NS}}}{RATE}))", "{{error_type}}",
                           "A")], stack=True),
        timeseries("Failed upstream calls/s by LLM and error", "", "reqps",
                   [target("sum by (llm, error_type) (rate(gen_ai_client_operation_duration_seconds_count"
                           f'{{{LLM}, error_type!=""}}{RATE}))', "{{llm}}: {{error_type}}", "A")]),
        circuit,
        row("Configuration"),
        revision,
        timeseries("Config reloads by result", "applied, unchanged, invalid (an invalid config is refused; the "
                   "last good one keeps serving).", "short",
                   [target(f"sum by (result) (increase(llm_router_config_reloads_total{{{NS}}}{RATE}))",
                           "{{result}}", "A")]),
        timeseries("Draining proxy pods", "Pods shutting down (readiness false, finishing requests).", "short",
                   [target(f"sum(llm_router_draining{{{NS}}})", "draining", "A")]),
    ]
    return place(layout)


def place(layout: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ids and grid positions: rows span the width, panels go two per line (12 units wide, 8 high)."""
    x = y = 0
    for index, panel in enumerate(layout, start=1):
        panel["id"] = index
        if panel["type"] == "row":
            y += 8 if x else 0
            panel["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            x, y = 0, y + 1
            continue
        panel["gridPos"] = {"h": 8, "w": 12, "x": x, "y": y}
        x, y = (12, y) if x == 0 else (0, y + 8)
    return layout


def variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
            "query": {"query": query, "refId": f"{name}-values"}, "definition": query, "refresh": 2,
            "includeAll": True, "multi": True, "allValue": ".*", "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}


def dashboard() -> dict[str, Any]:
    return {
        "uid": "llm-router", "title": "llm-router", "description": "Traffic, latency, tokens, cost, resilience "
        "and configuration of the llm-router proxies.", "tags": ["llm-router", "llm"], "schemaVersion": 39,
        "version": 1, "editable": True, "graphTooltip": 1, "refresh": "30s", "timezone": "",
        "time": {"from": "now-3h", "to": "now"}, "fiscalYearStartMonth": 0, "liveNow": False,
        "annotations": {"list": []}, "links": [],
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "refresh": 1, "current": {}, "hide": 0},
            variable("namespace", "Namespace", "label_values(llm_router_config_info, namespace)"),
            variable("policy", "Policy", 'label_values(llm_router_requests_total{namespace=~"$namespace"}, policy)'),
            variable("llm", "LLM", 'label_values(llm_router_requests_total{namespace=~"$namespace"}, llm)'),
        ]},
        "panels": panels(),
    }


def main() -> int:
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(json.dumps(dashboard(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
