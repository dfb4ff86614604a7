"""Custom resources as the API server returns them, built as dicts for the operator's tests."""

from __future__ import annotations

from typing import Any

from llm_router.operator import names


def downstream_llm(name: str, *, generation: int = 1, secret: str | None = None, key: str | None = None,
                   api_base: str = "https://llm.example.com/v1", model: str | None = None,
                   **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"apiBase": api_base, "model": model or f"vendor/{name}", **spec}
    if secret is not None:
        body["apiKeySecretRef"] = {"name": secret, **({"key": key} if key else {})}
    return {"apiVersion": names.API_VERSION, "kind": names.LLM_KIND,
            "metadata": {"name": name, "namespace": "team-a", "generation": generation, "uid": f"uid-llm-{name}",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": body}


def routing_policy(name: str, *, generation: int = 1, classifier: dict[str, Any] | None = None,
                   routes: dict[str, list[str]] | None = None, default_route: list[str] | None = None,
                   default: bool = False, created: str = "2026-01-01T00:00:00Z", **spec: Any) -> dict[str, Any]:
    routes = {"Code Generation": ["big"], "Summarization": ["small"]} if routes is None else routes
    return {"apiVersion": names.API_VERSION, "kind": names.POLICY_KIND,
            "metadata": {"name": name, "namespace": "team-a", "generation": generation, "uid": f"uid-policy-{name}",
                         "creationTimestamp": created},
            "spec": {"classifier": classifier or {"type": "TaskRouter"},
                     "routes": [{"category": category, "llms": llms} for category, llms in routes.items()],
                     "defaultRoute": default_route or ["small"], "default": default, **spec}}


def rules_classifier(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Rules", "rules": list(rules) or [{"category": "code", "keywords": ["python"]}]}
