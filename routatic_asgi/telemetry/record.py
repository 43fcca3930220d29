"""`Telemetry`: what the router and the relay call to record a request and its attempts.

`Telemetry` is built once per app from an injected registry and tracer provider. The router
opens a `RequestRecord` per request (request span, requests/duration/fallbacks, the request
log line, proxy overhead: request_record.py) and tells it when each attempt starts; the relay
wraps each upstream call in an `UpstreamWatch` (attempts, TTFB, tokens, active streams, time
spent upstream: upstream_watch.py).
Recording never breaks a request: a failing recorder is logged and ignored. It never reads a
body and never records a secret.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Receive, Scope, Send

from routatic_asgi.attempt import REQUEST, Attempt, endpoint_of
from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.telemetry.metrics import Metrics
from routatic_asgi.telemetry.request_record import RequestRecord
from routatic_asgi.telemetry.upstream_watch import UpstreamWatch

Serve = Callable[[Send], Awaitable[None]]

__all__ = ["RECORD", "RequestRecord", "RequestRecording", "Telemetry", "UpstreamWatch"]

RECORD = "routatic.record"  # scope key: the RequestRecord of the request in flight
REQUEST_LOG = "routatic_asgi.requests"
RECENT_REQUESTS = 100

logger = logging.getLogger("routatic_asgi")


class Telemetry:
    """The app's instruments: metrics, tracer, request log, and the timer they share."""

    def __init__(
        self,
        *,
        registry: Any = None,
        tracer_provider: Any = None,
        clock: Clock = SYSTEM_CLOCK,
        log: logging.Logger | None = None,
    ) -> None:
        self.metrics = Metrics(registry)
        provider = tracer_provider if tracer_provider is not None else trace.NoOpTracerProvider()
        self.tracer = provider.get_tracer("routatic_asgi")
        # Durations read the monotonic side of the clock, moments its wall side.
        self.timer, self.clock = clock.monotonic, clock
        self.log = log or logging.getLogger(REQUEST_LOG)
        # The last request log lines, newest last, for the status page: bounded, no secret.
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_REQUESTS)

    def close(self) -> None:
        """At shutdown: a worker's live gauges (active streams) leave the shared totals."""
        self.metrics.close()

    async def recorded(self, scope: Scope, send: Send, serve: Serve) -> None:
        """Run `serve` with the request recorded: the one place a request's record is opened
        and finished. The first layer to get here (the outermost) opens it, watches what the
        client is sent and finishes it when `serve` returns; a layer inside records into it."""
        record = scope.get(RECORD)
        if isinstance(record, RequestRecord) and record.telemetry is self:
            await serve(send)
            return
        protocol, endpoint = endpoint_of(scope)
        record = RequestRecord(self, scope, protocol, endpoint)
        scope[RECORD] = record
        try:
            await serve(record.watch(send))
        finally:
            record.finish()

    def upstream(self, scope: Scope, attempt: Attempt) -> UpstreamWatch:
        return UpstreamWatch(self, scope.get(RECORD), scope.get(REQUEST), attempt)


class RequestRecording:
    """ASGI middleware: opens each request's record before the layers that may answer on
    their own (InboundAuth's 401), so those requests are counted and logged too.

    The router records into the same record. It never reads the body.
    """

    def __init__(self, app: ASGIApp, *, telemetry: Telemetry) -> None:
        self.app, self.telemetry = app, telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.telemetry.recorded(scope, send, lambda send: self.app(scope, receive, send))
