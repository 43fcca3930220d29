"""Usage and quota limits told apart from rate limits, and when a used-up credential resets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routatic_asgi.classify import Kind, classify_response, depleted_until, usage_reset_at

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
FALLBACK_ON = [408, 429, 500, 502, 503, 504, 529]


def kind_of(status: int, body: object = None, **headers: str) -> Kind:
    raw = json.dumps(body).encode() if body is not None else b""
    return classify_response(
        status, headers, raw, fallback_on=FALLBACK_ON, first=True, now=NOW
    ).kind


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (402, {"error": {"type": "billing_error", "message": "pay up"}}),
        (402, None),
        (
            429,
            {
                "error": {
                    "type": "usage_limit_reached",
                    "message": "The usage limit has been reached",
                }
            },
        ),
        (
            429,
            {"error": {"code": "insufficient_quota", "message": "You exceeded your current quota"}},
        ),
        (
            429,
            {"type": "error", "error": {"type": "GoUsageLimitError", "message": "monthly limit"}},
        ),
        (403, {"error": {"message": "Insufficient credits on this account"}}),
        (403, {"error": {"message": "insufficient_balance"}}),
        (429, {"error": {"message": "Check your plan and billing details"}}),
        (
            400,
            {
                "error": {
                    "type": "invalid_request_error",
                    "message": "Your credit balance is too low to access the Anthropic API.",
                }
            },
        ),
    ],
)
def test_bodies_that_say_usage_limit_are_exhausted(status: int, body: object) -> None:
    assert kind_of(status, body) is Kind.EXHAUSTED


def test_headers_that_say_so_are_exhausted() -> None:
    assert kind_of(429, {}, **{"anthropic-ratelimit-unified-status": "rejected"}) is Kind.EXHAUSTED
    assert (
        kind_of(429, {}, **{"anthropic-ratelimit-unified-5h-status": "rejected"}) is Kind.EXHAUSTED
    )
    assert kind_of(429, {}, **{"x-error-code": "usage_limit_exceeded"}) is Kind.EXHAUSTED


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (
            429,
            {"error": {"type": "rate_limit_error", "message": "Rate limit reached for requests"}},
            {},
        ),
        (429, {}, {"anthropic-ratelimit-unified-status": "allowed_warning"}),
        # An overage that is off says nothing about the subscription's own limit.
        (429, {}, {"anthropic-ratelimit-unified-overage-disabled-reason": "out_of_credits"}),
        (400, {"error": {"message": "max_tokens is too large"}}, {}),
        (500, {"error": {"message": "quota service unavailable"}}, {}),
    ],
)
def test_rate_limits_and_other_errors_are_not_usage_limits(
    status: int, body: object, headers: dict[str, str]
) -> None:
    assert kind_of(status, body, **headers) is not Kind.EXHAUSTED


@pytest.mark.parametrize(
    ("headers", "body", "reset"),
    [
        ({"anthropic-ratelimit-tokens-reset": "2027-01-15T08:10:00Z"}, b"", NOW + 600),
        ({"retry-after": "120"}, b"", NOW + 120),
        ({"retry-after-ms": "1500"}, b"", NOW + 1.5),
        ({"retry-after": "Fri, 15 Jan 2027 09:00:00 GMT"}, b"", NOW + 3600),
        ({"x-ratelimit-reset-requests": "6m0s"}, b"", NOW + 360),
        ({"x-ratelimit-reset-tokens": "250ms"}, b"", NOW + 0.25),
        ({"x-ratelimit-reset": str(int(NOW + 90) * 1000)}, b"", NOW + 90),  # epoch millis
        ({"x-ratelimit-reset": str(int(NOW + 90))}, b"", NOW + 90),  # epoch seconds
        ({}, b'{"error": {"type": "usage_limit_reached", "resets_at": 1800000900}}', NOW + 900),
        ({}, b'{"error": {"resets_at": "2027-01-15T09:00:00Z"}}', NOW + 3600),
        ({}, b'{"error": {"resets_in_seconds": 1234}}', NOW + 1234),
        ({}, b'{"error": {"message": "Limit reached, try again in 6m0s."}}', NOW + 360),
        ({}, b'{"error": {"message": "Please try again in 1h 2m 3s"}}', NOW + 3723),
        ({}, b'{"error": {"message": "try again later"}}', None),
        ({"retry-after": "0"}, b"", None),
        ({"retry-after": "Thu, 01 Jan 2026 00:00:00 GMT"}, b"", None),
    ],
)
def test_reset_times(headers: dict[str, str], body: bytes, reset: float | None) -> None:
    found = usage_reset_at(headers, body, NOW)
    assert found == (pytest.approx(reset) if reset is not None else None)


def test_a_rejected_subscription_resets_when_its_rejected_window_does() -> None:
    headers = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-5h-status": "rejected",
        "anthropic-ratelimit-unified-5h-reset": str(int(NOW + 7200)),
        "anthropic-ratelimit-unified-7d-status": "allowed",
        "anthropic-ratelimit-unified-7d-reset": str(int(NOW + 500_000)),
    }
    assert usage_reset_at(headers, b"", NOW) == NOW + 7200
    overall = {**headers, "anthropic-ratelimit-unified-reset": str(int(NOW + 3000))}
    assert usage_reset_at(overall, b"", NOW) == NOW + 3000


def test_a_usage_limit_outcome_carries_its_reset() -> None:
    body = b'{"error": {"type": "usage_limit_reached", "resets_in_seconds": 600}}'
    outcome = classify_response(429, {}, body, fallback_on=FALLBACK_ON, first=False, now=NOW)
    assert outcome.kind is Kind.EXHAUSTED and outcome.reset_at == NOW + 600


@pytest.mark.parametrize(
    ("headers", "until"),
    [
        (
            {
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "2027-01-15T08:00:30Z",
            },
            NOW + 30,
        ),
        (
            {
                "anthropic-ratelimit-tokens-remaining": "0",
                "anthropic-ratelimit-tokens-reset": "2027-01-15T08:01:00Z",
                "anthropic-ratelimit-requests-remaining": "12",
                "anthropic-ratelimit-requests-reset": "2027-01-15T08:00:05Z",
            },
            NOW + 60,
        ),
        (
            {
                "anthropic-ratelimit-output-tokens-remaining": "0",
                "anthropic-ratelimit-output-tokens-reset": "2027-01-15T08:00:10Z",
            },
            NOW + 10,
        ),
        (
            {
                "anthropic-ratelimit-unified-status": "rejected",
                "anthropic-ratelimit-unified-reset": str(int(NOW + 5000)),
            },
            NOW + 5000,
        ),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s"}, NOW + 20),
        ({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1m30s"}, NOW + 90),
        ({"anthropic-ratelimit-requests-remaining": "3"}, None),
        ({"anthropic-ratelimit-requests-remaining": "0"}, None),  # no reset stated
        ({"x-ratelimit-remaining-requests": "10", "x-ratelimit-reset-requests": "20s"}, None),
        ({}, None),
    ],
)
def test_a_success_with_nothing_left(headers: dict[str, str], until: float | None) -> None:
    assert depleted_until(headers, NOW) == until


@given(
    status=st.sampled_from([400, 402, 403, 429]),
    body=st.binary(max_size=300),
    value=st.text(max_size=40),
)
def test_any_answer_classifies_without_error(status: int, body: bytes, value: str) -> None:
    headers = {
        "retry-after": value,
        "x-ratelimit-reset-requests": value,
        "anthropic-ratelimit-tokens-reset": value,
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": value,
    }
    outcome = classify_response(
        status, headers, body, fallback_on=FALLBACK_ON, first=False, now=NOW
    )
    assert outcome.kind in set(Kind)
    reset = usage_reset_at(headers, body, NOW)
    assert reset is None or reset > NOW
    until = depleted_until(headers, NOW)
    assert until is None or until > NOW


@pytest.mark.parametrize("value", ["inf", "Infinity", "nan", "1e400", "9" * 400 + "s"])
def test_an_unbounded_wait_is_no_wait(value: str) -> None:
    headers = {
        "retry-after": value,
        "x-ratelimit-reset-requests": value,
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": value,
    }
    body = b'{"error": {"type": "usage_limit_reached", "resets_in_seconds": 1e400}}'
    assert usage_reset_at(headers, body, NOW) is None
    assert depleted_until(headers, NOW) is None
    outcome = classify_response(429, headers, body, fallback_on=FALLBACK_ON, first=True, now=NOW)
    assert outcome.retry_after is None and outcome.reset_at is None
