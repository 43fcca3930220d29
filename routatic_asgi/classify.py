"""Every upstream outcome is classified here, once, and every layer acts on the class.

Pure functions of a status, headers, a body (or a transport exception) and `now`: no I/O,
no clock of their own. Status codes are compared as whole numbers, never as substrings.
Every reason an outcome can carry is a `Reason`; the layers compare members, never strings
of their own, and a new reason is added here first.
"""

from __future__ import annotations

import math
import re
import socket
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import httpx
import orjson

__all__ = [
    "MAX_RESET",
    "MAX_WAIT",
    "Kind",
    "Outcome",
    "Reason",
    "bounded_wait",
    "classify_exception",
    "classify_response",
    "classify_stream_error",
    "depleted_until",
    "parse_retry_after",
    "says_too_long",
    "status_reason",
    "usage_reset_at",
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

_STATUS_REASONS = {408: Reason.TIMEOUT, 429: Reason.RATE_LIMITED, 529: Reason.OVERLOADED}

_USAGE_LIMIT = re.compile(
    r"usage[ _]limit|quota|insufficient[ _](?:credit|balance|funds)|credit balance|billing"
    r"|GoUsageLimitError|payment required|out[ _]of[ _]credits",
    re.IGNORECASE,
)
_TOO_LONG = re.compile(
    r"prompt is too long|context[ _]length|context window|maximum context|too many tokens"
    r"|reduce the length",
    re.IGNORECASE,
)


def says_too_long(text: str) -> bool:
    """Whether an error's text says the prompt is longer than the model's context, in any
    provider's words ("prompt is too long", "maximum context length", ...)."""
    return _TOO_LONG.search(text) is not None


_TRY_AGAIN_IN = re.compile(r"try again in\s+((?:\d+(?:\.\d+)?\s*[hms]\s*)+)", re.IGNORECASE)
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|h|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


# The longest wait an upstream's `Retry-After` is taken at (`resilience.max_wait`), and the
# furthest a usage limit's stated reset is believed: one header must never park a target
# for years, nor put a number no store or header can hold on the way.
MAX_WAIT = 3600.0
MAX_RESET = 31 * 86400.0


def parse_retry_after(
    headers: Mapping[str, str], now: float, limit: float = MAX_WAIT
) -> float | None:
    """Seconds to wait, from `retry-after-ms`, or `retry-after` as seconds or an HTTP date.

    `0`, a negative number or a date in the past means "now" (0.0); a wait beyond `limit` is
    `limit`; an unreadable value ("nan", "soon") means nothing (None).
    """
    seconds = _retry_after(headers, now)
    return None if seconds is None else min(seconds, limit)


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return _finite(max(float(millis) / 1000.0, 0.0))
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return _finite(max(float(value), 0.0))
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - now, 0.0)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def bounded_wait(name: bytes, value: bytes, limit: float) -> bytes | None:
    """A relayed `retry-after` (seconds) or `retry-after-ms` value a client can act on: a
    number is clamped to 0..`limit`, an HTTP date is kept, anything else (`nan`) is dropped."""
    text = value.decode("latin-1").strip()
    try:
        number = float(text)
    except ValueError:
        return value if _is_http_date(text) else None
    if math.isnan(number):
        return None
    scale = 1000.0 if name == b"retry-after-ms" else 1.0
    bounded = min(max(number, 0.0), limit * scale)
    return str(math.ceil(bounded)).encode()


def _is_http_date(text: str) -> bool:
    try:
        parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return True


def _finite(seconds: float) -> float | None:
    """An unbounded or undefined wait ("inf", "nan", 400 digits) is no wait we can honour."""
    return seconds if math.isfinite(seconds) else None


def parse_go_duration(text: str) -> float | None:
    """`6m0s`, `1h2m3.5s`, `250ms` (OpenAI's x-ratelimit-reset-* form) in seconds."""
    parts = _GO_DURATION.findall(text)
    if not parts or _GO_DURATION.sub("", text).strip():
        return None
    return _finite(sum(float(number) * _GO_UNITS[unit] for number, unit in parts))


