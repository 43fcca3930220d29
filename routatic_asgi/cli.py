"""The `routatic-asgi` command: serve, check, schema, status.

Exit codes: 0 done; 1 a server that `status` could not read, or a provider `check --probe`
found broken; 2 a configuration or usage problem (with a message naming the file, the key
path and the fix). It never prints a key.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from routatic_asgi import __version__
from routatic_asgi.app import RoutaticApp
from routatic_asgi.audit import config_warnings
from routatic_asgi.config import (
    Config,
    config_schema,
    default_config,
    default_left_out,
    iter_chain,
    load_config,
)
from routatic_asgi.errors import ConfigError
from routatic_asgi.telemetry.capture import CAPTURE_VARIABLE
from routatic_asgi.telemetry.metrics import MULTIPROC_VARIABLE
from routatic_asgi.telemetry.record import REQUEST_LOG

__all__ = ["app_from_environment", "main"]

_CONFIG_VARIABLE = "ROUTATIC_CONFIG"
_KEY_VARIABLE = "ROUTATIC_KEY"
_WATCH_VARIABLE = "ROUTATIC_WATCH"  # from serve to its worker processes
_CLIENTS = ("claude", "codex", "opencode")
_CONFIG_HELP = f"YAML file (default: ${_CONFIG_VARIABLE}, else the embedded default)"


def _config_path(args: argparse.Namespace) -> str | None:
    """--config, else ROUTATIC_CONFIG, else None (the embedded default)."""
    return getattr(args, "config", None) or os.environ.get(_CONFIG_VARIABLE) or None


def _shown(path: str | None) -> str:
    """The file as the banner names it: absolute, so there is no doubt which one runs."""
    return os.path.abspath(path) if path else "<embedded default>"


def _load(path: str | None) -> Config:
    return load_config(path) if path else default_config()


def _port(value: str) -> int:
    """A TCP port for argparse: 0 (any free port) to 65535."""
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port: give a number 0-65535")
    return int(value)


def _banner(path: str | None, config: Config, workers: int) -> list[str]:
    """What `serve` says at start: what runs, what was left out, what will surprise."""
    guard = f"{len(config.server.keys)} proxy key(s)" if config.server.keys else "no proxy keys"
    state = "memory" if config.state == "memory" else "redis"
    lines = [f"{_shown(path)}, {guard}, state: {state}"]
    if path is None:
        lines += default_left_out()
    if workers > 1 and state == "memory":
        lines.append(
            f"warning: --workers {workers} with state: memory keeps one set of breakers and "
            "credential marks per worker; set state: redis://... to share them"
        )
    lines += [f"warning: {warning}" for warning in config_warnings(config)]
    lines += _chains(config)
    return lines


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def app_from_environment() -> object:
    """The app for a uvicorn worker process: the config path comes in ROUTATIC_CONFIG."""
    from routatic_asgi.app import build_app

    path = os.environ.get(_CONFIG_VARIABLE) or None
    app = build_app(_load(path), **_observability())
    _watch(app, path, watch=os.environ.get(_WATCH_VARIABLE) != "0")
    _tune_gc()
    return app


def _watch(app: RoutaticApp, path: str | None, *, watch: bool) -> None:
    """Reload on SIGHUP, and on a change to the file when `watch` is on; say so on stderr."""
    from routatic_asgi.reload import ConfigWatcher

    log = logging.getLogger("routatic_asgi.reload")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("routatic-asgi: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    app.background.append(ConfigWatcher(app, path, watch=watch).run)


def _tune_gc() -> None:
    """Collect less often, and never again walk what exists once the app is built.

    A request allocates a few hundred containers that die young: at the default first
    threshold (700) the collector ran every other request, and each full collection walked
    the whole startup heap (modules, config, schemas). That was about a tenth of the
    server's CPU and its longest pauses. Only the server does this: a host app that mounts
    the middlewares keeps its own collector settings.
    """
    gc.set_threshold(5000, 20, 20)
    gc.freeze()


def _observability() -> dict[str, Any]:
    """The server's telemetry: the request log on stdout, OTLP tracing when OTEL_* ask for it,
    and debug capture when ROUTATIC_DEBUG_CAPTURE names a directory."""
    from routatic_asgi.telemetry.otel import tracer_provider_from_environment

    log = logging.getLogger(REQUEST_LOG)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return {
        "tracer_provider": tracer_provider_from_environment(),
        "debug_capture": os.environ.get(CAPTURE_VARIABLE) or None,
    }


def _multiprocess_metrics() -> str | None:
    """Point every worker's metrics at one directory, so a scrape of any worker sums them all.

    Returns the directory when it was made here (to remove at exit); a directory given in
    PROMETHEUS_MULTIPROC_DIR is emptied of the last run's files instead.
    """
    given = os.environ.get(MULTIPROC_VARIABLE)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return None
    made = tempfile.mkdtemp(prefix="routatic-metrics-")
    os.environ[MULTIPROC_VARIABLE] = made
    return made


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from routatic_asgi.connections import guard, raise_open_file_limit, server_options

    path = _config_path(args)
    config = _load(path)
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    if not config.server.keys and not _is_loopback(host) and not args.allow_unauthenticated:
        print(
            f"routatic-asgi: refusing to listen on {host} with no server.keys: anyone who can "
            "reach it could spend your providers' keys. Set server.keys, listen on 127.0.0.1, "
            "or pass --allow-unauthenticated.",
            file=sys.stderr,
        )
        return 2
    if args.debug_capture:
        os.environ[CAPTURE_VARIABLE] = os.path.abspath(args.debug_capture)
    capture = os.environ.get(CAPTURE_VARIABLE)
    if capture and not _is_loopback(host) and not args.debug_capture_beyond_loopback:
        print(
            f"routatic-asgi: refusing debug capture on {host}: it writes every request and "
            "answer to disk. Listen on 127.0.0.1, unset ROUTATIC_DEBUG_CAPTURE, or pass "
            "--debug-capture-beyond-loopback.",
            file=sys.stderr,
        )
        return 2
    if capture:
        print(
            f"routatic-asgi: debug capture is on: every exchange goes to {capture}", file=sys.stderr
        )
    open_files = raise_open_file_limit()
    connection_options, limits = server_options(config.server, open_files)
    for line in _banner(path, config, args.workers):
        print(f"routatic-asgi: {line}", file=sys.stderr)
    print(
        f"routatic-asgi: connections: at most {limits.max_connections} per worker "
        f"(open-file limit {open_files})",
        file=sys.stderr,
    )
    options = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "log_level": args.log_level,
        "access_log": False,
        "lifespan": "on",
        **connection_options,
    }
    shared = args.workers > 1 or bool(os.environ.get(MULTIPROC_VARIABLE))
    made = _multiprocess_metrics() if shared else None
    try:
        watch = args.watch if args.watch is not None else path is not None
        if args.workers > 1:
            from routatic_asgi.supervisor import run_workers

            if path:
                os.environ[_CONFIG_VARIABLE] = os.path.abspath(path)
            os.environ[_WATCH_VARIABLE] = "1" if watch else "0"
            run_workers(
                "routatic_asgi.cli:app_from_environment", args.workers, limits=limits, **options
            )
        else:
            from routatic_asgi.app import build_app

            app = build_app(config, **_observability())
            _watch(app, path, watch=watch)
            _tune_gc()
            server = uvicorn.Server(guard(uvicorn.Config(app, **options), limits))
            server.run()
            if not server.started:
                return 3  # uvicorn's own code for a server that could not start
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)
    return 0


def _chains(config: Config) -> list[str]:
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
    path = _config_path(args)
    config = _load(path)
    print(f"{_shown(path)}: ok")
    if path is None:
        print("\n".join(default_left_out()))
    print("\n".join(f"warning: {warning}" for warning in config_warnings(config)))
    print("\n".join(_chains(config)))
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


def _status(args: argparse.Namespace) -> int:
    import httpx

    key = args.key or os.environ.get(_KEY_VARIABLE)
    headers = {"x-routatic-key": key} if key else {}
    if args.reset:
        return _reset(args.url.rstrip("/") + "/status/reset", headers, args.reset)
    url = args.url.rstrip("/") + "/status"
    try:
        response = httpx.get(url, headers=headers, timeout=10, trust_env=False)
    except httpx.HTTPError as exc:
        print(f"routatic-asgi: cannot reach {url}: {type(exc).__name__}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"routatic-asgi: {url} answered {response.status_code}", file=sys.stderr)
        return 1
    report = response.json()
    print(json.dumps(report, indent=2) if args.json else _status_text(report))
    return 0


def _reset(url: str, headers: dict[str, str], name: str) -> int:
    import httpx

    try:
        response = httpx.post(
            url, headers=headers, json={"reset": name}, timeout=10, trust_env=False
        )
    except httpx.HTTPError as exc:
        print(f"routatic-asgi: cannot reach {url}: {type(exc).__name__}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        try:
            why = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            why = f"{url} answered {response.status_code}"
        print(f"routatic-asgi: {why}", file=sys.stderr)
        return 1
    print("reset: " + ", ".join(response.json()["reset"]))
    return 0


def _status_text(report: dict[str, Any]) -> str:
    """Breakers and credentials, one per line, with times as UTC and as time left."""
    now = float(report.get("now") or 0.0)
    degraded = " (degraded: serving from memory)" if report.get("state_degraded") else ""
    lines = [f"state: {report.get('state', '?')}{degraded}", "breakers:"]
    for row in report.get("breakers", []):
        detail = (
            f"  {row['reason']}  failures={row['consecutive_failures']}  {_span(row, now)}"
            if row["state"] != "closed"
            else ""
        )
        lines.append(f"  {row['target']}  {row['state']}{detail}")
    if not report.get("breakers"):
        lines.append("  (none has failed yet)")
    lines.append("credentials:")
    for row in report.get("credentials", []):
        detail = f"  {row['reason']}  {_span(row, now)}" if row["state"] != "ok" else ""
        lines.append(f"  {row['provider']}#{row['index']} {row['key']}  {row['state']}{detail}")
    return "\n".join(lines)


def _span(row: dict[str, Any], now: float) -> str:
    from datetime import UTC, datetime

    def moment(value: float) -> str:
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    since = f"since {moment(row['since'])}" if row.get("since") else ""
    until = row.get("until")
    if until is None:
        return f"{since}  until cleared" if since else ""
    left = max(until - now, 0.0)
    return f"{since}  until {moment(until)} ({left:.0f}s left)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routatic-asgi", description="An LLM gateway that falls back when a provider fails."
    )
    parser.add_argument("--version", action="version", version=f"routatic-asgi {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", help=_CONFIG_HELP)
    serve.add_argument("--host", help="listen address (default: server.host)")
    serve.add_argument("--port", type=_port, help="listen port (default: server.port)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes")
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="listen beyond loopback with no server.keys",
    )
    serve.add_argument(
        "--watch",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="reload when the config file changes (default: on when a file is given); "
        "SIGHUP always reloads",
    )
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--debug-capture",
        metavar="DIR",
        help="write every request, answer and upstream exchange to DIR, credentials redacted "
        f"(or set {CAPTURE_VARIABLE}); loopback only unless --debug-capture-beyond-loopback",
    )
    serve.add_argument(
        "--debug-capture-beyond-loopback",
        action="store_true",
        help="allow debug capture on a server that listens beyond loopback",
    )
    serve.set_defaults(run=_serve)
    check = commands.add_parser("check", help="validate a config and print each route's chain")
    check.add_argument("--config", help=_CONFIG_HELP)
    check.add_argument(
        "--probe",
        action="store_true",
        help="call each provider's models endpoint with its keys and say what answered",
    )
    check.set_defaults(run=_check)
    schema = commands.add_parser("schema", help="print the configuration's JSON Schema")
    schema.set_defaults(run=_schema)
    for client in _CLIENTS:  # parsed by _launch: their arguments are the client's
        commands.add_parser(
            client,
            help=f"run {client} through the gateway (started for the session unless one "
            "listens): routatic-asgi {client} [--config F] [--port P] [--] [args...]".replace(
                "{client}", client
            ),
        )
    status = commands.add_parser("status", help="show every breaker and credential of a server")
    status.add_argument("--url", default="http://127.0.0.1:8787", help="the server's base URL")
    status.add_argument("--key", help=f"a proxy key (default: ${_KEY_VARIABLE})")
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    status.add_argument(
        "--reset",
        metavar="NAME",
        help="clear a breaker (provider/model[#N]) or a credential (provider#N) by hand",
    )
    status.set_defaults(run=_status)
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
        port = _port(options["--port"]) if "--port" in options else None
    except argparse.ArgumentTypeError as exc:
        print(f"routatic-asgi {client}: --port: {exc}", file=sys.stderr)
        return 2
    path = options.get("--config") or os.environ.get(_CONFIG_VARIABLE) or None
    return launch(client, rest, _load(path), path and os.path.abspath(path), port)


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


if __name__ == "__main__":
    sys.exit(main())
