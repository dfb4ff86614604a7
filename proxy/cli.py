"""``llm-router``: serve, route a prompt, validate a config, run the quick start."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from aiohttp import web

from .active_config import ActiveConfig
from .config_file import ConfigError, load_config_file
from .conversation import Turn
from .encoder_build import add_models_command, run_models_command
from .logs import configure_logging
from .quality_cli import COMMANDS as QUALITY_COMMANDS
from .quality_cli import add_quality_commands, run_quality_command
from .routing import decide, select_target

DEFAULT_CONFIG = Path(__file__).parent / "defaults" / "quickstart.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llm-router", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the routing proxy")
    serve.add_argument("--config", type=Path, required=True, help="router config (YAML); watched for changes")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--reload-interval", type=float, default=1.0, help="seconds between config file checks")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="text", choices=["json", "text"],
                       help="json: one object per line (for log collectors); text: for reading")

    route = commands.add_parser("route", help="print the routing decision for a prompt, calling no LLM")
    route.add_argument("--config", type=Path, required=True)
    route.add_argument("--model", default="", help="as in a request: router:<policy> or an LLM name")
    route.add_argument("--policy", help="shorthand for --model router:<policy>")
    route.add_argument("prompt")

    config = commands.add_parser("config", help="config file tools")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    validate = config_commands.add_parser("validate", help="validate a config file completely")
    validate.add_argument("file", type=Path)

    quickstart = commands.add_parser("quickstart", help="run the router between two local Gemma 3 270M servers")
    quickstart.add_argument("--port", type=int, default=8080)
    quickstart.add_argument("--host", default="127.0.0.1")

    add_models_command(commands)
    add_quality_commands(commands)
    try:
        from llm_router.training.train import add_train_command
    except ImportError:  # the train extra is not installed: no train command
        add_train_command = None
    if add_train_command is not None:
        add_train_command(commands)

    try:
        from llm_router.operator.run import add_operator_command
    except ImportError:  # the operator extra is not installed: no operator command
        add_operator_command = None
    if add_operator_command is not None:
        add_operator_command(commands)

    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "route":
        return _route(args)
    if args.command == "config":
        return _validate(args.file)
    if args.command == "models":
        return run_models_command(args)
    if args.command in QUALITY_COMMANDS:
        return run_quality_command(args)
    if args.command == "train":
        from llm_router.training.train import run_train_command

        return run_train_command(args)
    if args.command == "operator":
        from llm_router.operator.run import run_operator

        return run_operator(args)
    from .quickstart import run_quickstart

    return run_quickstart(host=args.host, port=args.port)


def _load_or_exit(path: Path):
    try:
        return load_config_file(path)
    except ConfigError as exc:
        print(exc.describe(), file=sys.stderr)
        raise SystemExit(1) from None


def _serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format)
    from .app import STATE, create_app
    from .drain import serve_until_signalled
    from .request_limits import server_options

    config = _load_or_exit(args.config)
    app = create_app(config, config_path=args.config, reload_interval=args.reload_interval)
    settings = config.router
    # Drained before cleanup starts: the runner's own shutdown only closes idle connections.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2,
                           **server_options(settings.limits))
    asyncio.run(serve_until_signalled(runner, app[STATE].drain, settings.drain, args.host, args.port))
    return 0


def _route(args: argparse.Namespace) -> int:
    config = _load_or_exit(args.config)
    active = ActiveConfig.build(config)
    model = f"router:{args.policy}" if args.policy else args.model
    body = {"model": model, "messages": [{"role": "user", "content": args.prompt}]}
    from .errors import RouterError

    try:
        target = select_target(body, config)
        classifier = active.classifiers.get(target.policy.name) if target.policy else None
        decision = asyncio.run(decide(target, classifier, [Turn("user", args.prompt)], {}, None))
    except RouterError as error:
        print(json.dumps(error.body(), indent=2), file=sys.stderr)
        return 1
    print(json.dumps({**decision.as_dict(), "config_revision": active.revision}, indent=2))
    return 0


def _validate(path: Path) -> int:
    config = _load_or_exit(path)
    try:
        ActiveConfig.build(config)
    except ConfigError as exc:
        print(exc.describe(), file=sys.stderr)
        return 1
    print(f"{path}: valid (schema {config.schema_version}, revision {config.revision}, "
          f"{len(config.llms)} LLMs, {len(config.policies)} policies)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