def classify_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    fallback_on: Collection[int],
    first: bool,
    now: float,
    max_wait: float = MAX_WAIT,
) -> Outcome:
    """Classify an upstream HTTP answer. `first` says whether this is the chain's first target;
    a `Retry-After` beyond `max_wait` is taken as `max_wait`."""
    if 200 <= status < 300:
        return SUCCESS
    retry_after = parse_retry_after(headers, now, max_wait)
    if _is_usage_limit(status, headers, body):
        reset_at = usage_reset_at(headers, body, now)
        return Outcome(Kind.EXHAUSTED, Reason.USAGE_LIMIT, status, retry_after, reset_at)
    if status in (401, 403):
        return Outcome(Kind.AUTH, Reason.AUTH_REJECTED, status)
    if status in fallback_on:
        reason = _STATUS_REASONS.get(status) or status_reason(status)
        return Outcome(Kind.TRANSIENT, reason, status, retry_after)
    if not first:
        if status == 404:
            # A provider that does not know the model says so; a 404 that names no model
            # is a path the provider does not have (a base_url with a /v1 too many or few).
            about_model = _MODEL_WORD.search(body.decode("utf-8", "replace"))
            return Outcome(
                Kind.UNFIT, Reason.UNKNOWN_MODEL if about_model else Reason.WRONG_PATH, status
            )
        if says_too_long(body.decode("utf-8", "replace")):
            return Outcome(Kind.UNFIT, Reason.CONTEXT_TOO_LONG, status)
        if 400 <= status < 500:
            return Outcome(Kind.UNFIT, Reason.REJECTED, status)
    elif 400 <= status < 500 and says_too_long(body[:65536].decode("utf-8", "replace")):
        # The client's to fix (Claude Code compacts on it), unless a later target is known to
        # hold a longer context: the router decides that, it knows the chain.
        return Outcome(Kind.CLIENT, Reason.CONTEXT_TOO_LONG, status)
    return Outcome(Kind.CLIENT, status_reason(status), status)


_MODEL_WORD = re.compile(r"model", re.IGNORECASE)


# The status an error type or code stands for, to classify an error inside a stream:
# Anthropic's types, and the codes of OpenAI's error chunks and Responses failures.
_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
    "context_length_exceeded": 400,
    "invalid_prompt": 400,
    "invalid_api_key": 401,
    "insufficient_quota": 429,  # its body says quota: a usage limit
    "rate_limit_exceeded": 429,
    "server_error": 500,
}


def _stream_error(payload: Any) -> dict[str, Any]:
    """The error object of an error inside a stream: Anthropic's `event: error` and OpenAI's
    error chunk (`error`), a Responses `response.failed` (`response.error`) or a Responses
    `error` event (the event itself: `code`, `message`)."""
    if not isinstance(payload, dict):
        return {}
    error = payload.get("error")
    if isinstance(error, dict):
        return error
    response = payload.get("response")
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        return dict(response["error"])
    return payload if payload.get("type") == "error" else {}


def _stream_error_status(error: Mapping[str, Any]) -> int:
    names = [str(error.get(field) or "") for field in ("type", "code")]
    for name in names:
        if name in _ERROR_TYPE_STATUS:
            return _ERROR_TYPE_STATUS[name]
    return 529 if any("overload" in name for name in names) else 500


def classify_stream_error(
    data: bytes, *, fallback_on: Collection[int], first: bool, now: float
) -> Outcome:
    """Classify an error that arrived inside a 200 stream (an `event: error`, an OpenAI error
    chunk, a Responses `response.failed` or `error` event) as the status it stands for."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        payload = None
    status = _stream_error_status(_stream_error(payload))
    outcome = classify_response(status, {}, data, fallback_on=fallback_on, first=first, now=now)
    if outcome.kind is Kind.CLIENT and status >= 500:
        # A 5xx-like error in a stream is the upstream's failure whatever fallback_on says.
        return Outcome(Kind.TRANSIENT, Reason.STREAM_ERROR, status)
    return outcome


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


_UNIFIED_WINDOWS = ("", "-5h", "-7d")


def _unified_rejected(headers: Mapping[str, str]) -> bool:
    return any(
        headers.get(f"anthropic-ratelimit-unified{window}-status", "").strip().lower() == "rejected"
        for window in _UNIFIED_WINDOWS
    )


def _is_usage_limit(status: int, headers: Mapping[str, str], body: bytes) -> bool:
    """A usage or quota limit (the credential is used up), as opposed to a rate limit.

    402 always; a 429 or 403 (or a 400, as Anthropic sends "credit balance is too low") whose
    body or header values say usage limit, quota, insufficient credit/balance or billing, or
    whose `anthropic-ratelimit-unified-status` is `rejected`.
    """
    if status == 402:
        return True
    if status not in (400, 403, 429):
        return False
    if status != 400 and _unified_rejected(headers):
        return True
    if any(
        _USAGE_LIMIT.search(value)
        for name, value in headers.items()
        if not name.lower().startswith("anthropic-ratelimit-")  # told by status, above
    ):
        return True
    return bool(_USAGE_LIMIT.search(body[:65536].decode("utf-8", "replace")))


def _reset_header(name: str, value: str, now: float) -> float | None:
    """A `*-reset` header as epoch seconds: a Go duration (`6m0s`), epoch or date."""
    seconds = parse_go_duration(value.strip()) if name.startswith("x-ratelimit-reset") else None
    if seconds is not None:
        return now + seconds
    return _parse_moment(value.strip(), now)


def _unified_reset(headers: Mapping[str, str], now: float) -> float | None:
    """When a rejected Claude subscription resets: the overall reset, else a rejected window's."""
    overall = _parse_moment(headers.get("anthropic-ratelimit-unified-reset", ""), now)
    if overall is not None:
        return overall
    moments = [
        _parse_moment(headers.get(f"anthropic-ratelimit-unified{window}-reset", ""), now)
        for window in _UNIFIED_WINDOWS[1:]
        if headers.get(f"anthropic-ratelimit-unified{window}-status", "").lower() == "rejected"
    ]
    found = [moment for moment in moments if moment is not None]
    return max(found) if found else None


