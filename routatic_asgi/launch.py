"""`routatic-asgi claude|codex|opencode [args...]`: run a client through the gateway.

Uses the gateway already listening on the configured port, or starts one in the background
and stops it when the client exits. The client gets its settings from the environment and
its command line only (never the user's files), its arguments as given, and its exit code
is the launcher's. A proxy key reaches the client through the environment, never a command
line another user could read in `ps`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import httpx

from routatic_asgi.config import Config

__all__ = ["CLIENTS", "launch"]

# The client's executable and how to install it.
CLIENTS = {
    "claude": ("claude", "npm install -g @anthropic-ai/claude-code"),
    "codex": ("codex", "npm install -g @openai/codex"),
    "opencode": ("opencode", "npm install -g opencode-ai"),
}
_CODEX_KEY_VARIABLE = "ROUTATIC_CODEX_KEY"
_STARTUP = 20.0  # seconds a started gateway has to answer /healthz


@dataclass(frozen=True)
class Gateway:
    url: str
    key: str | None  # the proxy key clients send, when the gateway wants one


def launch(
    client: str, args: Sequence[str], config: Config, config_path: str | None, port: int | None
) -> int:
    """Run `client` with `args` against the gateway; return the client's exit code."""
    program, install = CLIENTS[client]
    executable = shutil.which(program)
    if executable is None:
        print(f"routatic-asgi: {program} is not installed ({install})", file=sys.stderr)
        return 127
    with _gateway(config, config_path, port) as gateway:
        if gateway is None:
            return 2
        command, environment = _settings(client, executable, list(args), gateway)
        return _run(command, environment)


def _settings(
    client: str, executable: str, args: list[str], gateway: Gateway
) -> tuple[list[str], dict[str, str]]:
    environment = dict(os.environ)
    if client == "claude":
        environment["ANTHROPIC_BASE_URL"] = gateway.url
        if gateway.key:
            # Its own header, so Authorization stays the user's Anthropic credential.
            headers = environment.get("ANTHROPIC_CUSTOM_HEADERS", "")
            own = f"x-routatic-key: {gateway.key}"
            environment["ANTHROPIC_CUSTOM_HEADERS"] = f"{headers}\n{own}" if headers else own
        return [executable, *args], environment
    if client == "codex":
        environment[_CODEX_KEY_VARIABLE] = gateway.key or "routatic-no-key"
        provider = "model_providers.routatic"
        overrides = [
            f'{provider}.name="routatic"',
            f'{provider}.base_url="{gateway.url}/v1"',
            f'{provider}.wire_api="responses"',
            f'{provider}.env_key="{_CODEX_KEY_VARIABLE}"',
            'model_provider="routatic"',
        ]
        return [executable, *(f for o in overrides for f in ("-c", o)), *args], environment
    models = _models(gateway)
    settings: dict[str, object] = {
        "provider": {
            "routatic": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "routatic",
                "options": {"baseURL": f"{gateway.url}/v1", "apiKey": gateway.key or "none"},
                "models": {model: {"name": model} for model in models},
            }
        }
    }
    if models:
        settings["model"] = f"routatic/{models[0]}"
    environment["OPENCODE_CONFIG_CONTENT"] = json.dumps(settings)
    return [executable, *args], environment


def _models(gateway: Gateway) -> list[str]:
    headers = {"x-routatic-key": gateway.key} if gateway.key else {}
    try:
        response = httpx.get(f"{gateway.url}/v1/models", headers=headers, trust_env=False)
        return [str(model["id"]) for model in response.json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return []


def _run(command: list[str], environment: dict[str, str]) -> int:
    """The client in the foreground. Ctrl-C is the client's to handle, not ours."""
    process = subprocess.Popen(command, env=environment)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = process.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells say


@contextlib.contextmanager
def _gateway(config: Config, path: str | None, port: int | None) -> Iterator[Gateway | None]:
    host = config.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # listening everywhere: loopback reaches it
    port = config.server.port if port is None else port
    key = os.environ.get("ROUTATIC_KEY") or (
        config.server.keys[0].key.get_secret_value() if config.server.keys else None
    )
    if port and _answers(host, port):
        yield Gateway(f"http://{host}:{port}", key)
        return
    port = port or _free_port(host)
    command = [sys.executable, "-m", "routatic_asgi.cli", "serve", "--port", str(port)]
    if path:
        command += ["--config", path]
    with tempfile.NamedTemporaryFile(
        prefix="routatic-gateway-", suffix=".log", delete=False
    ) as log:
        # A session of its own: the terminal's Ctrl-C goes to the client, not the gateway.
        gateway = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        if not _started(gateway, host, port):
            print(f"routatic-asgi: the gateway did not start; its log: {log.name}", file=sys.stderr)
            yield None
            return
        print(
            f"routatic-asgi: gateway on http://{host}:{port} for this session (log: {log.name})",
            file=sys.stderr,
        )
        yield Gateway(f"http://{host}:{port}", key)
    finally:
        _stop(gateway)


def _answers(host: str, port: int) -> bool:
    try:
        response = httpx.get(f"http://{host}:{port}/healthz", timeout=2, trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _started(gateway: subprocess.Popen[bytes], host: str, port: int) -> bool:
    deadline = time.monotonic() + _STARTUP
    while time.monotonic() < deadline and gateway.poll() is None:
        if _answers(host, port):
            return True
        time.sleep(0.1)
    return False


def _stop(gateway: subprocess.Popen[bytes]) -> None:
    if gateway.poll() is None:
        gateway.terminate()
        try:
            gateway.wait(timeout=15)
        except subprocess.TimeoutExpired:
            gateway.kill()
            gateway.wait()


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port
