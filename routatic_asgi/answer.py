"""The answer a client gets when no attempt committed: the most useful one, never a 200.

Pure: it reads the settled attempts and `now` and returns a status, headers and a body in the
caller's protocol. It never names a credential's secret, only where it came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.types import Send

from routatic_asgi.attempt import Attempt, Protocol
from routatic_asgi.classify import TIMEOUTS, Kind, Reason
from routatic_asgi.errors import error_body

__all__ = ["Answer", "final_answer", "proxy_error", "send_answer"]

Headers = list[tuple[bytes, bytes]]

# The gateway's own refusals that no retry can mend: the request, its key or its path is
# wrong. Without `x-should-retry: false` the official SDKs and Claude Code retry them (a
# missing proxy key for minutes).
_FINAL_STATUSES = frozenset({400, 401, 403, 404, 405, 413, 415})
_LONGEST_RETRY_AFTER = 31 * 86400  # what any upstream may have stated, already clamped


@dataclass(slots=True)
class Answer:
    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""


async def send_answer(send: Send, answer: Answer) -> None:
    """Send a whole answer: the one place the proxy's own responses are written."""
    headers = [*answer.headers, (b"content-length", str(len(answer.body)).encode())]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def proxy_error(
    protocol: Protocol,
    status: int,
    message: str,
    error_type: str | None = None,
    retry_after: float | None = None,
    *,
    param: str | None = None,
) -> Answer:
    """An error the proxy itself produces, in the caller's envelope.

    A refusal no retry can mend (400, 401, 403, 404, 405, 413, 415) says so in
    `x-should-retry: false`; `param` names the request field at fault (OpenAI's `param`)."""
    headers: Headers = [(b"content-type", b"application/json")]
    if status in _FINAL_STATUSES:
        headers.append((b"x-should-retry", b"false"))
    if retry_after is not None and math.isfinite(retry_after):
        seconds = min(max(math.ceil(retry_after), 0), _LONGEST_RETRY_AFTER)
        headers.append((b"retry-after", str(seconds).encode()))
    return Answer(status, headers, error_body(protocol, status, message, error_type, param))


def final_answer(
    protocol: Protocol, attempts: Sequence[Attempt], now: float, *, deadline_passed: bool = False
) -> Answer:
    """What to tell the client when every target failed, was skipped, or time ran out."""
    tried = [a for a in attempts if a.outcome is not None and a.outcome.failed]
    last = attempts[-1] if attempts else None
    if last is not None and last.outcome is not None and last.status and _returned_as_is(last):
        return Answer(last.status, list(last.headers), last.body)
    if len(tried) == 1 and tried[0].status and len(attempts) == 1 and not _key_rejected(tried[0]):
        only = tried[0]
        return Answer(only.status, list(only.headers), only.body)
    summary = _summary(attempts)
    if not attempts:
        return proxy_error(protocol, 503, "no target could be tried", "api_error")
    if deadline_passed:
        return proxy_error(protocol, 504, f"the deadline passed: {summary}", "timeout_error")
    if all(_unservable(a) for a in attempts):
        return proxy_error(protocol, 400, _unservable_message(attempts), "invalid_request_error")
    if tried and all(a.outcome is not None and a.outcome.kind is Kind.AUTH for a in tried):
        return proxy_error(protocol, 401, _auth_message(tried), "authentication_error")
    if not tried and all(_key_rejected(a) for a in attempts):
        # Every target's key is known to be rejected: the operator has a key to fix.
        return proxy_error(protocol, 401, _auth_message(attempts), "authentication_error")
    wait = _soonest(attempts, now)
    if (tried and all(_is_rate_limit(a) for a in tried)) or not tried:
        status = 429 if tried or any(_cooling_on_limit(a) for a in attempts) else 503
        message = (
            f"every target is rate limited or cooling down: {summary}"
            if tried
            else f"every target is cooling down: {summary}"
        )
        error_type = "rate_limit_error" if status == 429 else "overloaded_error"
        return proxy_error(protocol, status, message, error_type, wait)
    if all(a.outcome is not None and a.outcome.reason in TIMEOUTS for a in tried):
        return proxy_error(protocol, 504, f"every target timed out: {summary}", "timeout_error")
    if all(a.outcome is not None and a.outcome.reason in _UNREADABLE for a in tried):
        message = f"every target answered with something unreadable: {summary}"
        return proxy_error(protocol, 502, message, "api_error")
    overloaded = any(a.outcome is not None and a.outcome.status == 529 for a in tried)
    status = 529 if overloaded else 503
    error_type = "overloaded_error" if overloaded else "api_error"
    return proxy_error(protocol, status, f"every target failed: {summary}", error_type, wait)