def depleted_until(headers: Mapping[str, str], now: float) -> float | None:
    """When a *successful* answer's rate-limit headers say nothing is left: the stated reset.

    `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-remaining: 0`, OpenAI's
    `x-ratelimit-remaining-{requests,tokens}: 0`, or a rejected unified status. None when
    something is left or no reset is stated.
    """
    moments: list[float | None] = []
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        if headers.get(f"anthropic-ratelimit-{kind}-remaining", "").strip() == "0":
            reset = headers.get(f"anthropic-ratelimit-{kind}-reset", "")
            moments.append(_parse_moment(reset.strip(), now))
    for kind in ("requests", "tokens"):
        if headers.get(f"x-ratelimit-remaining-{kind}", "").strip() == "0":
            name = f"x-ratelimit-reset-{kind}"
            moments.append(_reset_header(name, headers.get(name, ""), now))
    if _unified_rejected(headers):
        moments.append(_unified_reset(headers, now))
    future = [m for m in moments if m is not None and m > now and math.isfinite(m)]
    return min(max(future), now + MAX_RESET) if future else None


def usage_reset_at(headers: Mapping[str, str], body: bytes, now: float) -> float | None:
    """When an exhausted credential resets (epoch seconds), from headers or body, if stated."""
    candidates: list[float] = []
    if _unified_rejected(headers):
        unified = _unified_reset(headers, now)
        if unified is not None and unified > now:
            return min(unified, now + MAX_RESET)
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith("anthropic-ratelimit-unified"):
            continue  # a window that is not rejected says nothing about this limit
        if (
            lowered.startswith("anthropic-ratelimit-") and lowered.endswith("-reset")
        ) or lowered.startswith("x-ratelimit-reset"):
            moment = _reset_header(lowered, value, now)
            if moment is not None:
                candidates.append(moment)
    retry_after = parse_retry_after(headers, now, MAX_RESET)
    if retry_after is not None:
        candidates.append(now + retry_after)
    candidates.extend(_body_resets(body, now))
    future = [moment for moment in candidates if moment > now and math.isfinite(moment)]
    return min(max(future), now + MAX_RESET) if future else None


def _body_resets(body: bytes, now: float) -> list[float]:
    found: list[float] = []
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    stack = [payload]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "resets_at" and isinstance(value, (int, float, str)):
                    moment = _parse_moment(str(value), now)
                    if moment is not None:
                        found.append(moment)
                elif key == "resets_in_seconds" and isinstance(value, (int, float)):
                    found.append(now + float(value))
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    text_match = _TRY_AGAIN_IN.search(body[:65536].decode("utf-8", "replace"))
    if text_match:
        seconds = parse_go_duration(text_match.group(1).replace(" ", ""))
        if seconds is not None:
            found.append(now + seconds)
    return found


def _parse_moment(value: str, now: float) -> float | None:
    """An epoch-seconds number or an RFC 3339 / HTTP date, as epoch seconds."""
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            return None
        # Epoch milliseconds are far in the future as seconds; small numbers are deltas.
        if number > 1e12:
            return number / 1000.0
        return number if number > 1e9 else now + number
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        pass
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
