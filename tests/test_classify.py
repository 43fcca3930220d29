"""Classification: one place decides what every upstream answer means."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable

import httpx
import pytest

from routatic_asgi.classify import (
    Kind,
    Reason,
    classify_exception,
    classify_response,
    classify_stream_error,
    parse_retry_after,
)

NOW = 1_800_000_000.0
FALLBACK_ON = frozenset({408, 429, 500, 502, 503, 504, 529})


def classify(status: int, body: str = "{}", first: bool = True, **headers: str) -> tuple[Kind, str]:
    outcome = classify_response(
        status,
        {k.replace("_", "-"): v for k, v in headers.items()},
        body.encode(),
        fallback_on=FALLBACK_ON,
        first=first,
        now=NOW,
    )
    return outcome.kind, outcome.reason


@pytest.mark.parametrize("status", [200, 201, 204])
def test_2xx_is_success(status: int) -> None:
    assert classify(status)[0] is Kind.SUCCESS


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (408, "timeout"),
        (429, "rate_limited"),
        (500, "status_500"),
        (502, "status_502"),
        (503, "status_503"),
        (504, "status_504"),
        (529, "overloaded"),
    ],
)
def test_fallback_statuses_are_transient(status: int, reason: str) -> None:
    assert classify(status) == (Kind.TRANSIENT, reason)


@pytest.mark.parametrize("status", [400, 404, 413, 422, 501, 4290, 5290, 42])
def test_other_statuses_from_the_first_target_are_the_clients(status: int) -> None:
    assert classify(status)[0] is Kind.CLIENT


def test_statuses_are_whole_numbers_not_substrings() -> None:
    assert classify(4291)[0] is Kind.CLIENT
    outcome = classify_response(429, {}, b"", fallback_on=[4290], first=True, now=NOW)
    assert outcome.kind is Kind.CLIENT


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (404, '{"error": {"message": "model not found"}}', "unknown_model"),
        (404, "<html>404 page not found</html>", "wrong_path"),
        (
            400,
            '{"error": {"message": "prompt is too long: 250000 tokens > 200000 maximum"}}',
            "context_too_long",
        ),
        (
            400,
            '{"error": {"message": "This model\'s maximum context length is 128000 tokens"}}',
            "context_too_long",
        ),
        (422, '{"detail": "bad field"}', "rejected"),
    ],
)
def test_unfit_answers_from_a_fallback_target(status: int, body: str, reason: str) -> None:
    assert classify(status, body, first=False) == (Kind.UNFIT, reason)


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_are_auth(status: int) -> None:
    assert classify(status)[0] is Kind.AUTH


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (402, "{}", {}),
        (429, '{"error": {"type": "usage_limit_reached", "message": "x"}}', {}),
        (429, '{"error": {"code": "insufficient_quota"}}', {}),
        (403, '{"error": {"message": "Your credit balance is too low"}}', {}),
        (429, '{"type": "GoUsageLimitError"}', {}),
        (429, "{}", {"anthropic_ratelimit_unified_status": "rejected"}),
    ],
)
def test_usage_limits_are_told_apart_from_rate_limits(
    status: int, body: str, headers: dict[str, str]
) -> None:
    assert classify(status, body, **headers)[0] is Kind.EXHAUSTED


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Fri, 15 Jan 2027 08:00:20 GMT"}, 20.0),
        ({"retry-after": "Mon, 01 Jan 2001 00:00:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], seconds: float | None) -> None:
    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert parse_retry_after(headers, now) == seconds


def test_a_429_keeps_its_retry_after() -> None:
    outcome = classify_response(
        429, {"retry-after": "12"}, b"{}", fallback_on=FALLBACK_ON, first=True, now=NOW
    )
    assert outcome.retry_after == 12.0


@pytest.mark.parametrize(
    ("error_type", "kind"),
    [
        ("overloaded_error", Kind.TRANSIENT),
        ("api_error", Kind.TRANSIENT),
        ("rate_limit_error", Kind.TRANSIENT),
        ("authentication_error", Kind.AUTH),
        ("billing_error", Kind.EXHAUSTED),
        ("something_new", Kind.TRANSIENT),
    ],
)
def test_error_events_inside_a_stream(error_type: str, kind: Kind) -> None:
    data = json.dumps({"type": "error", "error": {"type": error_type, "message": "m"}}).encode()
    assert classify_stream_error(data, fallback_on=FALLBACK_ON, first=True, now=NOW).kind is kind


def _failed(code: str, message: str) -> bytes:
    response = {"id": "resp_1", "status": "failed", "error": {"code": code, "message": message}}
    event = {"type": "response.failed", "sequence_number": 3, "response": response}
    return json.dumps(event).encode()


def _error_event(code: str, message: str) -> bytes:
    event = {"type": "error", "code": code, "message": message, "param": None}
    return json.dumps({**event, "sequence_number": 2}).encode()


@pytest.mark.parametrize("shape", [_failed, _error_event])
@pytest.mark.parametrize(
    ("code", "message", "kind", "reason"),
    [
        ("rate_limit_exceeded", "Rate limit reached", Kind.TRANSIENT, Reason.RATE_LIMITED),
        (
            "insufficient_quota",
            "You exceeded your current quota",
            Kind.EXHAUSTED,
            Reason.USAGE_LIMIT,
        ),
        ("invalid_api_key", "Incorrect API key provided", Kind.AUTH, Reason.AUTH_REJECTED),
        ("server_error", "The server had an error", Kind.TRANSIENT, "status_500"),
        ("something_new", "?", Kind.TRANSIENT, "status_500"),
    ],
)
def test_responses_failures_inside_a_stream_are_classified_by_their_code(
    shape: Callable[[str, str], bytes], code: str, message: str, kind: Kind, reason: str
) -> None:
    data = shape(code, message)
    outcome = classify_stream_error(data, fallback_on=FALLBACK_ON, first=True, now=NOW)
    assert (outcome.kind, outcome.reason) == (kind, reason)


def test_a_responses_context_length_failure_is_the_clients_or_unfit() -> None:
    data = _error_event("context_length_exceeded", "Your input exceeds the context window")
    first = classify_stream_error(data, fallback_on=FALLBACK_ON, first=True, now=NOW)
    later = classify_stream_error(data, fallback_on=FALLBACK_ON, first=False, now=NOW)
    assert (first.kind, first.reason) == (Kind.CLIENT, Reason.CONTEXT_TOO_LONG)
    assert (later.kind, later.reason) == (Kind.UNFIT, Reason.CONTEXT_TOO_LONG)


def test_an_unreadable_error_event_is_still_a_failure() -> None:
    outcome = classify_stream_error(b"not json", fallback_on=FALLBACK_ON, first=True, now=NOW)
    assert outcome.kind is Kind.TRANSIENT


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (httpx.ConnectTimeout("slow handshake"), Reason.CONNECT_TIMEOUT),
        (httpx.PoolTimeout("no free connection"), Reason.CONNECT_TIMEOUT),
        (httpx.ReadTimeout("silent"), Reason.READ_TIMEOUT),
        (httpx.ConnectError("refused"), Reason.CONNECT_ERROR),
        (httpx.ConnectError(repr(ssl.SSLError("bad cert"))), Reason.TLS_ERROR),
        (httpx.RemoteProtocolError("garbage"), Reason.PROTOCOL_ERROR),
        (httpx.ReadError("reset"), Reason.READ_ERROR),
    ],
)
def test_a_transport_failure_is_transient_with_a_bounded_reason(
    exc: Exception, reason: Reason
) -> None:
    outcome = classify_exception(exc)
    assert (outcome.kind, outcome.reason) == (Kind.TRANSIENT, reason)


def test_reasons_are_the_labels_metrics_and_headers_show() -> None:
    # A member is its label: logs, metric labels and x-routatic-fallback read the same text.
    assert Reason.RATE_LIMITED == "rate_limited"
    assert f"{Reason.BREAKER_OPEN}" == "breaker_open"
    assert classify(418)[1] == "status_418"
