"""Shared fixtures: the fake provider process, and real gateway servers on loopback ports."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from routatic_asgi import build_app, parse_config
from routatic_asgi.clock import Clock
from routatic_asgi.config import Config
from routatic_asgi.state import MemoryStore, RedisStore, StateStore
from tests.fake_clock import FakeClock
from tests.fake_upstream import accept_lifespan

HERE = Path(__file__).parent
_prefixes = itertools.count()


class FakeUpstream:
    """Client for tests/fake_upstream.py: each `provider()` is a fresh path prefix."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def provider(self) -> str:
        return f"p{next(_prefixes)}"

    def url(self, prefix: str) -> str:
        return f"http://127.0.0.1:{self.port}/{prefix}"

    def script(self, prefix: str, *answers: dict[str, Any]) -> None:
        self.http.post(f"/_script/{prefix}", content=json.dumps(list(answers))).raise_for_status()

    def clear(self, prefix: str) -> None:
        """Drop the answers still queued for `prefix`: it answers like a healthy provider."""
        self.http.post(f"/_clear/{prefix}").raise_for_status()

    def disconnected(self, prefix: str, count: int | None = None) -> list[dict[str, Any]]:
        """The prefix's calls, once its last one (or `count` of them) has seen its client go
        away: the fake upstream waits, so nothing polls it meanwhile."""
        query = {} if count is None else {"count": count}
        response = self.http.get(f"/_disconnected/{prefix}", params=query)
        response.raise_for_status()
        calls: list[dict[str, Any]] = response.json()
        return calls

    def calls(self, prefix: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/_calls/{prefix}")
        response.raise_for_status()
        calls: list[dict[str, Any]] = response.json()
        return calls


@pytest.fixture
def anyio_backend() -> str:
    """The gateway runs on asyncio (uvicorn's loop): `@pytest.mark.anyio` tests run there only."""
    return "asyncio"


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "fake_upstream.py")], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    fake = FakeUpstream(port)
    yield fake
    fake.http.close()
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=10)
    process.stdout.close()


def http_scope(headers: list[tuple[bytes, bytes]], path: str = "/v1/messages") -> dict[str, Any]:
    """An ASGI HTTP scope for a POST, as uvicorn would pass it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8787),
    }


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def gateway_config(
    providers: dict[str, dict[str, Any]],
    routes: list[dict[str, Any]],
    **sections: Any,
) -> Config:
    return parse_config({"providers": providers, "routes": routes, **sections}, env={})


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run an ASGI app under a real uvicorn server in a thread; yield its base URL."""
    server = _Server(app)
    try:
        yield server.url
    finally:
        server.stop()


class _Server:
    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", http="httptools")
        self.server = uvicorn.Server(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        self.loop.close()

    def call(self, coroutine: Any) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


class _Switch:
    """One long-lived server whose app each test swaps in: no server start per test."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await accept_lifespan(receive, send)
            return
        await self.app(scope, receive, send)


_shared: tuple[_Switch, _Server] | None = None


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_server() -> Iterator[None]:
    yield
    if _shared is not None:
        _shared[1].stop()


class _Unpaused(Clock):
    """The system clock, less the pause before a retry: a served test never waits one out."""

    async def sleep(self, seconds: float) -> None:
        return None


@contextmanager
def gateway(config: Config, **options: Any) -> Iterator[str]:
    """The gateway for `config`, served by a real uvicorn server on a loopback port."""
    global _shared
    if _shared is None:
        switch = _Switch()
        _shared = (switch, _Server(switch))
    switch, server = _shared
    # A retry's pause moves the test's fake clock on (or passes at once): tests never wait.
    options.setdefault("clock", _Unpaused())
    app = build_app(config, **options)
    switch.app = app
    try:
        yield server.url
    finally:
        switch.app = None
        server.call(app.aclose())


# --- the command line, run as a process of its own ---------------------------------------

CLI = [sys.executable, "-m", "routatic_asgi.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env=environment
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routatic.yaml"
    path.write_text(text)
    return path


@contextmanager
def serve(
    *args: str, env: dict[str, str] | None = None, said: list[str] | None = None
) -> Iterator[str]:
    """`routatic-asgi serve ARGS` in a process of its own, on a free loopback port: yields its
    URL and stops it by process id. `said` collects what it prints on stderr, which is read
    to the end so a chatty server never blocks on a full pipe."""
    process = subprocess.Popen(
        [*CLI, "serve", "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stderr is not None
    stderr, lines = process.stderr, said if said is not None else []
    drain = threading.Thread(target=lines.extend, args=(stderr,), daemon=True)
    try:
        for line in stderr:  # uvicorn announces the port it bound
            lines.append(line)
            found = re.search(r"Uvicorn running on (http://\S+)", line)
            if found:
                break
        else:
            raise AssertionError("the server exited before it listened: " + "".join(lines))
        drain.start()
        yield found.group(1)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
        if drain.is_alive():
            drain.join(timeout=5)
        stderr.close()


class RequestLines(logging.Handler):
    """Collects the request log's lines; `wait(n)` blocks until n have been logged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.raw.append(record.getMessage())
            self.lines.append(json.loads(record.getMessage()))
            self.changed.notify_all()

    def wait(self, count: int) -> list[dict[str, Any]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.lines) >= count, timeout=10)
            return list(self.lines)


@pytest.fixture
def request_lines() -> Iterator[RequestLines]:
    handler = RequestLines()
    log = logging.getLogger("routatic_asgi.requests")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler
    log.removeHandler(handler)
    log.setLevel(level)


REDIS_URL = os.environ.get("ROUTATIC_TEST_REDIS_URL")


def redis_url(prefix: str | None = None) -> str:
    """The test Redis with a key prefix of its own (a fresh one unless given); skips the test,
    saying why, where ROUTATIC_TEST_REDIS_URL is unset."""
    if not REDIS_URL:
        pytest.skip("ROUTATIC_TEST_REDIS_URL is not set: no Redis to test the shared store on")
    separator = "&" if "?" in REDIS_URL else "?"
    return f"{REDIS_URL}{separator}key_prefix={prefix or f'routatic-test-{uuid.uuid4().hex}:'}"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[tuple[StateStore, FakeClock]]:
    """Each StateStore on a fake clock: memory always, Redis where the suite has one."""
    clock = FakeClock()
    made: StateStore
    if request.param == "memory":
        made = MemoryStore(clock=clock)
    else:
        made = RedisStore(redis_url(), clock=clock)
    yield made, clock
    await cleared(made)


async def cleared(*stores: StateStore) -> None:
    """Closes `stores` after a test, first deleting what a Redis one wrote under its prefix."""
    for made in stores:
        if isinstance(made, RedisStore):
            client = made._redis()
            keys = [key async for key in client.scan_iter(match=f"{made.prefix}*")]
            if keys:
                await client.delete(*keys)
        await made.aclose()
