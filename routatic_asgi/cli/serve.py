"""`routatic-asgi serve`: check the exposure, say what runs, and run uvicorn.

It refuses to listen beyond loopback with no proxy keys (or with debug capture on) unless
told to. `app_from_environment` builds the app again in each worker process.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from routatic_asgi.app import RoutaticApp
from routatic_asgi.audit import config_warnings
from routatic_asgi.cli.check import chains
from routatic_asgi.cli.options import (
    CONFIG_HELP,
    CONFIG_VARIABLE,
    config_path,
    load,
    port_number,
    shown,
)
from routatic_asgi.config import Config, default_left_out
from routatic_asgi.state import state_kind
from routatic_asgi.telemetry.capture import CAPTURE_VARIABLE
from routatic_asgi.telemetry.log_handler import RequestLogHandler
from routatic_asgi.telemetry.metrics import MULTIPROC_VARIABLE
from routatic_asgi.telemetry.record import REQUEST_LOG

__all__ = ["add_parser", "app_from_environment", "is_loopback"]

_WATCH_VARIABLE = "ROUTATIC_WATCH"  # from serve to its worker processes


def add_parser(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", help=CONFIG_HELP)
    serve.add_argument("--host", help="listen address (default: server.host)")
    serve.add_argument("--port", type=port_number, help="listen port (default: server.port)")
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


def _banner(path: str | None, config: Config, workers: int) -> list[str]:
    """What `serve` says at start: what runs, what was left out, what will surprise."""
    guard = f"{len(config.server.keys)} proxy key(s)" if config.server.keys else "no proxy keys"
    state = state_kind(config.state)
    lines = [f"{shown(path)}, {guard}, state: {state}"]
    if path is None:
        lines += default_left_out()
    if workers > 1 and state == "memory":
        lines.append(
            f"warning: --workers {workers} with state: memory keeps one set of breakers and "
            "credential marks per worker; set state: redis://... to share them"
        )
    lines += [f"warning: {warning}" for warning in config_warnings(config)]
    lines += chains(config)
    return lines


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def app_from_environment() -> object:
    """The app for a uvicorn worker process: the config path comes in ROUTATIC_CONFIG."""
    from routatic_asgi.app import build_app

    path = os.environ.get(CONFIG_VARIABLE) or None
    app = build_app(load(path), **_observability())
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
        handler = RequestLogHandler(sys.stdout)
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


def _refusal(args: argparse.Namespace, config: Config, host: str, capture: str | None) -> str:
    """Why serving on `host` would expose too much, or "" when it is fine."""
    if not config.server.keys and not is_loopback(host) and not args.allow_unauthenticated:
        return (
            f"refusing to listen on {host} with no server.keys: anyone who can "
            "reach it could spend your providers' keys. Set server.keys, listen on 127.0.0.1, "
            "or pass --allow-unauthenticated."
        )
    if capture and not is_loopback(host) and not args.debug_capture_beyond_loopback:
        return (
            f"refusing debug capture on {host}: it writes every request and "
            "answer to disk. Listen on 127.0.0.1, unset ROUTATIC_DEBUG_CAPTURE, or pass "
            "--debug-capture-beyond-loopback."
        )
    return ""


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from routatic_asgi.connections import guard, raise_open_file_limit, server_options

    path = config_path(args)
    config = load(path)
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    if args.debug_capture:
        os.environ[CAPTURE_VARIABLE] = os.path.abspath(args.debug_capture)
    capture = os.environ.get(CAPTURE_VARIABLE)
    refusal = _refusal(args, config, host, capture)
    if refusal:
        print(f"routatic-asgi: {refusal}", file=sys.stderr)
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
                os.environ[CONFIG_VARIABLE] = os.path.abspath(path)
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
