"""Transport failures (an `httpx.HTTPError`) as outcomes: always transient, with why a
connect failed in words an operator acts on (refused, DNS, TLS, timed out).

The one place third-party transport exceptions are mapped; no I/O.
"""

from __future__ import annotations

import socket
import ssl

import httpx

from routatic_asgi.classify.outcome import Kind, Outcome, Reason

__all__ = ["classify_exception"]


def classify_exception(exc: Exception) -> Outcome:
    """Map a transport failure (an `httpx.HTTPError`) to a transient outcome."""
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        reason = Reason.CONNECT_TIMEOUT
    elif isinstance(exc, httpx.TimeoutException):
        reason = Reason.READ_TIMEOUT
    elif isinstance(exc, httpx.ConnectError):
        reason = Reason.TLS_ERROR if "SSL" in repr(exc) else Reason.CONNECT_ERROR
    elif isinstance(exc, httpx.RemoteProtocolError):
        reason = Reason.PROTOCOL_ERROR
    else:
        reason = Reason.READ_ERROR
    detail = _connect_detail(exc) if reason in _CONNECT_REASONS else None
    return Outcome(Kind.TRANSIENT, reason, detail=detail)


_CONNECT_REASONS = frozenset({Reason.CONNECT_ERROR, Reason.CONNECT_TIMEOUT, Reason.TLS_ERROR})


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from, outermost first (cycles cut)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _connect_detail(exc: Exception) -> str:
    """Why a connect failed, in words an operator acts on: refused, DNS, TLS or timeout."""
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return "timed out"
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not accepted: {cause.verify_message or cause.reason}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed: {cause.reason or type(cause).__name__}"
        if isinstance(cause, socket.gaierror):
            return "DNS lookup failed (name not resolved)"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, TimeoutError):
            return "timed out"
    if "SSL" in repr(exc):
        return "TLS handshake failed"
    text = str(exc).lower()
    if "name or service not known" in text or "nodename nor servname" in text:
        return "DNS lookup failed (name not resolved)"
    if "refused" in text:
        return "connection refused"
    cause = _causes(exc)[-1]
    return getattr(cause, "strerror", None) or type(cause).__name__
