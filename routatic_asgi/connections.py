"""The server's guard on client connections: time limits, a connection limit, the file limit.

uvicorn closes a kept-alive connection that stays idle (`timeout_keep_alive`), but nothing
else: a connection that never sends a byte, or trickles its headers or body a byte at a time
(slowloris), holds a socket for ever; its `limit_concurrency` answers 503 to every request
past the limit, idle connections included, and logs a warning per request. `GuardedProtocol`
is uvicorn's httptools protocol with what is missing:

- the request line and headers must arrive within `header_timeout` of the connection
  opening or the previous answer ending, and the body within `body_timeout` of the headers;
  a connection that misses either is closed;
- past `max_connections` open connections, a new one first closes the longest-idle
  connection (no request in flight: waiting, or still sending its headers); only when every
  connection is serving a request is the new one refused. Those being served carry on.
  Closings and refusals are logged once a minute, not per connection;
- a client that goes away mid-request has its upstream connections closed at once, by the
  callables the relay leaves under `scope["routatic.hang_up"]`;
- an answer whose upstream broke off after its commit, its length already promised, ends
  with its connection closed (the client sees the body cut short) and only the gateway's
  warning: not uvicorn's "returned without completing response" line as well.

`raise_open_file_limit()` lifts the process's soft limit on open files to its hard limit, so
thousands of idle sockets cannot starve `accept()`. The limits come from `server:` in the
configuration, carried on uvicorn's `Config` as `ConnectionLimits`. This module never reads a
request's content and never logs an address.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any

from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from routatic_asgi.attempt import HANG_UP, REQUEST, InboundRequest
from routatic_asgi.config import ServerConfig

__all__ = ["ConnectionLimits", "GuardedProtocol", "raise_open_file_limit", "server_options"]

logger = logging.getLogger("routatic_asgi")

LIMITS = "routatic_limits"  # the uvicorn Config attribute carrying ConnectionLimits
_REPORTS = "routatic_connection_reports"  # the ServerState attribute counting refusals
REPORT_EVERY = 60.0
# Sockets kept free for everything but client connections: upstreams, Redis, files.
_RESERVED_FILES = 64


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int = 4096
    header_timeout: float = 10.0
    body_timeout: float = 60.0


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files as far as the hard limit allows; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1048576)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return soft


def server_options(
    server: ServerConfig, open_files: int
) -> tuple[dict[str, Any], ConnectionLimits]:
    """uvicorn options and the guard's limits for `server:`; client connections are capped
    where they, each with an upstream socket of its own, fit in the open-file limit."""
    fitting = max((open_files - _RESERVED_FILES) // 2, 16)
    limits = ConnectionLimits(
        max_connections=min(server.max_connections, fitting),
        header_timeout=server.header_timeout,
        body_timeout=server.body_timeout,
    )
    return {"http": GuardedProtocol, "timeout_keep_alive": server.idle_timeout}, limits


def guard(config: Config, limits: ConnectionLimits) -> Config:
    """Carry `limits` on a uvicorn `Config` (it crosses into worker processes with it)."""
    setattr(config, LIMITS, limits)
    return config


def _broke_off(scope: Any) -> bool:
    """The answer's upstream broke off after the commit (the relay has logged why)."""
    request: InboundRequest | None = scope.get(REQUEST)
    return request is not None and any(attempt.broken for attempt in request.attempts)


class _Reports:
    """Closings and refusals since the last log line: at most one line a minute."""

    def __init__(self) -> None:
        self.closed = self.refused = 0
        self.logged_at: float | None = None

    def note(self, now: float, limit: int, *, refused: bool) -> None:
        if refused:
            self.refused += 1
        else:
            self.closed += 1
        if self.logged_at is not None and now - self.logged_at < REPORT_EVERY:
            return
        logger.warning(
            "connection limit reached (server.max_connections: %d): %d idle connection(s) "
            "closed and %d new one(s) refused %s",
            limit,
            self.closed,
            self.refused,
            "since the last report" if self.logged_at is not None else "so far",
        )
        self.closed = self.refused = 0
        self.logged_at = now


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with header, body and connection limits (module doc)."""

    def __init__(self, config: Config, server_state: Any, app_state: Any, _loop: Any = None):
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = getattr(config, LIMITS, None) or ConnectionLimits()
        self.limit_concurrency = None  # connections are limited here, not requests
        self.app = self._cut_quietly(self.app)
        self.deadline: asyncio.TimerHandle | None = None
        self.idle_since = self.loop.time()

    @property
    def busy(self) -> bool:
        """A request is in flight: its headers came and its answer has not ended."""
        return self.cycle is not None and not self.cycle.response_complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections and not self._make_room():
            self._report(refused=True)
            transport.abort()
            return
        super().connection_made(transport)
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.transport is None:  # refused: it never became a connection
            return
        if self.busy:
            self._hang_up()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self.scope[HANG_UP] = []  # type: ignore[literal-required]
        super().on_headers_complete()
        self._arm(self.limits.body_timeout)

    def _hang_up(self) -> None:
        """The client is gone mid-request: close its upstream connections now, in this
        callback, rather than once the request's task has been woken and unwound (with
        hundreds gone at once, that wait was the longest part)."""
        scope: dict[str, Any] = self.cycle.scope  # type: ignore[assignment]
        for hang_up in list(scope.get(HANG_UP, ())):
            try:
                hang_up()
            except Exception:
                logger.exception("closing an upstream connection failed")

    def _cut_quietly(self, app: Any) -> Any:
        async def serve(scope: Any, receive: Any, send: Any) -> None:
            await app(scope, receive, send)
            cycle = self.cycle
            if cycle is None or cycle.scope is not scope or not _broke_off(scope):
                return
            if cycle.response_started and not cycle.response_complete:
                cycle.disconnected = True  # uvicorn's own line would repeat the warning
                self.transport.close()

        return serve

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.idle_since = self.loop.time()
        if not self.transport.is_closing() and not self.pipeline:
            self._arm(self.limits.header_timeout)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expire(self) -> None:
        self.deadline = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def _make_room(self) -> bool:
        """Close the longest-idle connection, if any is idle."""
        idle = [c for c in self.connections if isinstance(c, GuardedProtocol) and not c.busy]
        if not idle:
            return False
        oldest = min(idle, key=lambda connection: connection.idle_since)
        oldest.transport.abort()
        self.connections.discard(oldest)
        self._report(refused=False)
        return True

    def _report(self, *, refused: bool) -> None:
        reports = getattr(self.server_state, _REPORTS, None)
        if reports is None:
            reports = _Reports()
            setattr(self.server_state, _REPORTS, reports)
        reports.note(self.loop.time(), self.limits.max_connections, refused=refused)
