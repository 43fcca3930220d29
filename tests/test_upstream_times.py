"""Upstream times are capped: an absurd Retry-After or usage reset never parks a target for
years, never reaches a header or the status CLI as a number nobody can read, and never makes
Redis refuse a write (which would flag the shared store degraded)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from routatic_asgi.classify import (
    MAX_RESET,
    MAX_WAIT,
    Kind,
    classify_response,
    depleted_until,
    parse_retry_after,
    usage_reset_at,
)
from routatic_asgi.cli.status import status_text
from routatic_asgi.state import StateStore
from tests.conftest import gateway_config
from tests.fake_clock import NOW, FakeClock
from tests.resilience_kit import Upstreams, app_for, ask, client_for, respond

pytestmark = pytest.mark.anyio

ABSURD = ["1e300", "99999999999999999999999", "1" + "0" * 300]


@pytest.mark.parametrize("value", ABSURD)
def test_a_retry_after_beyond_the_cap_is_the_cap(value: str) -> None:
    assert parse_retry_after({"retry-after": value}, NOW) == MAX_WAIT
    assert parse_retry_after({"retry-after-ms": value}, NOW) == MAX_WAIT
    assert parse_retry_after({"retry-after": value}, NOW, limit=60.0) == 60.0


def test_negative_nan_and_far_dates_are_now_nothing_and_the_cap() -> None:
    assert parse_retry_after({"retry-after": "-5"}, NOW) == 0.0
    assert parse_retry_after({"retry-after-ms": "-5000"}, NOW) == 0.0
    assert parse_retry_after({"retry-after": "nan"}, NOW) is None
    assert parse_retry_after({"retry-after": "inf"}, NOW) is None
    assert parse_retry_after({"retry-after": "1" + "0" * 400}, NOW) is None  # inf as a float
    assert parse_retry_after({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, NOW) == MAX_WAIT


def test_the_cap_is_resilience_max_wait() -> None:
    headers = {"retry-after": "1e300"}
    outcome = classify_response(
        429, headers, b"", fallback_on={429}, first=True, now=NOW, max_wait=90.0
    )
    assert outcome.kind is Kind.TRANSIENT and outcome.retry_after == 90.0
    config = gateway_config(
        {"a": {"protocol": "anthropic", "base_url": "http://a.test", "auth": "none"}},
        [{"match": "*", "chain": ["a/{model}"]}],
        resilience={"max_wait": "2m"},
    )
    assert config.resilience.max_wait == 120.0
    assert (
        gateway_config(
            config.model_dump(mode="json")["providers"], [{"match": "*", "chain": ["a/{model}"]}]
        ).resilience.max_wait
        == 3600.0
    )


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (
            {
                "anthropic-ratelimit-unified-status": "rejected",
                "anthropic-ratelimit-unified-reset": "1e300",
            },
            b"",
        ),
        ({"retry-after": "1e300"}, b'{"error": {"message": "usage limit reached"}}'),
        ({}, b'{"error": {"message": "usage limit reached", "resets_in_seconds": 1e300}}'),
        ({}, b'{"error": {"message": "quota exceeded", "resets_at": "9999-12-31T23:59:59Z"}}'),
        ({"x-ratelimit-reset-requests": "99999999h"}, b'{"error": {"message": "quota"}}'),
    ],
)
def test_a_usage_reset_may_be_days_away_but_not_years(headers: dict[str, str], body: bytes) -> None:
    outcome = classify_response(429, headers, body, fallback_on={429}, first=True, now=NOW)
    assert outcome.kind is Kind.EXHAUSTED
    assert outcome.reset_at is not None and NOW < outcome.reset_at <= NOW + MAX_RESET
    reset = usage_reset_at(headers, body, NOW)
    assert reset is not None and reset <= NOW + MAX_RESET


def test_a_depleted_success_cools_no_longer_than_the_cap() -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "1e300",
    }
    until = depleted_until(headers, NOW)
    assert until is not None and until <= NOW + MAX_RESET


def test_an_unreadable_date_is_no_date() -> None:
    assert parse_retry_after({"retry-after": "Sat, 01 Jan 99999 00:00:00 GMT"}, NOW) is None
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "Sat, 01 Jan 99999",
    }
    assert depleted_until(headers, NOW) is None


ANSWERS: list[tuple[int, dict[str, str], dict[str, Any]]] = [
    (429, {"retry-after": "1e300"}, {"error": {"type": "rate_limit_error", "message": "slow"}}),
    (529, {"retry-after-ms": "1e300"}, {"error": {"type": "overloaded_error", "message": "busy"}}),
    (
        429,
        {
            "anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-reset": "99999999999999999999",
        },
        {"error": {"type": "rate_limit_error", "message": "usage limit", "resets_at": 1e300}},
    ),
]


@pytest.mark.parametrize(("status", "headers", "payload"), ANSWERS)
async def test_one_absurd_header_reaches_neither_a_header_nor_the_store(
    store: tuple[StateStore, FakeClock], status: int, headers: dict[str, str], payload: dict[str, Any]
) -> None:
    state, clock = store
    config = gateway_config(
        {"a": {"protocol": "anthropic", "base_url": "http://a.test", "keys": ["sk-a-000001"]}},
        [{"match": "*", "chain": ["a/{model}"]}],
    )
    upstreams = Upstreams()
    upstreams.script("a.test", respond(status, payload, **headers))
    app = app_for(config, upstreams, clock, store=state)
    async with client_for(app) as client:
        first = await ask(client)
        again = await ask(client)
        report = (await client.get("/status")).json()
    assert upstreams.count("a.test") == 1  # the second request was spared a call
    assert again.headers["retry-after"].isdigit()
    assert int(again.headers["retry-after"]) <= MAX_RESET
    relayed = {name: first.headers.get(name) for name in ("retry-after", "retry-after-ms")}
    if {"retry-after", "retry-after-ms"} & set(headers):  # the lone target's own answer
        assert any(relayed.values())
    for name, wait in relayed.items():
        limit = MAX_WAIT * (1000 if name.endswith("ms") else 1)
        assert wait is None or (wait.isdigit() and int(wait) <= limit), (name, wait)
    assert not state.degraded
    assert report["state_degraded"] is False
    rows = [*report["breakers"], *report["credentials"]]
    untils = [row["until"] for row in rows if row.get("until") is not None]
    assert untils, report
    for until in untils:
        assert math.isfinite(until) and until <= NOW + MAX_RESET
    text = status_text(report)  # what `routatic-asgi status` prints
    assert "left)" in text
    assert "e+" not in json.dumps(report)
