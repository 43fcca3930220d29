"""The one JSON line logged per request, and the bounded outcome every signal agrees on.

Pure: built from the shared request objects and timings. A line holds names, ids,
classifications, token counts and timings; it never holds a body, a header value or a
secret (a credential appears only as provider#index, a session only as its hash).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from routatic_asgi.attempt import Attempt, InboundRequest
from routatic_asgi.classify import Kind, Reason
from routatic_asgi.config import RouteConfig

__all__ = ["OUTCOMES", "request_line", "request_outcome", "route_label", "served_by"]

OUTCOMES = (
    "success",
    "client_error",
    "rate_limited",
    "timeout",
    "upstream_error",
    "rejected",
    "cancelled",
)


def route_label(route: RouteConfig) -> str:
    """A route's name in metrics and logs: its glob, and its traits when it has some."""
    if route.when is None:
        return route.match
    traits = route.when.model_dump(exclude_none=True)
    return f"{route.match} when " + ",".join(f"{k}={str(v).lower()}" for k, v in traits.items())


def served_by(request: InboundRequest | None) -> Attempt | None:
    """The attempt that committed, if any."""
    if request is None:
        return None
    return next((a for a in request.attempts if a.succeeded), None)


def request_outcome(request: InboundRequest | None, status: int | None) -> str:
    """One of OUTCOMES, from what the client was told.

    An answer that broke off after it had begun is an upstream error (its status is still
    200), or cancelled when it was the client who went away."""
    served = served_by(request)
    if served is not None:
        if served.broken is None:
            return "success"
        return "cancelled" if served.broken == Reason.CLIENT_DISCONNECTED else "upstream_error"
    if status is None:
        return "cancelled"
    if status < 300:  # answered by the gateway itself, e.g. a local token count
        return "success"
    if request is None or not request.attempts:
        return "rejected" if status < 500 else "upstream_error"
    last = request.attempts[-1].outcome
    if last is not None and last.kind is Kind.CANCELLED:
        return "cancelled"
    if status == 429:
        return "rate_limited"
    if status == 504:
        return "timeout"
    return "client_error" if status < 500 else "upstream_error"


def _attempt_entry(attempt: Attempt) -> dict[str, Any]:
    outcome = attempt.outcome
    entry: dict[str, Any] = {
        "target": attempt.target.name,
        "credential": attempt.target.credential.id if attempt.target.credential else None,
        "outcome": outcome.kind.value if outcome else None,
        "reason": outcome.reason if outcome else None,
    }
    if outcome is not None and outcome.status:
        entry["status"] = outcome.status
    if outcome is not None and outcome.detail:  # why a connect failed: refused, DNS, TLS...
        entry["detail"] = outcome.detail
    if attempt.broken is not None and attempt.succeeded:  # committed, then broke off
        cancelled = attempt.broken == Reason.CLIENT_DISCONNECTED
        entry["outcome"] = Kind.CANCELLED.value if cancelled else Kind.TRANSIENT.value
        entry["reason"] = attempt.broken
        entry["status"] = 200
    if attempt.via is not None:
        entry["via"] = attempt.via
    if attempt.retried:  # earlier calls within the attempt: a key refreshed after a rejection
        entry["retried"] = [earlier.reason for earlier in attempt.retried]
    return entry


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


def request_line(
    *,
    at: float,
    actor: str | None,
    protocol: str,
    endpoint: str,
    request: InboundRequest | None,
    status: int | None,
    ttfb: float | None,
    duration: float,
    trace_id: str | None = None,
) -> dict[str, Any]:
    """Everything an operator asks about one request, in one flat-ish mapping."""
    served = served_by(request)
    usage = served.usage if served is not None else None
    line: dict[str, Any] = {
        "ts": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
        "actor": actor,
        "protocol": protocol,
        "endpoint": endpoint,
        "model": request.model if request else None,
        "route": (request.route or None) if request else None,
        "session": request.session.hashed if request and request.session else None,
        "stream": request.stream if request else None,
        "status": status,
        "outcome": request_outcome(request, status),
        "attempts": [_attempt_entry(a) for a in request.attempts] if request else [],
        "provider": served.target.provider if served else None,
        "served_model": (usage.model if usage and usage.model else None)
        or (served.target.model if served else None),
        "stop_reason": usage.stop_reason if usage else None,
        "tokens": {
            "input": usage.input if usage else 0,
            "output": usage.output if usage else 0,
            "cache_read": usage.cache_read if usage else 0,
            "cache_write": usage.cache_write if usage else 0,
        },
        "ttfb_ms": _ms(ttfb),
        "duration_ms": _ms(duration),
    }
    if trace_id:
        line["trace_id"] = trace_id
    return line
