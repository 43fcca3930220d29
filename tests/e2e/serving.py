"""Servers for the end-to-end tests, every one on a loopback port: an ASGI app under uvicorn in
a thread (`serving`, and `gateway` for a configuration), `routatic-asgi serve` in a process of
its own (`serve`), and what waiting for them takes (`until`, `free_port`, `listening`).

A process is stopped by its own process id, never by a name, and always stopped, whatever the
test did meanwhile. What a served process prints is read to the end as it comes, so a chatty
server never blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, TypeVar

import uvicorn

from routatic_asgi import build_app
from routatic_asgi.clock import Clock
from routatic_asgi.config import Config
from routatic_asgi.connections import ConnectionLimits, guard
from tests.fake_upstream import accept_lifespan

CLI = [sys.executable, "-m", "routatic_asgi.cli"]
LOOPBACK = "127.0.0.1"
T = TypeVar("T")


def free_port() -> int:
    """A loopback port nothing listens on (for a program that must be told its port)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK, port)) == 0


def until(
    probe: Callable[[], T],
    *,
    what: str,
    timeout: float = 20.0,
    process: subprocess.Popen[Any] | None = None,
) -> T:
    """Polls `probe` until it returns something truthy, and returns that: the wait on another
    program's own time (a process starting, Prometheus scraping), at most `timeout` seconds,
    and over at once if `process` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited while waiting for {what}")
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


# --- an ASGI app under uvicorn, in a thread ---------------------------------------------------


class ThreadServer:
    """uvicorn serving `app` on a loopback port from a thread of its own; `options` go to
    uvicorn's Config, `limits` guard its connections as `serve` does."""

    def __init__(
        self, app: Any, *, limits: ConnectionLimits | None = None, backlog: int = 128, **options: Any
    ) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(backlog)
        self.address: tuple[str, int] = self.sock.getsockname()
        self.url = f"http://{LOOPBACK}:{self.address[1]}"
        options = {"log_level": "warning", "lifespan": "on", "http": "httptools", **options}
        config = uvicorn.Config(app, **options)
        self.server = uvicorn.Server(config if limits is None else guard(config, limits))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        until(lambda: self.server.started or not self.thread.is_alive(), what="uvicorn to start")

    def _run(self) -> None:
        self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        self.loop.close()

    def call(self, coroutine: Any) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@contextmanager
def serving(app: Any, **options: Any) -> Iterator[ThreadServer]:
    """`app` under a real uvicorn server in a thread (ThreadServer's options); stopped after."""
    server = ThreadServer(app, **options)
    try:
        yield server
    finally:
        server.stop()


class _Switch:
    """One long-lived server whose app each test swaps in: no server start per test."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await accept_lifespan(receive, send)
            return
        await self.app(scope, receive, send)


_shared: tuple[_Switch, ThreadServer] | None = None


def stop_shared() -> None:
    """Stops the server `gateway` shares between tests (conftest does, once they are done)."""
    if _shared is not None:
        _shared[1].stop()


class _Unpaused(Clock):
    """The system clock, less the pause before a retry: a served test never waits one out."""

    async def sleep(self, seconds: float) -> None:
        return None


@contextmanager
def gateway(config: Config, **options: Any) -> Iterator[str]:
    """The gateway for `config` (build_app's `options`), served by a real uvicorn server on a
    loopback port; yields its base URL."""
    global _shared
    if _shared is None:
        switch = _Switch()
        _shared = (switch, ThreadServer(switch))
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


# --- `routatic-asgi serve`, a process of its own ----------------------------------------------


class Served:
    """A running `routatic-asgi serve`: its URL, its process, and the lines it printed so far
    (`said` on stderr: the banner, uvicorn's log; `printed` on stdout: the request log)."""

    def __init__(self, process: subprocess.Popen[str], workers: int) -> None:
        self.process, self.workers, self.url = process, workers, ""
        self.said: list[str] = []
        self.printed: list[str] = []

    def text(self) -> str:
        """Everything said on stderr so far, as one string."""
        return "".join(self.said)

    def startups(self) -> int:
        return sum("Application startup complete" in line for line in self.said)

    def listening(self) -> str | None:
        """The URL uvicorn announced it bound, once `workers` have started (only a started
        worker listens), else None."""
        found = re.search(r"Uvicorn running on (http://\S+)", self.text())
        return found.group(1) if found and self.startups() >= self.workers else None


def _drain(stream: IO[str], into: list[str]) -> threading.Thread:
    def read() -> None:
        for line in stream:
            into.append(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@contextmanager
def serve(
    *args: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[Served]:
    """`routatic-asgi serve ARGS` on a free loopback port (`--host 127.0.0.1 --port 0`, unless
    ARGS name others), yielded once it listens and its workers (`--workers N` in ARGS) have
    started, stopped by process id after. It inherits this environment less ROUTATIC_CONFIG
    (a test names its configuration), plus `env`; `preexec_fn` runs in the child first."""
    environment = {k: v for k, v in os.environ.items() if k != "ROUTATIC_CONFIG"}
    process = subprocess.Popen(
        [*CLI, "serve", "--host", LOOPBACK, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**environment, **(env or {})},
        preexec_fn=preexec_fn,
    )
    assert process.stderr is not None and process.stdout is not None
    workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
    served = Served(process, workers)
    readers = [_drain(process.stderr, served.said), _drain(process.stdout, served.printed)]
    try:
        try:
            served.url = until(served.listening, what="the server to listen", timeout=60,
                               process=process)  # fmt: skip
        except AssertionError as failed:
            for reader in readers:  # what it said before it exited, to the end
                reader.join(timeout=5)
            raise AssertionError(f"{failed}: {served.text()}") from None
        yield served
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
        for reader in readers:
            reader.join(timeout=5)
        process.stderr.close()
        process.stdout.close()
