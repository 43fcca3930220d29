"""`Http11Transport`: a lean HTTP/1.1 transport for `httpx.AsyncClient` on raw asyncio.

httpx's default transport (httpcore over anyio streams) cost more CPU per request than the
rest of the gateway put together: its pool checks every idle connection with a `select()` on
each request. This transport keeps httpx's client, request, response and exception types,
and speaks HTTP/1.1 itself: an asyncio `Protocol` per connection, httptools (already there
for uvicorn) to parse responses, a LIFO keep-alive pool per origin that learns of closed
connections from the event loop instead of polling sockets.

The pool and the response stream live here; one connection's request and response I/O in
http11_connection.py. A response not read to its end closes its connection; an idle
connection is never handed out once the peer has closed it. It never follows redirects,
never decodes bodies and never logs a header or a body. It never sends a request twice:
before a byte of a request goes out on a reused connection, the socket is polled, and one
the peer has closed (or that holds bytes nobody asked for) is dropped for a new connection.
Once any of the request is written, every failure (a reset, a close without an answer) is
the caller's: the upstream may have taken the request, and only the caller can count a
second try as an attempt.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx

from routatic_asgi.http11_connection import Connection

__all__ = ["Http11Transport"]

_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_SKIP_HEADERS = frozenset({b"connection", b"keep-alive", b"proxy-connection"})
_LENGTH_HEADERS = frozenset({b"content-length", b"transfer-encoding"})

Origin = tuple[bytes, bytes, int]


class _Body(httpx.AsyncByteStream):
    """The response body; closing it early closes the connection, not the pool."""

    def __init__(
        self,
        transport: Http11Transport,
        origin: Origin,
        connection: Connection,
        read_timeout: float | None,
    ) -> None:
        self._transport, self._origin = transport, origin
        self._connection, self._read_timeout = connection, read_timeout
        self._released = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._connection.body(self._read_timeout)

    @property
    def drained(self) -> bool:
        """The whole body has arrived and been handed over: the last chunk was the last."""
        connection = self._connection
        return connection.complete and not connection.chunks

    def abort(self) -> None:
        """Close the connection at once, from outside the task reading it (a client gone)."""
        self._connection.hang_up()

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            self._transport._release(self._origin, self._connection)


class Http11Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over pooled keep-alive connections; TLS with httpx's default verification."""

    def __init__(
        self,
        *,
        max_keepalive: int = 256,
        keepalive_expiry: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.max_keepalive = max_keepalive
        self.keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._idle: dict[Origin, list[Connection]] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        if isinstance(request.stream, httpx.ByteStream):
            body = request.content
            head = _head(request.method, request.url, request.headers.raw, None)
        else:  # a streamed body is sent with its length: upstream APIs want one
            body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
            head = _head(request.method, request.url, request.headers.raw, len(body))
        return await self._exchange(request.url, head, body, timeouts)

    async def post(
        self,
        url: httpx.URL,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeouts: dict[str, Any],
    ) -> httpx.Response:
        """A POST without an `httpx.Request`: `host` and `content-length` are added here."""
        fixed = [(b"host", url.netloc), *headers, (b"content-length", b"%d" % len(body))]
        return await self._exchange(url, _head("POST", url, fixed, None), body, timeouts)

    async def _exchange(
        self, url: httpx.URL, head: bytes, body: bytes, timeouts: dict[str, Any]
    ) -> httpx.Response:
        scheme = url.raw_scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        origin = (scheme, url.raw_host, url.port or _DEFAULT_PORTS[scheme])
        connection = self._idle_connection(origin)
        if connection is None:
            connection = await self._connect(origin, timeouts)
        return await self._send(origin, connection, head, body, timeouts)

    async def _send(
        self,
        origin: Origin,
        connection: Connection,
        head: bytes,
        body: bytes,
        timeouts: dict[str, Any],
    ) -> httpx.Response:
        try:
            await connection.send(head, body, timeouts)
        except BaseException:
            connection.close()
            raise
        return httpx.Response(
            connection.status,
            headers=connection.headers,
            stream=_Body(self, origin, connection, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1"},
        )

    def _idle_connection(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = idle[-1].loop.time()  # its loop's clock, as idle_since: no running-loop lookup
        while idle:
            connection = idle.pop()
            if now - connection.idle_since < self.keepalive_expiry and not connection.stale():
                return connection
            connection.close()
        return None

    async def _connect(self, origin: Origin, timeouts: dict[str, Any]) -> Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        connection = Connection(loop)
        server_hostname = host.decode("ascii")
        tls = self._tls() if scheme == b"https" else None
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                await loop.create_connection(
                    lambda: connection,
                    server_hostname,
                    port,
                    ssl=tls,
                    server_hostname=server_hostname if tls else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"connecting to {server_hostname}:{port} timed out"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"{exc!r}") from exc
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
            self._ssl_context.set_alpn_protocols(["http/1.1"])
        return self._ssl_context

    def _release(self, origin: Origin, connection: Connection) -> None:
        if self._closed or not connection.reusable:
            connection.close()
            return
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= self.max_keepalive:
            connection.close()
            return
        connection.head = None
        connection.idle_since = connection.loop.time()
        idle.append(connection)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


def _head(
    method: str, url: httpx.URL, headers: list[tuple[bytes, bytes]], length: int | None
) -> bytes:
    skip = _SKIP_HEADERS if length is None else _SKIP_HEADERS | _LENGTH_HEADERS
    lines = [b"%s %s HTTP/1.1\r\n" % (method.encode(), url.raw_path)]
    lines += [name + b": " + value + b"\r\n" for name, value in headers if name.lower() not in skip]
    if length is not None:
        lines.append(b"content-length: %d\r\n" % length)
    lines.append(b"\r\n")
    head = b"".join(lines)
    # Exactly one line break per line: a name or value carrying one would smuggle in a header.
    if head.count(b"\n") != len(lines) or head.count(b"\r") != len(lines):
        raise httpx.LocalProtocolError("a request header has a line break in it")
    return head
