"""One HTTP/1.1 connection of `Http11Transport` (http11.py): its request and response I/O.

An asyncio `Protocol` that writes one request at a time and parses its response with
httptools, handing the body over as it arrives. Memory per response is bounded: reading
pauses above `_HIGH_WATER` unread bytes and resumes once the reader has taken them. A
connection whose parser failed, or that received bytes nobody asked for, is closed and never
reused. Failures surface as httpx's exceptions. It never pools, never follows redirects,
never decodes bodies and never logs a header or a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httptools
import httpx

__all__ = ["Connection"]

_HIGH_WATER = 256 * 1024  # unread response bytes at which reading pauses
_COALESCE = 64 * 1024  # bodies up to this size go out in the same write as the head


class Connection(asyncio.Protocol):
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

    def hang_up(self) -> None:
        """Close from outside the task reading it, and let the peer know now: a transport's
        own close waits for the loop to run everything queued before it (with hundreds of
        clients gone at once, their requests' unwinding), shutting the socket down does not."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is not None and not self.closed:
            # Through a duplicate of the descriptor: uvloop's transport socket refuses it.
            with (
                contextlib.suppress(OSError, ValueError),
                socket.fromfd(sock.fileno(), socket.AF_INET, socket.SOCK_STREAM) as dup,
            ):
                dup.shutdown(socket.SHUT_RDWR)
        self.close()

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
