"""`Http11Transport`: a lean HTTP/1.1 transport for `httpx.AsyncClient` on raw asyncio.

httpx's default transport (httpcore over anyio streams) cost more CPU per request than the
rest of the gateway put together: its pool checks every idle connection with a `select()` on
each request. This transport keeps httpx's client, request, response and exception types,
and speaks HTTP/1.1 itself: an asyncio `Protocol` per connection, httptools (already there
for uvicorn) to parse responses, a LIFO keep-alive pool per origin that learns of closed
connections from the event loop instead of polling sockets.

Memory per response is bounded (reading pauses above `_HIGH_WATER` unread bytes). A response
not read to its end closes its connection; an idle connection is never handed out once the
peer has closed it. It never follows redirects, never decodes bodies and never logs a header
or a body. It never sends a request twice: before a byte of a request goes out on a reused
connection, the socket is polled, and one the peer has closed (or that holds bytes nobody
asked for) is dropped for a new connection. Once any of the request is written, every
failure (a reset, a close without an answer) is the caller's: the upstream may have taken
the request, and only the caller can count a second try as an attempt.
"""

from __future__ import annotations

import asyncio
import select
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httptools
import httpx

__all__ = ["Http11Transport"]

_HIGH_WATER = 256 * 1024  # unread response bytes at which reading pauses
_COALESCE = 64 * 1024  # bodies up to this size go out in the same write as the head
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_SKIP_HEADERS = frozenset({b"connection", b"keep-alive", b"proxy-connection"})
_LENGTH_HEADERS = frozenset({b"content-length", b"transfer-encoding"})

Origin = tuple[bytes, bytes, int]


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one response at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.parser = httptools.HttpResponseParser(self)
        self.fileno = -1
        self._begin()

    def _begin(self) -> None:
        # One parser per connection: it starts over by itself after each complete response,
        # and a connection whose parser failed is closed, never reused.
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future[None] | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.waiter: asyncio.Future[None] | None = None
        self.complete = False
        self.keep_alive = False
        self.until_close = False
        self.error: Exception | None = None
        self.paused = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        self.fileno = sock.fileno() if sock is not None else -1

    def data_received(self, data: bytes) -> None:
        if self.head is None:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close()
            if not self.complete:
                self._fail(httpx.RemoteProtocolError(f"malformed response from upstream: {exc}"))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self.head is None or self.complete:
            return
        if self.until_close:
            self.on_message_complete()
        elif exc is not None:
            self._fail(httpx.ReadError(f"upstream connection lost: {exc!r}"))
        elif not self.head.done():
            self._fail(httpx.RemoteProtocolError("Server disconnected without sending a response."))
        else:
            self._fail(
                httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            )

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:  # a second response nobody asked for: the connection is unusable
            self.close()
            raise httptools.HttpParserCallbackError("unrequested response")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # informational (100 Continue, 103 Early Hints): skip it
            self.headers = []
            return
        names = {name.lower() for name, _ in self.headers}
        self.until_close = (
            b"content-length" not in names
            and b"transfer-encoding" not in names
            and self.status not in (204, 304)
        )
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            return  # the real response follows on the same connection
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # the request side

    def _fail(self, exc: Exception) -> None:
        self.error = exc
        if self.head is not None and not self.head.done():
            self.head.set_exception(exc)
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def stale(self) -> bool:
        """Whether this idle connection is unfit to carry a request: closed, or readable.

        The event loop may not yet have delivered the peer's close (the keep-alive race);
        the kernel knows. An idle connection has nothing to read unless its peer closed it
        or sent bytes nobody asked for, so a readable one is never written to. One poll of
        one descriptor: not a scan of the pool.
        """
        if self.closed or self.transport is None:
            return True
        if self.fileno < 0:
            return False
        poller = select.poll()
        poller.register(self.fileno, select.POLLIN)
        return bool(poller.poll(0))

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed

    async def send(self, head: bytes, body: bytes, timeouts: dict[str, Any]) -> None:
        self._begin()
        self.head = self.loop.create_future()
        assert self.transport is not None
        if len(body) <= _COALESCE:
            self.transport.write(head + body)
        else:
            self.transport.write(head)
            self.transport.write(body)
        await self._wait(self.head, timeouts.get("read"), httpx.ReadTimeout)

    async def body(self, read_timeout: float | None) -> AsyncIterator[bytes]:
        while True:
            if self.chunks:
                # Whatever has arrived goes out as one piece: a burst of SSE events read in
                # one go is framed and relayed once, not once per chunk of the encoding.
                chunks = self.chunks
                chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self.buffered = 0
                if self.paused and self.transport is not None:  # all of it is taken: read on
                    self.paused = False
                    self.transport.resume_reading()
                yield chunk
            elif self.complete:
                return
            elif self.error is not None:
                raise self.error
            else:
                self.waiter = self.loop.create_future()
                await self._wait(self.waiter, read_timeout, httpx.ReadTimeout)

    async def _wait(
        self, future: asyncio.Future[None], seconds: float | None, error: type[httpx.HTTPError]
    ) -> None:
        if future.done():
            future.result()
            return
        timer = None
        if seconds is not None:
            timer = self.loop.call_later(seconds, _expire, future, error)
        try:
            await future
        finally:
            if timer is not None:
                timer.cancel()


def _expire(future: asyncio.Future[None], error: type[httpx.HTTPError]) -> None:
    if not future.done():
        future.set_exception(error("timed out waiting for the upstream"))


class _Body(httpx.AsyncByteStream):
    """The response body; closing it early closes the connection, not the pool."""

    def __init__(
        self,
        transport: Http11Transport,
        origin: Origin,
        connection: _Connection,
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
        self._connection.close()

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
        self._idle: dict[Origin, list[_Connection]] = {}
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
        connection: _Connection,
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

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            connection = idle.pop()
            if now - connection.idle_since < self.keepalive_expiry and not connection.stale():
                return connection
            connection.close()
        return None

    async def _connect(self, origin: Origin, timeouts: dict[str, Any]) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        connection = _Connection(loop)
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

    def _release(self, origin: Origin, connection: _Connection) -> None:
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
