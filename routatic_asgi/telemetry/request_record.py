"""`RequestRecord`: one request as the layers see it, from its start to its answer.

It holds the request span, notes the status and first byte the client got, keeps a span per
attempt and, once, records the request's metrics and writes its log line. An attempt's span
is made whole when the attempt is over (its attributes gathered as they come, its start time
kept), one call into the tracer instead of one per attribute. Recording never
breaks a request: a failing recorder is logged and ignored. It never reads a body and never
records a secret.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from starlette.types import Message, Scope, Send

from routatic_asgi.attempt import ACTOR, REQUEST, Attempt, InboundRequest
from routatic_asgi.classify import SHORT_CIRCUITS, Kind, Reason
from routatic_asgi.telemetry.request_log import request_line, request_outcome
from routatic_asgi.telemetry.spans import (
    attempt_attributes,
    operation_name,
    request_attributes,
    usage_attributes,
)

if TYPE_CHECKING:
    from routatic_asgi.telemetry.record import Telemetry

__all__ = ["RequestRecord"]

logger = logging.getLogger("routatic_asgi")

_QUIET_FAILURES = (Kind.SUCCESS, Kind.SKIPPED, Kind.CANCELLED)
_NOT_SERVER_ERRORS = ("success", "client_error", "rejected", "cancelled")


def _start_span(telemetry: Telemetry, endpoint: str, protocol: str) -> Span:
    try:
        return telemetry.tracer.start_span(
            operation_name(endpoint),
            kind=SpanKind.SERVER,
            attributes={"routatic.protocol": protocol},
        )
    except Exception:  # a broken tracer provider costs the trace, never the request
        logger.exception("starting a request span failed")
        return trace.INVALID_SPAN


class RequestRecord:
    """One request as the router sees it. Lives for one request only."""

    def __init__(self, telemetry: Telemetry, scope: Scope, protocol: str, endpoint: str) -> None:
        self.telemetry, self.scope = telemetry, scope
        self.protocol, self.endpoint = protocol, endpoint
        self.started = telemetry.timer()
        self.at = telemetry.clock()
        self.status: int | None = None
        self.first_byte: float | None = None
        self.upstream_seconds = 0.0
        # Per attempt: its span's start (ns) and attributes so far, None when not traced or
        # when the span is made.
        self.attempt_spans: dict[Attempt, tuple[int, dict[str, Any]] | None] = {}
        self.finished = False
        self.span = _start_span(telemetry, endpoint, protocol)
        # With no tracer the span is the invalid one, which is what the context holds anyway.
        self._token = (
            otel_context.attach(trace.set_span_in_context(self.span))
            if self.span.get_span_context().is_valid
            else None
        )

    def watch(self, send: Send) -> Send:
        """`send`, noting the status the client got and when its first byte left."""

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and self.status is None:
                self.status = message["status"]
                self.first_byte = self.telemetry.timer()
            await send(message)

        return watched

    def attempt_started(self, attempt: Attempt) -> None:
        try:
            self._attempt_started(attempt)
        except Exception:
            logger.exception("recording an attempt failed")

    def _attempt_started(self, attempt: Attempt) -> None:
        earlier = list(self.attempt_spans)
        previous = earlier[-1] if earlier else None
        if previous is not None and attempt.via == Reason.HEDGED:  # started beside `previous`
            self.telemetry.metrics.fallback(
                previous.target.provider, attempt.target.provider, Reason.HEDGED
            )
        elif previous is not None and previous.outcome is not None:
            reason = previous.outcome.reason
            moved = attempt.via != Reason.RETRIED  # a retry of the same target is no fallback
            if moved and previous.outcome.kind not in (Kind.SUCCESS, Kind.CANCELLED):
                self.telemetry.metrics.fallback(
                    previous.target.provider, attempt.target.provider, reason
                )
                self.span.add_event(
                    "routatic.fallback",
                    {"from": previous.target.key, "to": attempt.target.key, "reason": reason},
                )
        traced = self.span.is_recording()  # spare the attributes when nobody traces
        self.attempt_spans[attempt] = (
            (time.time_ns(), attempt_attributes(attempt, self.endpoint)) if traced else None
        )
        attempt.listeners.append(self._settled)

    def _settled(self, attempt: Attempt) -> None:
        outcome = attempt.outcome
        if attempt not in self.attempt_spans or outcome is None:
            return
        if outcome.kind is Kind.SKIPPED and outcome.reason in SHORT_CIRCUITS:
            self.telemetry.metrics.short_circuit(attempt.target.provider, outcome.reason)
        if outcome.kind is not Kind.SUCCESS:  # a success's span waits for its usage
            self._end_attempt_span(attempt)

    def _end_attempt_span(self, attempt: Attempt) -> None:
        """Make and end the attempt's span, once: none when not traced, or made already (a
        second outcome of the same attempt)."""
        begun = self.attempt_spans.get(attempt)
        if begun is None:
            return
        self.attempt_spans[attempt] = None
        start, attributes = begun
        outcome, status = attempt.outcome, None
        if outcome is not None:
            attributes["routatic.outcome"] = outcome.kind.value
            attributes["routatic.reason"] = outcome.reason
            if outcome.status:
                attributes["http.response.status_code"] = outcome.status
            if outcome.kind not in _QUIET_FAILURES:
                attributes["error.type"] = outcome.reason
                status = Status(StatusCode.ERROR, outcome.kind.value)
        if outcome is None or outcome.kind is Kind.SUCCESS:
            attributes.update(usage_attributes(attempt.usage))
        span = self.telemetry.tracer.start_span(
            f"{operation_name(self.endpoint)} {attempt.target.model}",
            context=trace.set_span_in_context(self.span),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=start,
        )
        if status is not None:
            span.set_status(status)
        span.end()

    def finish(self) -> None:
        """Record the request's metrics, end its spans and log its line; later calls do
        nothing."""
        if self.finished:
            return
        self.finished = True
        try:
            self._finish()
        except Exception:
            logger.exception("recording a request failed")
        finally:
            if self._token is not None:
                otel_context.detach(self._token)

    def _finish(self) -> None:
        request: InboundRequest | None = self.scope.get(REQUEST)
        duration = self.telemetry.timer() - self.started
        outcome = request_outcome(request, self.status)
        route = request.route if request is not None else ""
        metrics = self.telemetry.metrics
        metrics.request(self.protocol, route, outcome, duration)
        if request is not None and request.attempts:
            metrics.proxy_overhead.observe(max(duration - self.upstream_seconds, 0.0))
        if self.span.is_recording():
            self._end_spans(request, outcome)
        ttfb = None if self.first_byte is None else self.first_byte - self.started
        context = self.span.get_span_context()
        line = request_line(
            at=self.at,
            actor=self.scope.get(ACTOR),
            protocol=self.protocol,
            endpoint=self.endpoint,
            request=request,
            status=self.status,
            ttfb=ttfb,
            duration=duration,
            trace_id=format(context.trace_id, "032x") if context.is_valid else None,
        )
        self.telemetry.recent.append(line)
        log = self.telemetry.log
        if not log.isEnabledFor(logging.INFO):
            return
        # Not log.info(): that also walks the stack for the caller's file and line, which the
        # request log never shows. Level, filters and handlers apply all the same.
        text = orjson.dumps(line).decode()
        log.handle(log.makeRecord(log.name, logging.INFO, "", 0, text, (), None))

    def _end_spans(self, request: InboundRequest | None, outcome: str) -> None:
        span = self.span
        for attempt in list(self.attempt_spans):
            self._end_attempt_span(attempt)
        attributes: dict[str, Any] = {}
        if request is not None:
            span.update_name(f"{operation_name(self.endpoint)} {request.model}")
            attributes.update(request_attributes(request))
            attributes["routatic.attempts"] = len(request.attempts)
            served = next((a for a in request.attempts if a.succeeded), None)
            if served is not None:
                attributes["gen_ai.provider.name"] = served.target.provider
                attributes["gen_ai.response.model"] = served.target.model
                attributes.update(usage_attributes(served.usage))
        attributes["routatic.outcome"] = outcome
        if self.status is not None:
            attributes["http.response.status_code"] = self.status
        if outcome != "success":
            attributes["error.type"] = outcome
        span.set_attributes(attributes)  # one call: the SDK locks and loops once per call
        if outcome not in _NOT_SERVER_ERRORS:
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()
