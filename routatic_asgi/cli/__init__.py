"""The `routatic-asgi` command: serve, check, schema, status, and the client launchers.

Exit codes: 0 done; 1 a server that `status` could not read, or a provider `check --probe`
found broken; 2 a configuration or usage problem (with a message naming the file, the key
path and the fix). It never prints a key. Each verb is a module of its own: serve.py,
check.py (and schema), status.py; options.py holds what they share.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from routatic_asgi import __version__
from routatic_asgi.cli.check import add_parsers as add_check_and_schema
from routatic_asgi.cli.options import CONFIG_VARIABLE, load, port_number
from routatic_asgi.cli.serve import add_parser as add_serve
from routatic_asgi.cli.serve import app_from_environment
from routatic_asgi.cli.status import add_parser as add_status
from routatic_asgi.errors import ConfigError

__all__ = ["app_from_environment", "main"]

_CLIENTS = ("claude", "codex", "opencode")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routatic-asgi", description="An LLM gateway that falls back when a provider fails."
    )
    parser.add_argument("--version", action="version", version=f"routatic-asgi {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve(commands)
    add_check_and_schema(commands)
    for client in _CLIENTS:  # parsed by _launch: their arguments are the client's
        commands.add_parser(
            client,
            help=f"run {client} through the gateway (started for the session unless one "
            "listens): routatic-asgi {client} [--config F] [--port P] [--] [args...]".replace(
                "{client}", client
            ),
        )
    add_status(commands)
    return parser


def _launch(client: str, rest: list[str]) -> int:
    """`routatic-asgi CLIENT [--config F] [--port P] [--] [client args...]`: our options
    only lead; everything after them (or after `--`) is the client's, untouched."""
    from routatic_asgi.launch import launch

    options: dict[str, str] = {}
    while rest and rest[0] in ("--config", "--port") and len(rest) > 1:
        options[rest[0]], rest = rest[1], rest[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    try:
        port = port_number(options["--port"]) if "--port" in options else None
    except argparse.ArgumentTypeError as exc:
        print(f"routatic-asgi {client}: --port: {exc}", file=sys.stderr)
        return 2
    path = options.get("--config") or os.environ.get(CONFIG_VARIABLE) or None
    return launch(client, rest, load(path), path and os.path.abspath(path), port)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in _CLIENTS:
            return _launch(argv[0], argv[1:])
        args = _parser().parse_args(argv)
        code: int = args.run(args)
        sys.stdout.flush()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"routatic-asgi: {problem.line}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader left (`schema | head`): nothing more to say, and no traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code