# Why a target can never serve this request, whatever the time: no retry can mend it.
_NEVER = {
    Reason.UNFIT_VISION: "cannot read images",
    Reason.UNFIT_TOOLS: "cannot use tools",
    Reason.UNFIT_CONTEXT: "has a context window smaller than the prompt",
    Reason.CONTEXT_TOO_LONG: "said the prompt is too long",
    Reason.NO_TRANSLATION: "cannot answer this endpoint",
}
_TOO_LONG = frozenset({Reason.UNFIT_CONTEXT, Reason.CONTEXT_TOO_LONG})
# An answer that is not its protocol's: a bad gateway, not an overloaded one.
_UNREADABLE = frozenset({Reason.UNREADABLE_ANSWER, Reason.MALFORMED_EVENT})


def _unservable(attempt: Attempt) -> bool:
    outcome = attempt.outcome
    return (
        outcome is not None
        and outcome.kind in (Kind.SKIPPED, Kind.UNFIT)
        and (outcome.reason in _NEVER)
    )


def _unservable_message(attempts: Sequence[Attempt]) -> str:
    """Why no target fits; worded "prompt is too long" when that is why, so Claude Code
    compacts the conversation instead of failing."""
    reasons = [a.outcome.reason for a in attempts if a.outcome is not None]
    why = "; ".join(
        dict.fromkeys(
            f"{a.target.name} {_NEVER[Reason(a.outcome.reason)]}" for a in attempts if a.outcome
        )
    )
    if any(reason in _TOO_LONG for reason in reasons):
        return f"prompt is too long for every target: {why}"
    return f"no target can serve this request: {why}"


def _returned_as_is(attempt: Attempt) -> bool:
    """A client error from the first target, or a passthrough credential's rejection."""
    assert attempt.outcome is not None
    if attempt.outcome.kind is Kind.CLIENT:
        return True
    return attempt.outcome.kind is Kind.AUTH and attempt.target.passthrough


def _key_rejected(attempt: Attempt) -> bool:
    """A configured key was rejected now, or is known to be (skipped as credential_auth)."""
    outcome = attempt.outcome
    if outcome is None or attempt.target.passthrough:
        return False
    return outcome.kind is Kind.AUTH or outcome.reason == Reason.CREDENTIAL_AUTH


def _is_rate_limit(attempt: Attempt) -> bool:
    assert attempt.outcome is not None
    return attempt.outcome.kind is Kind.EXHAUSTED or attempt.outcome.reason == Reason.RATE_LIMITED


def _cooling_on_limit(attempt: Attempt) -> bool:
    return attempt.outcome is not None and attempt.outcome.reason == Reason.CREDENTIAL_EXHAUSTED


def _soonest(attempts: Sequence[Attempt], now: float) -> float | None:
    waits: list[float] = []
    for attempt in attempts:
        outcome = attempt.outcome
        if outcome is None:
            continue
        if outcome.retry_after is not None:
            waits.append(outcome.retry_after)
        elif outcome.reset_at is not None:
            waits.append(max(outcome.reset_at - now, 0.0))
    return min(waits) if waits else None


_CONNECTING = frozenset({Reason.CONNECT_ERROR, Reason.CONNECT_TIMEOUT, Reason.TLS_ERROR})


def _summary(attempts: Sequence[Attempt]) -> str:
    parts = []
    for attempt in attempts:
        outcome = attempt.outcome
        if outcome is None:
            continue
        status = f" {outcome.status}" if outcome.status else ""
        if outcome.reason in _CONNECTING:  # where it could not connect: host and port
            url = urlsplit(attempt.target.base_url)
            port = url.port or (443 if url.scheme == "https" else 80)
            why = f": {outcome.detail}" if outcome.detail else ""
            status = f" ({url.hostname}:{port}{why})"
        parts.append(f"{attempt.target.name} {outcome.reason}{status}")
    return "; ".join(parts)


def _auth_message(tried: Sequence[Attempt]) -> str:
    rejected = []
    for attempt in tried:
        credential = attempt.target.credential
        where = f" ({credential.source})" if credential is not None and credential.source else ""
        rejected.append(f"provider '{attempt.target.provider}' rejected its key{where}")
    return "; ".join(dict.fromkeys(rejected))
