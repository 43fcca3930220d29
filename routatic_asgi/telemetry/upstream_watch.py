"""`UpstreamWatch`: one upstream call as the relay sees it.

Attempts by outcome, time to first byte, active streams, tokens used and the time spent
upstream (the request's proxy overhead is its duration less that). A failing recorder is
logged and ignored.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING

from routatic_asgi.attempt import Attempt, InboundRequest
from routatic_asgi.classify import Kind

if TYPE_CHECKING:
    from routatic_asgi.telemetry.record import Telemetry
    from routatic_asgi.telemetry.request_record import RequestRecord

__all__ = ["UpstreamWatch"]

logger = logging.getLogger("routatic_asgi")


class UpstreamWatch:
    """One upstream call as the relay sees it: `with telemetry.upstream(scope, attempt):`."""

    def __init__(
        self,
        telemetry: Telemetry,
        record: RequestRecord | None,
        request: InboundRequest | None,
        attempt: Attempt,
    ) -> None:
        self.telemetry, self.record, self.request, self.attempt = (
            telemetry,
            record,
            request,
            attempt,
        )
        self.started = 0.0
        self.streaming = False
        self.heard = False  # a layer may call the relay again for the same attempt

    def __enter__(self) -> UpstreamWatch:
        self.started = self.telemetry.timer()
        self.attempt.listeners.append(self._settled)
        return self

    def _settled(self, attempt: Attempt) -> None:
        outcome = attempt.outcome
        if outcome is None or self.heard:
            return
        self.heard = True
        target, metrics = attempt.target, self.telemetry.metrics
        metrics.attempt(target.provider, target.model, outcome.kind.value)
        if outcome.kind is not Kind.SUCCESS:
            return
        metrics.first_byte(target.provider, target.model, self.telemetry.timer() - self.started)
        if self.request is not None and self.request.stream:
            metrics.active_streams.inc()
            self.streaming = True

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self._close()
        except Exception:
            logger.exception("recording an upstream call failed")

    def _close(self) -> None:
        metrics = self.telemetry.metrics
        if self.streaming:
            metrics.active_streams.dec()
        if self.record is not None:
            self.record.upstream_seconds += self.telemetry.timer() - self.started
        usage, target = self.attempt.usage, self.attempt.target
        if self.attempt.succeeded and usage is not None:
            kinds = (
                ("input", usage.input),
                ("output", usage.output),
                ("cache_read", usage.cache_read),
                ("cache_write", usage.cache_write),
            )
            metrics.used(target.provider, target.model, kinds)
