"""The relay alone: `UpstreamRelay` mounted with nothing around it but the two scope keys it
serves (`routatic.request`, `routatic.attempt`), a scripted upstream (`httpx.MockTransport`)
and the fake clock. What it sends, and the outcome it settles the attempt with.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anyio
import httpx
import pytest

from routatic_asgi import UnanswerableEndpoint, UpstreamRelay, Upstreams
from routatic_asgi.attempt import (
    ATTEMPT,
    REQUEST,
    Attempt,
    Credential,
    Endpoint,
    InboundRequest,
    Target,
)
from routatic_asgi.classify import Kind, Reason
from routatic_asgi.config import ModelCaps
from tests.conftest import gateway_config, http_scope
from tests.fake_clock import FakeClock
from tests.fake_upstream import anthropic_stream
from tests.resilience_kit import Body, sse

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
KEY = Credential("up", 0, "sk-up-configured-0001")
TARGET = Target("up", "anthropic", MODEL, "http://up.test", credential=KEY)


class Relayed:
    """One call of a relay mounted alone: the messages it sent, the requests upstream saw."""

    def __init__(
        self,
        handler: Callable[[httpx.Request], httpx.Response],
        *,
        clock: FakeClock | None = None,
        stream: bool = True,
        endpoint: Endpoint = "messages",
        target: Target = TARGET,
        headers: list[tuple[bytes, bytes]] | None = None,
        **resilience: str,
    ) -> None:
        self.requests: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        config = gateway_config(
            {"up": {"protocol": "anthropic", "base_url": "http://up.test", "keys": ["k"]}},
            [{"match": "*", "chain": ["up/{model}"]}],
            resilience=resilience,
        )
        upstreams = Upstreams(config, transport=httpx.MockTransport(record))
        self.relay = UpstreamRelay(
            upstreams=upstreams, resilience=config.resilience, clock=clock or FakeClock()
        )
        payload = {"model": MODEL, "max_tokens": 8, "stream": stream, "messages": []}
        body = json.dumps(payload).encode()
        self.request = InboundRequest("anthropic", endpoint, body, payload, MODEL, stream)
        self.attempt = Attempt(target, 1, True)
        self.scope = http_scope([(b"content-type", b"application/json"), *(headers or [])])
        self.scope.update({REQUEST: self.request, ATTEMPT: self.attempt})
        self.messages: list[dict[str, Any]] = []
        self.settled_at: int | None = None  # how many messages had gone when it settled
        self.attempt.listeners.append(lambda _: setattr(self, "settled_at", len(self.messages)))

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": self.request.body}

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    async def __call__(self) -> None:
        await self.relay(self.scope, self.receive, self.send)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


async def test_mounted_alone_it_relays_a_stream_and_commits_at_its_first_content() -> None:
    events = [event.encode() for event in anthropic_stream(MODEL)]
    relayed = Relayed(lambda request: sse(Body(*events)))
    await relayed()
    assert relayed.attempt.outcome is not None
    assert relayed.attempt.outcome.kind is Kind.SUCCESS
    assert relayed.messages[0]["status"] == 200
    assert relayed.body == b"".join(events)
    # Settled before the content event went on: message_start, ping held, then the commit.
    first_content = next(
        n for n, m in enumerate(relayed.messages) if b"content_block_start" in m.get("body", b"")
    )
    assert relayed.settled_at is not None and relayed.settled_at <= first_content


async def test_the_target_brings_its_headers_and_key_and_the_clients_key_stays() -> None:
    target = replace(TARGET, headers=((b"x-provider-extra", b"1"),))
    client = [(b"x-api-key", b"sk-ant-the-clients-own"), (b"anthropic-beta", b"b1")]
    relayed = Relayed(lambda request: sse(Body()), target=target, headers=client)
    await relayed()
    (sent,) = relayed.requests
    assert sent.headers["x-provider-extra"] == "1"
    assert sent.headers.get_list("x-api-key") == [KEY.secret]  # the configured key only
    assert sent.headers["anthropic-beta"] == "b1"
    assert str(sent.url) == "http://up.test/v1/messages"


async def test_no_first_byte_by_the_timeout_fails_the_attempt_on_the_fake_clock() -> None:
    clock = FakeClock()
    body = Body(anthropic_stream(MODEL)[0].encode(), hang=True)  # message_start, then nothing
    relayed = Relayed(lambda request: sse(body), clock=clock, first_byte_timeout="60s")
    with anyio.fail_after(10):  # a guard, not a wait: the fake clock ends it at once
        async with anyio.create_task_group() as group:
            group.start_soon(relayed)
            await body.hanging.wait()
            clock.advance(59)
            await anyio.wait_all_tasks_blocked()
            assert relayed.attempt.outcome is None  # a minute has not passed
            clock.advance(1)
    outcome = relayed.attempt.outcome
    assert outcome is not None
    assert (outcome.kind, outcome.reason) == (Kind.TRANSIENT, Reason.FIRST_BYTE_TIMEOUT)


async def test_alone_it_bounds_an_unstreamed_answer_that_never_comes_by_the_deadline() -> None:
    # Under the router its own timer is left unarmed (the router's deadline comes first);
    # mounted alone, nothing else would end the wait.
    clock = FakeClock()
    asked = anyio.Event()

    async def never(request: httpx.Request) -> httpx.Response:
        asked.set()
        await anyio.sleep_forever()
        raise AssertionError

    relayed = Relayed(never, clock=clock, stream=False, deadline="10m")  # type: ignore[arg-type]
    with anyio.fail_after(10):  # a guard, not a wait: the fake clock ends it at once
        async with anyio.create_task_group() as group:
            group.start_soon(relayed)
            await asked.wait()
            clock.advance(599)
            await anyio.wait_all_tasks_blocked()
            assert relayed.attempt.outcome is None
            clock.advance(1)
    outcome = relayed.attempt.outcome
    assert outcome is not None
    assert (outcome.kind, outcome.reason) == (Kind.TRANSIENT, Reason.FIRST_BYTE_TIMEOUT)


async def test_an_error_event_before_content_settles_the_attempt_as_that_error() -> None:
    start = anthropic_stream(MODEL)[0].encode()
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n'
    relayed = Relayed(lambda request: sse(Body(start, error)))
    await relayed()
    outcome = relayed.attempt.outcome
    assert outcome is not None and outcome.kind is Kind.TRANSIENT
    assert b"overloaded" not in relayed.body  # held back for the router: no content went on


async def test_a_stream_that_ends_before_content_is_a_failure() -> None:
    relayed = Relayed(lambda request: sse(Body(anthropic_stream(MODEL)[0].encode())))
    await relayed()
    outcome = relayed.attempt.outcome
    assert outcome is not None
    assert (outcome.kind, outcome.reason) == (Kind.TRANSIENT, Reason.STREAM_ENDED_EARLY)


async def test_an_error_answer_is_classified_and_relayed_as_it_came() -> None:
    error = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "7"}, stream=Body(error))

    relayed = Relayed(handler, stream=False)
    await relayed()
    outcome = relayed.attempt.outcome
    assert outcome is not None
    assert (outcome.kind, outcome.reason, outcome.retry_after) == (
        Kind.TRANSIENT,
        Reason.RATE_LIMITED,
        7.0,
    )
    assert relayed.messages[0]["status"] == 429
    assert relayed.body == error


async def test_a_refused_connection_settles_as_a_connect_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    relayed = Relayed(handler)
    await relayed()
    outcome = relayed.attempt.outcome
    assert outcome is not None
    assert (outcome.kind, outcome.reason) == (Kind.TRANSIENT, Reason.CONNECT_ERROR)
    assert not relayed.messages


async def test_fitness_is_not_the_relays_to_decide() -> None:
    """A target too small for the request is still called if the relay is asked to: the
    router skips unfit targets before the attempt (tests/test_fitness.py)."""
    target = replace(TARGET, caps=ModelCaps(context=1))
    relayed = Relayed(lambda request: sse(Body()), target=target)
    await relayed()
    assert len(relayed.requests) == 1


async def test_a_target_that_cannot_answer_the_endpoint_fails_clearly_before_any_call() -> None:
    """Whether a target can answer the endpoint is the router's to decide too (it skips one
    that cannot, as `no_translation`): asked anyway, the relay names the problem and calls
    nothing."""
    target = replace(TARGET, protocol="openai", base_url="http://up.test/v1")
    relayed = Relayed(lambda request: sse(Body()), target=target, endpoint="count_tokens")
    with pytest.raises(UnanswerableEndpoint, match="up/claude-sonnet-4-6 speaks openai"):
        await relayed()
    assert not relayed.requests
    assert not relayed.messages
