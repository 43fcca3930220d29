"""The attempt's joins: `call_then_act` acts once when the attempt settles, and a retry within
an attempt is recorded and announced to its listeners."""

from __future__ import annotations

from typing import Any

import pytest

from routatic_asgi.attempt import (
    Attempt,
    Credential,
    InboundRequest,
    Target,
    call_then_act,
    target_key,
)
from routatic_asgi.classify import SUCCESS, Kind, Outcome, Reason
from routatic_asgi.telemetry.request_log import request_line
from tests.conftest import http_scope

TARGET = Target("zen", "openai", "m", "http://zen.test/v1")
REJECTED = Outcome(Kind.AUTH, Reason.AUTH_REJECTED, 401)
START = {"type": "http.response.start", "status": 200, "headers": []}


def chunk(text: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.response.body", "body": text, "more_body": more}


async def _never() -> dict[str, Any]:
    raise AssertionError("nothing reads the body here")


async def run(app: Any, attempt: Attempt) -> list[str]:
    """Call `app` through `call_then_act`; the order in which messages and the act came."""
    happened: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        happened.append(message["type"])

    async def act() -> None:
        happened.append(f"act:{attempt.outcome.reason if attempt.outcome else None}")

    await call_then_act(app, http_scope([]), _never, send, attempt, act)
    return happened


@pytest.mark.anyio
async def test_it_acts_before_the_first_message_after_the_outcome() -> None:
    attempt = Attempt(TARGET, 1, True)

    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await send(START)  # held back upstream of here in the chain: before the outcome
        attempt.settle(SUCCESS)
        await send(chunk(b"a"))
        await send(chunk(b"b", more=False))

    assert await run(streaming, attempt) == [
        "http.response.start",
        "act:ok",
        "http.response.body",
        "http.response.body",
    ]


@pytest.mark.anyio
async def test_it_acts_once_when_the_app_returns_having_sent_nothing_after() -> None:
    attempt = Attempt(TARGET, 1, True)

    async def skipping(scope: Any, receive: Any, send: Any) -> None:
        attempt.settle(Outcome(Kind.SKIPPED, Reason.BREAKER_OPEN))

    assert await run(skipping, attempt) == ["act:breaker_open"]
    silent = Attempt(TARGET, 1, True)
    assert await run(lambda scope, receive, send: _nothing(), silent) == ["act:None"]


async def _nothing() -> None:
    return None


@pytest.mark.anyio
async def test_it_does_not_act_when_the_app_raises() -> None:
    attempt = Attempt(TARGET, 1, True)

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("a bug in the chain")

    with pytest.raises(RuntimeError):
        await run(broken, attempt)


def test_a_retry_keeps_the_earlier_outcome_and_is_announced() -> None:
    heard: list[tuple[str, str | None, int]] = []
    attempt = Attempt(TARGET, 1, True)
    attempt.listeners.append(
        lambda a: heard.append(
            (a.target.base_url, a.outcome.reason if a.outcome else None, len(a.retried))
        )
    )
    attempt.upstream_headers = {"x-request-id": "1"}
    attempt.settle(REJECTED)
    fresh = Target("zen", "openai", "m", "http://zen.test/v2")
    attempt.retry(fresh)
    assert attempt.outcome is None and attempt.upstream_headers == {}
    attempt.settle(SUCCESS)
    assert attempt.retried == [REJECTED] and attempt.target is fresh
    assert heard == [
        ("http://zen.test/v1", "auth_rejected", 0),  # the first call settled
        ("http://zen.test/v2", None, 1),  # the retry, announced
        ("http://zen.test/v2", "ok", 1),  # the retry settled
    ]


def test_only_a_settled_attempt_is_retried() -> None:
    with pytest.raises(RuntimeError):
        Attempt(TARGET, 1, True).retry(TARGET)


def test_the_log_line_shows_the_calls_a_retry_followed() -> None:
    attempt = Attempt(TARGET, 1, True)
    attempt.settle(REJECTED)
    attempt.retry(TARGET)
    attempt.settle(SUCCESS)
    request = InboundRequest("openai", "chat_completions", b"{}", {}, "m", False)
    request.attempts.append(attempt)
    line = request_line(
        at=0.0, actor=None, protocol="openai", endpoint="chat_completions",
        request=request, status=200, ttfb=None, duration=0.1,
    )  # fmt: skip
    [entry] = line["attempts"]
    assert (entry["outcome"], entry["retried"]) == ("success", ["auth_rejected"])


def test_a_target_key_is_the_same_made_from_parts_or_from_the_target() -> None:
    keyed = Target("zen", "openai", "m", "http://zen.test/v1", credential=Credential("zen", 2, "s"))
    assert keyed.key == target_key("zen", "m", keyed.credential) == "zen/m#2"
    assert TARGET.key == target_key("zen", "m", None) == "zen/m"
