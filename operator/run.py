"""``llm-router operator run`` and ``python -m llm_router.operator``: start the operator.

Watches the namespaces given with ``--namespace`` (repeatable), else the
settings' ``watch_namespaces``, else all namespaces. Credentials come from the
pod's service account in a cluster, else from ``KUBECONFIG``/``~/.kube/config``.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any


def add_operator_command(commands: Any) -> None:
    """Add ``operator run`` to the ``llm-router`` command; ImportError without the operator extra."""
    if importlib.util.find_spec("kopf") is None:
        raise ImportError("kopf is not installed (pip install 'llm-router[operator]')")
    operator = commands.add_parser("operator", help="the Kubernetes operator (control plane)")
    operator_commands = operator.add_subparsers(dest="operator_command", required=True)
    run = operator_commands.add_parser("run", help="run the operator against the current cluster")
    add_run_arguments(run)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", type=Path,
                        help="operator settings (YAML); default: $LLM_ROUTER_OPERATOR_SETTINGS")
    parser.add_argument("--namespace", action="append", default=[],
                        help="a namespace to watch (repeatable); default: the settings' list, else all")
    parser.add_argument("--liveness", default="http://0.0.0.0:8081/healthz",
                        help="kopf's liveness endpoint URL ('' for none)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run_operator(args: argparse.Namespace) -> int:
    import kopf

    from . import handlers
    from .settings import OperatorSettings

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = OperatorSettings.load(args.settings)
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        print(f"llm-router operator: invalid settings: {exc}", file=sys.stderr)
        return 2
    namespaces = args.namespace or settings.watch_namespaces
    try:
        reconciler = handlers.new_reconciler(settings)
    except Exception as exc:  # the client's config errors have no common base worth naming
        print(f"llm-router operator: no cluster to talk to ({exc.__class__.__name__}: {exc}); "
              "run it in a pod with a service account, or set KUBECONFIG", file=sys.stderr)
        return 1
    memo = kopf.Memo(reconciler=reconciler)
    kopf.run(standalone=True, clusterwide=not namespaces, namespaces=namespaces, memo=memo,
             liveness_endpoint=args.liveness or None)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_router.operator", description=__doc__)
    add_run_arguments(parser)
    return run_operator(parser.parse_args(argv))
