"""When to call the same target again before moving on: a pure decision, no sleeping.

A blip — a 5xx, a reset or refused connection, a stream that ended before its content — is
retried after a short jittered pause; a failure whose `Retry-After` is short
(`resilience.retry.max_wait`) is retried after waiting it out. Never retried: a probe or a
call in panic (one call each), a timeout (it has already cost its wait), a rate limit with no
stated wait, anything that is not the target's own transient failure, and a pause the
deadline cannot hold. Each retry is an attempt of its own, counted like any other.
"""

from __future__ import annotations

import random

from routatic_asgi.attempt import Attempt
from routatic_asgi.classify import Kind, Reason
from routatic_asgi.config import RetryConfig

__all__ = ["blip_pause", "retry_pause"]

# Failures of the connection or the stream, not of the request: worth one more call.
_BLIPS = frozenset(
    {
        Reason.CONNECT_ERROR,
        Reason.READ_ERROR,
        Reason.PROTOCOL_ERROR,
        Reason.STREAM_ENDED_EARLY,
        Reason.EMPTY_STREAM,
    }
)


def blip_pause() -> float:
    """The pause before retrying a blip: short, jittered so retries do not arrive together."""
    return random.uniform(0.1, 0.5)


def retry_pause(
    attempt: Attempt, *, retried: int, policy: RetryConfig, remaining: float, jitter: float
) -> float | None:
    """Seconds to wait before calling `attempt`'s target again, or None to move on.

    `retried`: retries of this target so far in this request; `remaining`: seconds left
    before the deadline; `jitter`: the pause for a blip.
    """
    outcome = attempt.outcome
    if outcome is None or outcome.kind is not Kind.TRANSIENT:
        return None
    if attempt.probe or retried >= policy.attempts:
        return None
    if outcome.retry_after is not None:
        pause: float | None = outcome.retry_after
        if outcome.retry_after > policy.max_wait:
            pause = None
    elif (outcome.status or 0) >= 500 or outcome.reason in _BLIPS:
        pause = jitter
    else:
        pause = None
    if pause is None or pause >= remaining:
        return None
    return pause
