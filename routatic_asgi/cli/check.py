"""`routatic-asgi check` and `schema`: validate a configuration, print its chains."""

from __future__ import annotations

import argparse
import json
from typing import Any

from routatic_asgi.audit import config_warnings
from routatic_asgi.cli.options import CONFIG_HELP, config_path, load, shown
from routatic_asgi.config import Config, config_schema, default_left_out, iter_chain

__all__ = ["add_parsers", "chains"]


def add_parsers(commands: Any) -> None:
    check = commands.add_parser("check", help="validate a config and print each route's chain")
    check.add_argument("--config", help=CONFIG_HELP)
    check.add_argument(
        "--probe",
        action="store_true",
        help="call each provider's models endpoint with its keys and say what answered",
    )
    check.set_defaults(run=_check)
    schema = commands.add_parser("schema", help="print the configuration's JSON Schema")
    schema.set_defaults(run=_schema)


def chains(config: Config) -> list[str]:
    """Each route and the targets it tries, in order, with how each one authenticates."""
    lines = []
    for route in config.routes:
        when = f" when {route.when.model_dump(exclude_none=True)}" if route.when else ""
        lines.append(f"route {route.match!r}{when}:")
        for provider_name, model in iter_chain(route, "{model}"):
            provider = config.providers[provider_name]
            if provider.auth:
                credential = f"auth: {provider.auth}"
            else:
                credential = f"{len(provider.keys)} key(s)" + (
                    " + key_command" if provider.key_command else ""
                )
            lines.append(f"  -> {provider_name}/{model}  ({provider.protocol}, {credential})")
    return lines


def _check(args: argparse.Namespace) -> int:
    path = config_path(args)
    config = load(path)
    print(f"{shown(path)}: ok")
    if path is None:
        print("\n".join(default_left_out()))
    print("\n".join(f"warning: {warning}" for warning in config_warnings(config)))
    print("\n".join(chains(config)))
    if not args.probe:
        return 0
    from routatic_asgi.probe import probe

    results = probe(config)
    for result in results:
        print(f"probe {result.provider}: {result.verdict} ({result.url}: {result.detail})")
    return 0 if all(result.ok for result in results) else 1


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(config_schema(), indent=2))
    return 0
