"""What an attempt came to: its `Kind`, its `Reason` and the `Outcome` that carries both.

Every reason an outcome can carry is a `Reason`; the layers compare members, never strings
of their own, and a new reason is added here first. Plain values: no I/O, no parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "SHORT_CIRCUITS",
    "SUCCESS",
    "TIMEOUTS",
    "Kind",
    "Outcome",
    "Reason",
    "status_reason",
]


class Kind(StrEnum):
    SUCCESS = "success"
    TRANSIENT = "transient"  # next target; the breaker opens
    EXHAUSTED = "exhausted"  # usage or quota limit: the credential cools until its reset
    AUTH = "auth"  # the credential was rejected
    CLIENT = "client"  # the request is wrong: back to the client unchanged
    UNFIT = "unfit"  # this target cannot serve this request: next target, no penalty
    SKIPPED = "skipped"  # not tried: breaker open, credential cooling, unfit by capability
    CANCELLED = "cancelled"  # the client went away: nobody's failure


class Reason(StrEnum):
    """Why an attempt came to its outcome: a short, bounded label fit for a metric."""

    OK = "ok"
    # The upstream answered with an error status.
    USAGE_LIMIT = "usage_limit"
    AUTH_REJECTED = "auth_rejected"
    TIMEOUT = "timeout"  # 408
    RATE_LIMITED = "rate_limited"  # 429
    OVERLOADED = "overloaded"  # 529
    UNKNOWN_MODEL = "unknown_model"
    WRONG_PATH = "wrong_path"  # a 404 that does not speak of a model: base_url is wrong
    CONTEXT_TOO_LONG = "context_too_long"
    REJECTED = "rejected"  # another 4xx from a fallback target
    # The upstream's stream or body let us down.
    STREAM_ERROR = "stream_error"
    STREAM_ENDED_EARLY = "stream_ended_early"
    EMPTY_STREAM = "empty_stream"
    UNREADABLE_ANSWER = "unreadable_answer"
    MALFORMED_EVENT = "malformed_event"  # a stream event the translation cannot read
    EVENT_TOO_LARGE = "event_too_large"  # one event, or what is held before the commit
    ANSWER_TOO_LARGE = "answer_too_large"  # a body that must be read whole, over its cap
    FIRST_BYTE_TIMEOUT = "first_byte_timeout"
    # The transport failed (see `classify_exception`).
    CONNECT_TIMEOUT = "connect_timeout"
    READ_TIMEOUT = "read_timeout"
    TLS_ERROR = "tls_error"
    CONNECT_ERROR = "connect_error"
    PROTOCOL_ERROR = "protocol_error"
    READ_ERROR = "read_error"
    # The router's own verdicts.
    DEADLINE = "deadline"
    CLIENT_DISCONNECTED = "client_disconnected"
    INTERNAL_ERROR = "internal_error"
    NO_ANSWER = "no_answer"
    # Not tried: a layer spared the upstream a call.
    BREAKER_OPEN = "breaker_open"
    BREAKER_PROBING = "breaker_probing"
    CREDENTIAL_AUTH = "credential_auth"
    CREDENTIAL_EXHAUSTED = "credential_exhausted"
    KEY_COMMAND_FAILED = "key_command_failed"
    NO_TRANSLATION = "no_translation"
    UNFIT_VISION = "unfit_vision"
    UNFIT_TOOLS = "unfit_tools"
    UNFIT_CONTEXT = "unfit_context"
    # A success whose rate-limit headers say nothing is left (a credential record's reason).
    DEPLETED = "depleted"
    # How an attempt came about, beside a first call: the reason of its success (`via`).
    RETRIED = "retried"  # the same target again, after a blip or a short Retry-After
    HEDGED = "hedged"  # started beside a slow one; a hedge's loser is cancelled with it
    RESCUED = "rescued"  # continues an answer whose stream broke after its commit


# Skips that spare an upstream a call it would have failed: the resilience layers at work.
SHORT_CIRCUITS = frozenset(
    {
        Reason.BREAKER_OPEN,
        Reason.BREAKER_PROBING,
        Reason.CREDENTIAL_AUTH,
        Reason.CREDENTIAL_EXHAUSTED,
    }
)
# Reasons that say the target was too slow rather than wrong.
TIMEOUTS = frozenset(
    {Reason.FIRST_BYTE_TIMEOUT, Reason.READ_TIMEOUT, Reason.CONNECT_TIMEOUT, Reason.TIMEOUT}
)


def status_reason(status: int) -> str:
    """The reason of a status without a name of its own: `status_<code>`, still bounded."""
    return f"status_{status}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to. `reason` is a `Reason`, or `status_reason(code)`."""

    kind: Kind
    reason: str
    status: int | None = None
    retry_after: float | None = None  # seconds from now the upstream asked us to wait
    reset_at: float | None = None  # epoch seconds when an exhausted credential resets
    # Why a connect failed (`connection refused`, `DNS lookup failed`, ...): for messages and
    # the request log only; metrics label by `reason`, a bounded set, never by this text.
    detail: str | None = None

    @property
    def failed(self) -> bool:
        return self.kind not in (Kind.SUCCESS, Kind.SKIPPED, Kind.CANCELLED)


SUCCESS = Outcome(Kind.SUCCESS, Reason.OK)
