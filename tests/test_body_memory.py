"""Large request bodies share one memory budget (`server.body_memory`) across requests.

Each request's own cap does nothing against many of them at once: a body of 1 MiB or more is
parsed only once its share fits beside the large requests in flight. One that does not fit
waits its turn, and gets a 503 it may retry (`x-should-retry: true`) if its turn does not come
in time; one that could never fit is a 413 no retry mends. Whatever the answer, what it held
goes back. Driven as raw ASGI on the fake clock: the wait passes when the clock is moved.
"""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from typing import Any

import httpx
import pytest

from routatic_asgi import build_app
from routatic_asgi.memory_budget import MemoryBudget
from tests.conftest import gateway_config, http_scope
from tests.fake_clock import FakeClock
from tests.resilience_kit import Upstreams, healthy

MIB = 1024 * 1024


def large_body(mib: float, model: str = "claude-x") -> bytes:
    """A request of about `mib` MiB in one string (few JSON values: it costs its bytes)."""
    text = "a" * int(mib * MIB)
    message = {"role": "user", "content": text}
    return json.dumps({"model": model, "max_tokens": 1, "messages": [message]}).encode()


class Client:
    """One request to the app as uvicorn would make it; `read` is set once the app has
    taken the whole body."""

    def __init__(self, app: Any, body: bytes, path: str = "/v1/messages") -> None:
        self.chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        self.read = asyncio.Event()
        self.sent: list[dict[str, Any]] = []
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        self.task = asyncio.ensure_future(app(http_scope(headers, path), self.receive, self.send))

    async def receive(self) -> dict[str, Any]:
        if not self.chunks:
            await asyncio.Event().wait()  # the client stays: no disconnect
        chunk = self.chunks.pop(0)
        if not self.chunks:
            self.read.set()
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def answer(self) -> tuple[int, dict[bytes, bytes], Any]:
        await self.task
        start, body = self.sent[0], b"".join(m.get("body", b"") for m in self.sent[1:])
        return start["status"], dict(start["headers"]), json.loads(body)


class HeldUpstream:
    """Upstreams whose first call waits until `release` is set."""

    def __init__(self) -> None:
        self.upstreams = Upstreams()
        self.release = asyncio.Event()
        self.upstreams.script("up.test", self.held)

    async def held(self, request: httpx.Request) -> httpx.Response:
        await self.release.wait()
        return healthy(request)


def app_for(upstream: HeldUpstream, clock: FakeClock, body_memory: str) -> Any:
    config = gateway_config(
        {"up": {"protocol": "anthropic", "base_url": "http://up.test", "auth": "none"}},
        [{"match": "*", "chain": ["up/{model}"]}],
        server={"body_memory": body_memory},
    )
    return build_app(config, clock=clock, transport=httpx.MockTransport(upstream.upstreams))


async def settle() -> None:
    """Let every task run until it waits on something outside the loop's next turns."""
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_large_body_waits_its_turn_and_is_served_when_memory_is_given_back() -> None:
    async def main() -> None:
        upstream, clock = HeldUpstream(), FakeClock()
        app = app_for(upstream, clock, "6MiB")  # one 2 MiB body (4 MiB held) at a time
        first = Client(app, large_body(2))
        await first.read.wait()
        await settle()
        second = Client(app, large_body(2, "claude-second"))
        await second.read.wait()
        await settle()
        assert upstream.upstreams.count("up.test") == 1  # the second is not parsed yet
        upstream.release.set()
        assert (await first.answer())[0] == 200
        status, _, answer = await second.answer()
        assert status == 200 and answer["type"] == "message"
        assert upstream.upstreams.count("up.test") == 2
        await app.aclose()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("path", "envelope"),
    [("/v1/messages", "anthropic"), ("/v1/chat/completions", "openai")],
)
def test_a_large_body_whose_turn_does_not_come_gets_a_503_to_retry(
    path: str, envelope: str
) -> None:
    async def main() -> tuple[int, dict[bytes, bytes], Any]:
        upstream, clock = HeldUpstream(), FakeClock()
        app = app_for(upstream, clock, "6MiB")
        first = Client(app, large_body(2))
        await first.read.wait()
        await settle()
        second = Client(app, large_body(2, "gpt-x"), path)
        await second.read.wait()
        await settle()
        clock.advance(5)  # the wait is over: the first still holds its share
        refused = await second.answer()
        upstream.release.set()
        assert (await first.answer())[0] == 200
        third = Client(app, large_body(2))  # what both held has been given back
        assert (await third.answer())[0] == 200
        await app.aclose()
        return refused

    status, headers, body = asyncio.run(main())
    assert status == 503
    assert headers[b"x-should-retry"] == b"true" and headers[b"retry-after"] == b"1"
    if envelope == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
    else:
        assert "busy with other large requests" in body["error"]["message"]


def test_a_body_that_could_never_fit_is_a_413_and_leaves_nothing_held() -> None:
    async def main() -> tuple[tuple[int, dict[bytes, bytes], Any], int, int]:
        upstream, clock = HeldUpstream(), FakeClock()
        upstream.release.set()
        app = app_for(upstream, clock, "3MiB")  # a 2 MiB body holds about 4 MiB
        await Client(app, large_body(0.5)).answer()  # warm up (under 1 MiB: not counted)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            refused = await Client(app, large_body(2)).answer()
            gc.collect()
            after, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert upstream.upstreams.count("up.test") == 1  # the warm-up only
        await app.aclose()
        return refused, after - before, peak - before

    (status, headers, body), kept, peak = asyncio.run(main())
    assert status == 413 and headers[b"x-should-retry"] == b"false"
    assert body["error"]["type"] == "request_too_large"
    assert "more than this server gives all large bodies together (3 MiB)" in (
        body["error"]["message"]
    )
    assert kept < 256 * 1024, f"{kept >> 10} KiB still held after the 413"
    assert peak < 16 * MIB, f"{peak >> 20} MiB at peak: the body was parsed"


def test_the_budget_admits_waiters_in_order_and_forgets_those_that_gave_up() -> None:
    async def main() -> None:
        clock = FakeClock()
        budget = MemoryBudget(10, wait=5, clock=clock)
        first, second, third = budget.hold(), budget.hold(), budget.hold()
        assert await first.take(8)
        waiting = asyncio.ensure_future(second.take(6))
        await settle()
        clock.advance(1)
        behind = asyncio.ensure_future(third.take(2))
        await settle()
        assert not waiting.done() and not behind.done()  # first come, first served
        clock.advance(4)  # the first waiter's time is up; the one behind it fits now
        assert await waiting is False and await behind is True
        first.release()
        third.release()
        assert budget.held == 0
        assert await first.take(8)
        late = asyncio.ensure_future(second.take(6))
        await settle()
        late.cancel()  # the request went away while it waited: it holds nothing
        with pytest.raises(asyncio.CancelledError):
            await late
        first.release()
        assert budget.held == 0 and await second.take(10)

    asyncio.run(main())
