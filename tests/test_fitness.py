"""Fitness is decided before the attempt: a target whose configured capabilities cannot serve
the request, or whose protocol cannot answer its endpoint, is skipped by the router, and no
inner layer (credential, breaker, relay) ever sees it. Raw ASGI, with a scripted inner app in
place of those layers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from routatic_asgi.answer import final_answer
from routatic_asgi.attempt import ATTEMPT, REQUEST, Attempt, InboundRequest, Target
from routatic_asgi.classify import SUCCESS, Kind, Outcome, Reason
from routatic_asgi.commit_point import CommitPoint
from routatic_asgi.router import FallbackRouter
from routatic_asgi.routing import Routing
from routatic_asgi.telemetry import RequestRecording, Telemetry
from tests.conftest import gateway_config, http_scope
from tests.fake_clock import FakeClock

pytestmark = pytest.mark.anyio

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.test/x.png"}}


class Inner:
    """In place of the inner layers: answers 200 and records which targets it was asked for."""

    def __init__(self) -> None:
        self.called: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        attempt: Attempt = scope[ATTEMPT]
        self.called.append(attempt.target.name)
        attempt.settle(SUCCESS)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def test_an_unfit_target_is_skipped_before_any_inner_layer_sees_it() -> None:
    config = gateway_config(
        {
            "small": {
                "protocol": "openai",
                "base_url": "http://small.test/v1",
                "keys": ["k"],
                "models": {"text-only": {"vision": False}},
            },
            "big": {"protocol": "openai", "base_url": "http://big.test/v1", "keys": ["k"]},
        },
        [{"match": "*", "chain": ["small/text-only", "big/seeing"]}],
    )
    inner = Inner()
    router = FallbackRouter(inner, routing=Routing(config), clock=FakeClock())
    app = RequestRecording(router, telemetry=Telemetry())
    payload = {"model": "m", "messages": [{"role": "user", "content": [IMAGE]}]}
    body = json.dumps(payload).encode()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope([(b"content-type", b"application/json")], "/v1/chat/completions")
    await app(scope, receive, send)
    assert inner.called == ["big/seeing"]
    headers = dict(sent[0]["headers"])
    assert headers[b"x-routatic-fallback"] == b"small/text-only=unfit_vision"


async def test_a_target_that_cannot_answer_the_endpoint_is_skipped_before_the_attempt() -> None:
    """Only Anthropic answers count_tokens (the router keeps only such targets for it, and
    counts locally when none is left): a target of another protocol handed to an attempt is
    skipped as `no_translation`, unseen by the inner layers, and the client is told why."""
    payload = {"model": "m", "messages": []}
    body = json.dumps(payload).encode()
    request = InboundRequest("anthropic", "count_tokens", body, payload, "m", False)
    attempt = Attempt(Target("chat", "openai", "m", "http://chat.test/v1"), 1, True)
    request.attempts.append(attempt)
    inner = Inner()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    point = CommitPoint(inner, send, request, FakeClock().deadline(60), rescue=False)
    scope = http_scope([], "/v1/messages/count_tokens")
    scope[REQUEST] = request
    await point.run(attempt, scope)
    assert inner.called == [] and sent == []
    assert attempt.outcome == Outcome(Kind.SKIPPED, Reason.NO_TRANSLATION)
    answer = final_answer("anthropic", request.attempts, 0.0, deadline_passed=False)
    assert b"chat/m cannot answer this endpoint" in answer.body
