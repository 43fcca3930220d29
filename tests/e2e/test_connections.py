"""Client connections: slow and idle ones are dropped in bounded time, a connection limit that
keeps those being served going, and thousands of idle sockets that never stop normal clients.

The protocol tests run uvicorn with `GuardedProtocol` in a thread and short configured
limits; the flood test runs `routatic-asgi serve` in a process of its own, with the soft
open-file limit a default machine gives (1024), and releases everything by pid.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from routatic_asgi.connections import ConnectionLimits, GuardedProtocol
from tests.conftest import FakeUpstream, one_provider
from tests.e2e.serving import serve, serving

SHORT = 0.3  # seconds: every time limit of the guarded test server


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, then answers with its length."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def guarded(limits: ConnectionLimits, idle: float = SHORT) -> Iterator[tuple[str, int]]:
    """`echo` served as `serve` serves the gateway: GuardedProtocol within `limits`."""
    with serving(
        echo, limits=limits, backlog=512, http=GuardedProtocol, timeout_keep_alive=idle,
        log_level="critical", lifespan="off",
    ) as server:  # fmt: skip
        yield server.address


LIMITS = ConnectionLimits(max_connections=100, header_timeout=SHORT, body_timeout=SHORT)


def closed_by_peer(sock: socket.socket, within: float = 5.0) -> bool:
    """Whether the server closes `sock` within `within` seconds (reading what it sends)."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def trickle(sock: socket.socket, data: bytes, *, every: float = 0.05, within: float = 5.0) -> bool:
    """Send `data` a byte at a time; True when the server closed the connection meanwhile."""
    deadline = time.monotonic() + within
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return True
        sock.settimeout(every)  # waiting on the server, not sleeping: a close ends it early
        try:
            if sock.recv(1) == b"":
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            pass
        if time.monotonic() > deadline:
            return False
    return False


def test_a_connection_that_sends_nothing_is_closed() -> None:
    with guarded(LIMITS) as address, socket.create_connection(address) as sock:
        started = time.monotonic()
        assert closed_by_peer(sock)
        assert time.monotonic() - started < 3


def test_headers_trickled_a_byte_at_a_time_are_cut_off() -> None:
    head = b"POST / HTTP/1.1\r\nhost: x\r\n" + b"x-slow: " + b"a" * 400
    with guarded(LIMITS) as address, socket.create_connection(address) as sock:
        assert trickle(sock, head)


def test_a_body_trickled_a_byte_at_a_time_is_cut_off() -> None:
    with guarded(LIMITS) as address, socket.create_connection(address) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 400\r\n\r\n")
        assert trickle(sock, b"{" * 400)


def test_a_kept_alive_connection_left_idle_is_closed() -> None:
    with guarded(LIMITS) as address, socket.create_connection(address) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert closed_by_peer(sock)


def test_a_client_within_the_limits_is_served() -> None:
    with (
        guarded(LIMITS) as address,
        httpx.Client(base_url=f"http://{address[0]}:{address[1]}") as client,
    ):
        for _ in range(3):  # one kept-alive connection: each request re-arms the limits
            assert client.post("/", content=b"x" * 1000).text == "1000"


def test_past_the_limit_an_idle_connection_makes_room() -> None:
    limits = ConnectionLimits(max_connections=4, header_timeout=30, body_timeout=30)
    with guarded(limits, idle=30) as address:
        idle = [socket.create_connection(address) for _ in range(4)]
        try:
            response = httpx.post(f"http://{address[0]}:{address[1]}/", content=b"abc", timeout=5)
            assert response.text == "3"
            assert sum(closed_by_peer(sock, within=0.2) for sock in idle) >= 1
        finally:
            for sock in idle:
                sock.close()


def test_past_the_limit_busy_connections_carry_on_new_ones_are_refused_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = ConnectionLimits(max_connections=3, header_timeout=30, body_timeout=30)
    with guarded(limits, idle=30) as address:
        busy = [socket.create_connection(address) for _ in range(3)]
        for sock in busy:  # each is in the middle of sending a request: being served
            sock.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nab")
        time.sleep(0.2)
        with caplog.at_level(logging.WARNING, logger="routatic_asgi"):
            for _ in range(5):
                with socket.create_connection(address) as refused:
                    assert closed_by_peer(refused)
        for sock in busy:
            sock.sendall(b"cd")
            sock.settimeout(5)
            answer = b""
            while not answer.endswith(b"\r\n\r\n4") and (part := sock.recv(65536)):
                answer += part
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\n4")
            sock.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "routatic_asgi"]
    assert len(lines) == 1 and "1 new one(s) refused" in lines[0]


FLOOD = 2000


def _default_machine_limit() -> None:
    """In the server's process: the soft open-file limit most machines start with."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))


def test_2000_idle_connections_do_not_stop_normal_clients(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2 * FLOOD + 200:
        pytest.skip(f"the open-file hard limit ({hard}) is too low for {FLOOD} connections")
    if soft != resource.RLIM_INFINITY and soft < FLOOD + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * FLOOD + 200), hard))
    prefix = upstream.provider()
    config = one_provider(tmp_path, upstream.url(prefix))
    ask = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    with serve("--config", str(config), preexec_fn=_default_machine_limit) as server:
        url = server.url
        assert any("open-file limit" in line and "limit 1024)" not in line for line in server.said)
        host, port = url.removeprefix("http://").split(":")
        flood: list[socket.socket] = []
        try:
            for _ in range(FLOOD):
                flood.append(socket.create_connection((host, int(port)), timeout=5))
            for _ in range(10):  # each on a connection of its own
                assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
            response = httpx.post(f"{url}/v1/messages", json=ask, timeout=5)
            assert response.status_code == 200
        finally:
            for sock in flood:
                sock.close()
