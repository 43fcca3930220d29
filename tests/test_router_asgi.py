"""Raw ASGI: the router and relay called with a scope, a scripted receive and a recording send.

Upstreams are `httpx.MockTransport` handlers, so hold-back, disconnects and memory can be
watched message by message.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from routatic_asgi import build_app
from tests.conftest import gateway_config, http_scope
from tests.fake_clock import FakeClock
from tests.fake_upstream import anthropic_stream
from tests.resilience_kit import Body, sse

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
BODY = json.dumps({"model": MODEL, "max_tokens": 8, "stream": True, "messages": []}).encode()



def app_with(
    handler: Callable[[httpx.Request], httpx.Response],
    clock: FakeClock | None = None,
    **resilience: str,
) -> Any:
    config = gateway_config(
        {
            "a": {"protocol": "anthropic", "base_url": "http://a.test", "auth": "passthrough"},
            "b": {"protocol": "anthropic", "base_url": "http://b.test", "keys": ["sk-b-0001"]},
        },
        [{"match": "*", "chain": ["a/{model}", "b/{model}"]}],
        resilience=resilience,
    )
    transport = httpx.MockTransport(handler)
    if clock is None:
        return build_app(config, transport=transport)
    return build_app(config, transport=transport, clock=clock)


def scope() -> dict[str, Any]:
    return http_scope([(b"content-type", b"application/json")])


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


def receive_body_then(
    disconnect: anyio.Event | None = None, body: bytes = BODY
) -> Callable[[], Any]:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if disconnect is None:
            await anyio.sleep_forever()
        else:
            await disconnect.wait()
        return {"type": "http.disconnect"}

    return receive


async def test_an_error_after_message_start_is_never_seen_by_the_client() -> None:
    failing = Body(
        anthropic_stream(MODEL)[0].encode(),
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"x"}}\n\n',
    )
    healthy = Body("".join(anthropic_stream(MODEL)).encode())

    def handler(request: httpx.Request) -> httpx.Response:
        return sse(failing if request.url.host == "a.test" else healthy)

    send = Recorder()
    await app_with(handler)(scope(), receive_body_then(), send)
    start = send.messages[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert (b"x-routatic-target", f"b/{MODEL}".encode()) in start["headers"]
    assert send.body == "".join(anthropic_stream(MODEL)).encode()
    assert failing.closed and healthy.closed


async def test_nothing_is_sent_before_the_first_content_event() -> None:
    events = anthropic_stream(MODEL)
    gate = anyio.Event()
    upstream = Body(events[0].encode(), events[1].encode(), hang=True)
    send = Recorder()
    app = app_with(lambda request: sse(upstream))
    async with anyio.create_task_group() as group:
        group.start_soon(app, scope(), receive_body_then(gate), send)
        await anyio.wait_all_tasks_blocked()
        assert send.messages == []  # message_start and ping are held back
        gate.set()
    assert upstream.closed


async def test_a_disconnect_after_commit_closes_the_upstream_stream() -> None:
    gate = anyio.Event()
    upstream = Body("".join(anthropic_stream(MODEL)[:4]).encode(), hang=True)
    send = Recorder()
    app = app_with(lambda request: sse(upstream))
    async with anyio.create_task_group() as group:
        group.start_soon(app, scope(), receive_body_then(gate), send)
        await anyio.wait_all_tasks_blocked()
        assert send.messages[0]["status"] == 200
        assert b"content_block_start" in send.body
        gate.set()
    assert upstream.closed
    assert not any(m.get("more_body") is False for m in send.messages[1:])


async def test_memory_per_stream_does_not_grow_with_its_length() -> None:
    events = anthropic_stream(MODEL, deltas=1)
    delta = events[3].encode()

    async def peak(deltas: int) -> int:
        chunks = [
            b"".join(e.encode() for e in events[:3]),
            *([delta] * deltas),
            b"".join(e.encode() for e in events[4:]),
        ]
        total = 0

        async def count(message: dict[str, Any]) -> None:
            nonlocal total
            total += len(message.get("body", b""))

        body = Body(*chunks)
        app = app_with(lambda request: sse(body))
        tracemalloc.start()
        await app(scope(), receive_body_then(), count)
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert total > deltas * len(delta)
        return high

    short, long = await peak(200), await peak(20_000)
    # 100x the events (~2.6 MB more bytes relayed) must not cost 100x the memory.
    assert long < short + 256 * 1024


async def test_a_stream_without_content_by_the_first_byte_timeout_falls_back() -> None:
    clock = FakeClock()
    stalled = Body(anthropic_stream(MODEL)[0].encode(), hang=True)
    healthy = Body("".join(anthropic_stream(MODEL)).encode())

    def handler(request: httpx.Request) -> httpx.Response:
        return sse(stalled if request.url.host == "a.test" else healthy)

    send = Recorder()
    app = app_with(handler, clock, first_byte_timeout="60s")
    # A guard, not a wait: the fake clock ends this at once unless its deadlines are ignored.
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(app, scope(), receive_body_then(), send)
            await stalled.hanging.wait()
            clock.advance(59)
            await anyio.wait_all_tasks_blocked()
            assert not send.messages  # not yet: a minute has not passed
            clock.advance(1)
    headers = dict(send.messages[0]["headers"])
    assert headers[b"x-routatic-fallback"] == f"a/{MODEL}=first_byte_timeout".encode()
    assert send.body == "".join(anthropic_stream(MODEL)).encode()
    assert stalled.closed


async def test_the_deadline_bounds_every_attempt_together() -> None:
    clock = FakeClock()
    stalled = [Body(hang=True), Body(hang=True)]

    def handler(request: httpx.Request) -> httpx.Response:
        return sse(stalled[0] if request.url.host == "a.test" else stalled[1])

    send = Recorder()
    app = app_with(handler, clock, deadline="10m", first_byte_timeout="1h")
    # A guard, not a wait: the fake clock ends this at once unless its deadlines are ignored.
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(app, scope(), receive_body_then(), send)
            await stalled[0].hanging.wait()
            clock.advance(600)
    assert send.messages[0]["status"] == 504
    assert b"the deadline passed" in send.body
    assert stalled[0].closed and not stalled[1].hanging.is_set()  # b was never reached


async def test_the_deadline_bounds_an_unstreamed_answer_that_never_comes() -> None:
    clock = FakeClock()
    asked = anyio.Event()

    async def never(request: httpx.Request) -> httpx.Response:
        asked.set()
        await anyio.sleep_forever()
        raise AssertionError

    send = Recorder()
    app = app_with(never, clock, deadline="10m")  # type: ignore[arg-type]
    body = json.dumps({"model": MODEL, "max_tokens": 8, "messages": []}).encode()
    # A guard, not a wait: the fake clock ends this at once unless its deadlines are ignored.
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(app, scope(), receive_body_then(body=body), send)
            await asked.wait()
            clock.advance(599)
            await anyio.wait_all_tasks_blocked()
            assert not send.messages
            clock.advance(1)
    assert send.messages[0]["status"] == 504
    assert b"the deadline passed" in send.body
