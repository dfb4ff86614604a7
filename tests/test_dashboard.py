"""The Grafana dashboard (charts/llm-router/dashboards/llm-router.json) queries what a real proxy exports.

Every PromQL expression of the dashboard (panel targets and template variables) is taken apart by a
small tokenizer into metric names and label names; a real proxy on loopback, driven through scripted
upstreams until every series exists (plain, streamed, retried, hedged, fallen back, skipped, refused),
must export each metric, and each metric must carry each label the expression selects or groups by.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import llm
from prometheus_client.parser import text_string_to_metric_families
from test_resilience_api import ask

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "charts" / "llm-router" / "dashboards" / "llm-router.json"

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                   "offset", "inf", "nan"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
RANGE = re.compile(r"\[[^\]]*\]")
SELECTOR = re.compile(r"\{([^}]*)\}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_:.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$")
TARGET_LABELS = {"namespace", "pod", "job", "instance", "service", "container", "endpoint"}
"""Labels Prometheus adds when it scrapes a target (the Prometheus Operator's ServiceMonitor ones)."""


@dataclass
class Query:
    metrics: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)


def parse_promql(expr: str) -> Query:
    """Metric names and label names (selectors, grouping) of a PromQL expression.

    Not a PromQL parser: enough for the dashboard's queries. Strings and range durations are dropped
    first (label values and ``$__rate_interval`` hold no names), then label matchers and grouping
    clauses give label names, and the identifiers left that are not called (functions, aggregations) and
    not keywords are metric names.
    """
    query = Query()
    if match := LABEL_VALUES.match(expr):  # Grafana's template function: label_values(selector, label)
        expr, label = match.groups()
        query.labels.add(label)
    text = RANGE.sub("", STRING.sub('""', expr))
    for inner in SELECTOR.findall(text):
        query.labels.update(MATCHER.findall(inner))
    text = SELECTOR.sub(" ", text)
    for _keyword, names in GROUPING.findall(text):
        query.labels.update(name.strip() for name in names.split(",") if name.strip())
    text = GROUPING.sub(" ", text)
    for name, call in IDENTIFIER.findall(text):
        if not call and name.lower() not in PROMQL_KEYWORDS:
            query.metrics.add(name)
    return query


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: panel targets (rows' nested panels included) and query variables."""
    expressions: list[str] = []
    panels = list(dashboard["panels"])
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        expressions += [target["expr"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            expressions.append(query["query"] if isinstance(query, dict) else query)
    return expressions


def test_parse_promql_finds_metrics_and_labels() -> None:
    parsed = parse_promql('histogram_quantile(0.99, sum by (le, policy) (rate(llm_router_overhead_seconds_bucket'
                          '{namespace=~"$namespace", policy!="a,b{c}"}[$__rate_interval]))) * 1000')
    assert parsed.metrics == {"llm_router_overhead_seconds_bucket"}
    assert parsed.labels == {"le", "policy", "namespace"}
    parsed = parse_promql("sum(a_total) / ignoring (x) b:recorded offset 5m + max without(y) (c)")
    assert parsed.metrics == {"a_total", "b:recorded", "c"}
    assert parsed.labels == {"x", "y"}
    parsed = parse_promql('label_values(llm_router_requests_total{namespace=~"$namespace"}, policy)')
    assert (parsed.metrics, parsed.labels) == ({"llm_router_requests_total"}, {"namespace", "policy"})


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def test_dashboard_shape(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "llm-router" and dashboard["schemaVersion"] >= 39
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "policy", "llm"} <= set(variables)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            refs = [target["refId"] for target in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]
    titles = " | ".join(panel["title"] for panel in dashboard["panels"])
    for topic in ("Requests/s by policy", "Requests/s by LLM", "Request latency p50/p99", "Router overhead",
                  "Time to first token", "Tokens/s", "cost", "Fallbacks", "Errors/s by type", "Circuit breaker",
                  "Active config revision"):
        assert topic in titles


def test_the_script_wrote_the_committed_dashboard(dashboard: dict[str, Any]) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_dashboard", ROOT / "scripts" / "build_dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.dashboard() == dashboard, "the dashboard JSON is stale: run `make dashboard`"


def exported_series(text: str) -> dict[str, set[str]]:
    """Sample name -> the label names its series carry, from a /metrics exposition."""
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def driven_config(upstreams: dict[str, Any]) -> dict[str, Any]:
    """A policy whose keywords lead to each resilience path."""
    return {
        "router": {"default_policy": "p"},
        "llms": [
            llm("steady", upstreams["steady"], cost={"input_per_million": 1.0, "output_per_million": 2.0}),
            llm("flaky", upstreams["flaky"], retry={"attempts": 1, "backoff_base": 0.01, "jitter": 0}),
            llm("slow", upstreams["slow"], hedge_after=0.05),
            llm("small", upstreams["small"], context_window=1000),
            llm("quiet", upstreams["quiet"]),
        ],
        "policies": [{
            "name": "p",
            "classifier": {"type": "rules", "rules": [
                {"category": "flaky", "keywords": ["flaky"]}, {"category": "slow", "keywords": ["slow"]},
                {"category": "long", "keywords": ["word"]}, {"category": "quiet", "keywords": ["quiet"]}]},
            "routes": {"flaky": ["flaky", "steady"], "slow": ["slow", "steady"], "long": ["small", "steady"],
                       "quiet": ["quiet"]},
            "default_route": ["steady"],
        }],
    }


async def test_every_dashboard_query_names_exported_metrics_and_labels(router, upstreams, tmp_path,
                                                                       dashboard: dict[str, Any]) -> None:
    started = {name: await upstreams(name) for name in ("steady", "flaky", "slow", "small", "quiet")}
    started["flaky"].script.status = 500
    started["slow"].script.delay = 2
    started["quiet"].script.usage = None  # a stream without usage: the router estimates
    running = await router(driven_config(started), path=tmp_path / "config.yaml")
    assert (await ask(running))[1]["x-llm-router-llm"] == "steady"
    assert (await ask(running, stream=True))[1]["x-llm-router-llm"] == "steady"
    assert (await ask(running, content="flaky"))[1]["x-llm-router-fallbacks"] == "flaky"
    assert (await ask(running, content="slow"))[1]["x-llm-router-llm"] == "steady"
    assert (await ask(running, content="word " * 900, max_tokens=200))[1]["x-llm-router-llm"] == "steady"
    assert (await ask(running, content="quiet", stream=True))[1]["x-llm-router-llm"] == "quiet"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{running.base_url}/chat/completions", json={"model": "router:p"}) as response:
            assert response.status == 400  # no messages: an invalid_request_error counted by type
        async with session.get(f"{running.url}/metrics") as response:
            exposition = await response.text()
    series = exported_series(exposition)

    problems: list[str] = []
    for expr in dashboard_expressions(dashboard):
        parsed = parse_promql(expr)
        assert parsed.metrics, f"no metric found in {expr!r}"
        for metric in sorted(parsed.metrics):
            if metric not in series:
                problems.append(f"{metric} is not exported (in {expr!r})")
                continue
            missing = parsed.labels - series[metric] - TARGET_LABELS
            if missing:
                problems.append(f"{metric} has no label(s) {sorted(missing)} (in {expr!r})")
    assert not problems, "\n".join(problems)
