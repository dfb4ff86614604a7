"""The control plane: a kopf operator that turns RoutingPolicy and DownstreamLLM
custom resources into a running router (see the operator issue).

Importable only as ``llm_router.operator``; never as top-level ``operator``."""
