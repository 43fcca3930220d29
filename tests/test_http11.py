"""The upstream HTTP/1.1 transport against scripted loopback servers: what the relay relies on.

Requests go out byte for byte, keep-alive connections are reused, a connection the peer
closed or a response not read to its end is never reused, and every transport failure
surfaces as the httpx exception the relay classifies. Each of these runs both ways the
gateway reaches the transport (`way`): its fast `post()`, which `Upstreams` uses, and the
httpx transport contract, which an injected transport is held to; the two must agree.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from routatic_asgi.http11 import Http11Transport
from tests.conftest import closed_port_url

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Scripted:
    """A loopback server that runs `handler` per connection and counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.ssl: ssl.SSLContext | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


def answer(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


@pytest.fixture(params=["fast", "httpx"])
def way(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Client:
    """`Http11Transport` reached one of the two ways the gateway reaches it: `fast`, its
    `post()` (what `Upstreams` calls, with no `httpx.Request` built), or `httpx`, the
    transport contract (`handle_async_request` under `httpx.AsyncClient.send`, as any
    injected transport is reached). The tests taking `way` run both: the two must agree."""

    def __init__(
        self, way: str, transport: Http11Transport, timeout: httpx.Timeout | None = None
    ) -> None:
        self.way, self.transport = way, transport
        timeout = timeout or httpx.Timeout(5.0)
        self.client = httpx.AsyncClient(transport=transport, timeout=timeout)
        self.timeouts = timeout.as_dict()
        # The client's default headers, which Upstreams sends on the fast path too.
        self.defaults = [(name.lower(), value) for name, value in self.client.headers.raw]

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def stream(self, url: str, body: bytes = b"{}") -> httpx.Response:
        """The response, its body still to read."""
        if self.way == "httpx":
            request = self.client.build_request("POST", url, content=body, headers={"x-test": "1"})
            return await self.client.send(request, stream=True)
        headers = [*self.defaults, (b"x-test", b"1")]
        return await self.transport.post(httpx.URL(url), headers, body, self.timeouts)

    async def post(self, url: str, body: bytes = b"{}") -> httpx.Response:
        response = await self.stream(url, body)
        await response.aread()
        return response


def test_requests_go_out_as_sent_and_reuse_one_connection(way: str) -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            seen.append(request)
            writer.write(answer(b"ok %d" % len(seen)))

    async def main() -> None:
        server = Scripted(handler)
        async with server as url, Client(way, Http11Transport()) as client:
            bodies = [
                (await client.post(f"{url}/v1/messages?beta=true", b'{"n":%d}' % n)).content
                for n in range(3)
            ]
            assert bodies == [b"ok 1", b"ok 2", b"ok 3"]
            assert server.connections == 1

    run(main())
    head, body = seen[0]
    assert head.startswith(b"POST /v1/messages?beta=true HTTP/1.1\r\n")
    assert b"\r\nx-test: 1\r\n" in head
    assert body == b'{"n":0}'


def test_a_large_body_arrives_whole(way: str) -> None:
    payload = bytes(range(256)) * 800  # 200 KB: a Claude Code request
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        assert request is not None
        received.append(request[1])
        writer.write(answer(b"done"))

    async def main() -> None:
        async with (
            Scripted(handler) as url,
            Client(way, Http11Transport()) as client,
        ):
            assert (await client.post(url + "/x", payload)).content == b"done"

    run(main())
    assert received == [payload]


def test_chunked_and_until_close_bodies_are_read_to_their_end(way: str) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for part in (b"event: a\n\n", b"event: b\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it")

    async def main() -> None:
        async with Client(way, Http11Transport()) as client:
            async with Scripted(chunked) as url:
                assert (await client.post(url)).content == b"event: a\n\nevent: b\n\n"
            async with Scripted(until_close) as url:
                response = await client.post(url)
                assert response.content == b"all of it"
                assert response.headers["content-type"] == "text/plain"

    run(main())


def test_a_connection_the_peer_closed_is_not_reused(way: str) -> None:
    async def one_answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(answer(b"ok"))
        await writer.drain()

    async def main() -> None:
        server = Scripted(one_answer_then_close)
        transport = Http11Transport()
        async with server as url, Client(way, transport) as client:
            await client.post(url)
            for _ in range(1000):  # let the loop deliver the peer's close
                if all(c.closed for idle in transport._idle.values() for c in idle):
                    break
                await asyncio.sleep(0)
            assert (await client.post(url)).content == b"ok"
            assert server.connections == 2

    run(main())


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_request_the_peer_took_is_never_sent_again(how: str, way: str) -> None:
    """A reused connection dropped after the request went out: the upstream may have taken
    it, so it fails (the relay's next target serves) instead of going out a second time."""
    requests: list[bytes] = []

    async def one_answer_then_drop(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while (request := await read_request(reader)) is not None:
            requests.append(request[1])
            if len(requests) == 1:
                writer.write(answer(b"first"))
                await writer.drain()
                continue
            if how == "reset":  # drop the request unanswered, the way a crashing peer does
                writer.transport.abort()
            return  # "close": Scripted closes the connection without an answer

    async def main() -> None:
        server = Scripted(one_answer_then_drop)
        async with server as url, Client(way, Http11Transport()) as client:
            assert (await client.post(url, b"one")).content == b"first"
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                await client.post(url, b"two")
            assert server.connections == 1

    run(main())
    assert requests == [b"one", b"two"]


def test_a_reused_connection_seen_closed_before_writing_goes_on_a_new_one(way: str) -> None:
    """The keep-alive race: the peer closed the idle connection and the event loop has not
    yet heard of it. The closed socket is seen before a byte is written; a new connection
    carries the request, once."""
    requests: list[bytes] = []
    closed = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:  # a thread: its close happens while the client's loop is busy
        for n in (1, 2):
            conn, _ = listener.accept()
            with conn:
                data = b""
                while not data.endswith(b"}"):
                    data += conn.recv(65536)
                requests.append(data.rpartition(b"\r\n\r\n")[2])
                conn.sendall(answer(b"ok %d" % n))
                if n == 1:
                    conn.shutdown(socket.SHUT_RDWR)
                    closed.set()
                else:
                    conn.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    async def main() -> None:
        transport = Http11Transport()
        async with Client(way, transport) as client:
            assert (await client.post(url, b'{"n":1}')).content == b"ok 1"
            (connection,) = [c for pool in transport._idle.values() for c in pool]
            assert closed.wait(5)  # blocks the loop: it cannot hear the close
            deadline = time.monotonic() + 5
            while not connection.stale() and time.monotonic() < deadline:
                time.sleep(0.001)  # noqa: ASYNC251 -- the loop must not run: the kernel alone sees the FIN
            assert not connection.closed  # the loop still thinks it open
            assert (await client.post(url, b'{"n":2}')).content == b"ok 2"

    try:
        run(main())
    finally:
        listener.close()
        thread.join(5)
    assert requests == [b'{"n":1}', b'{"n":2}']


def test_a_fresh_connection_closed_without_an_answer_is_not_retried(way: str) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async def main() -> None:
        server = Scripted(drop)
        async with server as url, Client(way, Http11Transport()) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(url)
            assert server.connections == 1

    run(main())


def test_a_response_abandoned_midway_closes_its_connection(way: str) -> None:
    async def main() -> None:
        closed = asyncio.Event()

        async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await writer.drain()
            assert await reader.read() == b""  # the client hung up
            closed.set()

        server = Scripted(endless)
        async with server as url, Client(way, Http11Transport()) as client:
            response = await client.stream(url)
            async for chunk in response.aiter_raw():
                assert chunk == b"first"
                break
            await response.aclose()
            await asyncio.wait_for(closed.wait(), 5)

    run(main())


def test_cancelling_a_request_closes_the_upstream_connection(way: str) -> None:
    async def main() -> None:
        closed = asyncio.Event()
        arrived = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            arrived.set()
            assert await reader.read() == b""
            closed.set()

        async with (
            Scripted(silent) as url,
            Client(way, Http11Transport()) as client,
        ):
            task = asyncio.create_task(client.post(url))
            await arrived.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(closed.wait(), 5)

    run(main())


def test_reading_pauses_while_the_reader_falls_behind(way: str) -> None:
    async def main() -> None:
        async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (8 * 1024**2))
            for _ in range(128):
                writer.write(b"x" * 65536)
                await writer.drain()

        transport = Http11Transport()
        async with Scripted(flood) as url, Client(way, transport) as client:
            response = await client.stream(url)
            stream = getattr(response.stream, "_stream", response.stream)  # httpx wraps it
            connection = stream._connection
            for _ in range(2000):
                await asyncio.sleep(0)
                if connection.paused:
                    break
            assert connection.paused
            assert connection.buffered < 1024**2
            total = 0
            async for chunk in response.aiter_raw():
                total += len(chunk)
            assert total == 8 * 1024**2

    run(main())


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        ("close_mid_body", httpx.RemoteProtocolError),
        ("close_before_answer", httpx.RemoteProtocolError),
        ("garbage", httpx.RemoteProtocolError),
        ("hang", httpx.ReadTimeout),
        ("stall_mid_body", httpx.ReadTimeout),
    ],
)
def test_failures_surface_as_httpx_errors(behaviour: str, error: type[Exception], way: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if behaviour == "close_mid_body":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        elif behaviour == "garbage":
            writer.write(b"SMTP ready\r\n\r\n")
        elif behaviour == "hang":
            await reader.read()
        elif behaviour == "stall_mid_body":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
            await writer.drain()
            await reader.read()
        await writer.drain()

    async def main() -> None:
        timeout = httpx.Timeout(5, read=0.05)
        transport = Http11Transport()
        async with (
            Scripted(handler) as url,
            Client(way, transport, timeout) as client,
        ):
            with pytest.raises(error):
                await client.post(url)

    run(main())


def test_a_refused_connection_is_a_connect_error(way: str) -> None:
    async def main() -> None:
        async with Client(way, Http11Transport()) as client:
            with pytest.raises(httpx.ConnectError):
                await client.post(closed_port_url() + "/v1/messages")

    run(main())


def test_https_verifies_the_certificate_and_reuses_the_connection(way: str) -> None:
    trustme = pytest.importorskip("trustme", reason="trustme makes the test certificates")
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(answer(b"secret"))

    async def main() -> None:
        server = Scripted(handler)
        server.ssl = server_context
        async with server as url:
            url = url.replace("http://127.0.0.1", "https://localhost")
            transport = Http11Transport(ssl_context=trusting)
            async with Client(way, transport) as client:
                assert (await client.post(url)).content == b"secret"
                assert (await client.post(url)).content == b"secret"
                assert server.connections == 1
            async with Client(way, Http11Transport()) as client:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.post(url)

    run(main())


@pytest.mark.parametrize(
    "header",
    [(b"x-note", b"a\r\nx-injected: 1"), (b"x-note", b"a\nb"), (b"x-bad\r\nx-injected", b"1")],
)
def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(
    header: tuple[bytes, bytes],
) -> None:
    received: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if request is not None:
            received.append(request)

    async def main() -> None:
        transport = Http11Transport()
        async with Scripted(handler) as url:
            with pytest.raises(httpx.LocalProtocolError):
                await transport.post(httpx.URL(url + "/v1/messages"), [header], b"{}", {})
        await transport.aclose()

    run(main())
    assert received == []


def test_informational_responses_are_skipped(way: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n")
            writer.write(answer(b"final", b"x-final: yes\r\n"))

    async def main() -> None:
        server = Scripted(handler)
        async with server as url, Client(way, Http11Transport()) as client:
            for _ in range(2):
                response = await client.post(url)
                assert (response.status_code, response.content) == (200, b"final")
                assert "link" not in response.headers
                assert response.headers["x-final"] == "yes"
            assert server.connections == 1

    run(main())


def test_bytes_after_a_complete_response_spoil_only_the_connection(way: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(answer(b"first") + answer(b"unasked"))

    async def main() -> None:
        server = Scripted(handler)
        async with server as url, Client(way, Http11Transport()) as client:
            assert (await client.post(url)).content == b"first"
            assert (await client.post(url)).content == b"first"
            assert server.connections == 2

    run(main())


def test_a_body_says_it_is_drained_only_once_its_last_byte_is_handed_over() -> None:
    """The relay sends a stream's last chunk together with the stream's end when the body is
    drained; a chunk with more still to come is never taken for the last."""
    more = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await more.wait()
        writer.write(b"4\r\nlast\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def scenario() -> list[tuple[bytes, bool]]:
        transport = Http11Transport()
        async with Scripted(handler) as url:
            response = await transport.post(httpx.URL(url + "/"), [], b"{}", {})
            body = response.stream
            seen = []
            async for chunk in body:  # type: ignore[union-attr]
                seen.append((chunk, body.drained))  # type: ignore[union-attr]
                more.set()
            await response.aclose()
            await transport.aclose()
            return seen

    assert run(scenario()) == [(b"first", False), (b"last", True)]
