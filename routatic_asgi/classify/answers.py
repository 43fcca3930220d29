"""Upstream answers as outcomes: an error status with its headers and body, or an error
event inside a 200 stream.

Pure functions of a status, headers, a body and `now`. Status codes are compared as whole
numbers, never as substrings.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import orjson

from routatic_asgi.classify.outcome import SUCCESS, Kind, Outcome, Reason, status_reason
from routatic_asgi.classify.times import (
    MAX_WAIT,
    parse_retry_after,
    unified_rejected,
    usage_reset_at,
)

__all__ = ["classify_response", "classify_stream_error", "says_too_long"]

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
    if status != 400 and unified_rejected(headers):
        return True
    if any(
        _USAGE_LIMIT.search(value)
        for name, value in headers.items()
        if not name.lower().startswith("anthropic-ratelimit-")  # told by status, above
    ):
        return True
    return bool(_USAGE_LIMIT.search(body[:65536].decode("utf-8", "replace")))
