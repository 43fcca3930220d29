"""Records keyed by what clients choose (model names, their own credentials) leave memory.

40,000 requests, each naming a model of its own and carrying a credential of its own, go
through the credential and breaker layers on one store, watched as in the app: half of them
fail (the breaker remembers the streak for an hour), a tenth use up their credential. Once
those records have expired on the (fake) clock, memory, `/status` and the `/metrics` scrape
are back where they were before the flood: a model name the configuration does not write
is labelled "unconfigured" in every metric.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from routatic_asgi import build_app
from routatic_asgi.attempt import ATTEMPT, Attempt, Target
from routatic_asgi.breaker import BreakerPolicy, CircuitBreaker
from routatic_asgi.classify import SUCCESS, Kind, Outcome
from routatic_asgi.short_circuit import AuthShortCircuit
from routatic_asgi.state import MemoryStore
from routatic_asgi.telemetry.metrics import Metrics
from routatic_asgi.telemetry.state_watch import StateWatch
from routatic_asgi.transitions import Board
from tests.conftest import gateway_config, http_scope
from tests.fake_clock import FakeClock
from tests.resilience_kit import Upstreams

NAMES = 40_000


def outcome_for(index: int, now: float) -> Outcome:
    if index % 10 == 0:  # the client's own subscription is used up until tomorrow
        return Outcome(Kind.EXHAUSTED, "usage_limit", 429, reset_at=now + 86400)
    if index % 2:
        return Outcome(Kind.TRANSIENT, "overloaded", 529)
    return SUCCESS


class Layers:
    """The credential and breaker layers over one in-memory store, watched as build_app
    assembles them, around an upstream that answers by the model's number."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.metrics = Metrics(CollectorRegistry())
        self.metrics.model.only(())  # as build_app does: no model here is configured
        self.store = MemoryStore(clock=self.clock)
        breakers, credentials = Board.for_breakers(), Board.for_credentials()
        StateWatch(self.metrics, (breakers, credentials), clock=self.clock)
        self.breaker = CircuitBreaker(
            self.upstream,
            store=self.store,
            policy=BreakerPolicy(failures=1),
            clock=self.clock,
            board=breakers,
        )
        self.chain = AuthShortCircuit(
            self.breaker, store=self.store, clock=self.clock, board=credentials
        )

    async def upstream(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        attempt: Attempt = scope[ATTEMPT]
        index = int(attempt.target.model.rpartition("-")[2])
        attempt.settle(outcome_for(index, self.clock()))

    async def ask(self, index: int) -> None:
        target = Target("anthropic", "anthropic", f"model-{index}", "http://a", passthrough=True)
        scope = http_scope([(b"x-api-key", b"sk-ant-client-%d" % index)])
        scope[ATTEMPT] = Attempt(target, 1, True)
        await self.chain(scope, _never, _drop)

    async def status(self) -> list[dict[str, Any]]:
        return await self.breaker.status()


async def _never() -> dict[str, Any]:
    raise AssertionError("nothing reads the body here")


async def _drop(message: dict[str, Any]) -> None:
    return None


def series(metrics: Metrics) -> int:
    """The samples a scrape returns (their values may grow; their number must not)."""
    return samples(metrics.exposition()[0].decode())


def blocks() -> int:
    """Objects the interpreter holds now (pymalloc blocks): cheap enough to count anywhere."""
    gc.collect()
    return sys.getallocatedblocks()


def test_40000_client_chosen_names_leave_memory_status_and_metrics() -> None:
    async def main() -> None:
        layers = Layers()
        for index in range(1, 1001):  # every code path
            await layers.ask(index)
        layers.clock.now += 2 * 86400
        rows_before = len(await layers.status())
        scrape_before = series(layers.metrics)
        held_before = blocks()
        for index in range(1001, NAMES + 1001):
            await layers.ask(index)
        assert len(await layers.status()) >= NAMES // 2  # the failures are remembered
        layers.clock.now += 2 * 86400  # every cooldown, reset and streak memory has passed
        assert len(await layers.status()) == rows_before
        assert series(layers.metrics) == scrape_before
        held = blocks() - held_before
        # Each name held anywhere would be several blocks: 40,000 names, some 100,000+.
        assert held < 4000, f"{held} more blocks held than before the flood"

    asyncio.run(main())


def test_made_up_model_names_share_one_label_and_configured_ones_keep_theirs() -> None:
    """Through the whole app: 300 names no configuration writes leave the /metrics scrape
    as one name did; a model listed under its provider's `models:` keeps its own label."""
    config = gateway_config(
        {
            "up": {
                "protocol": "anthropic",
                "base_url": "http://up.test",
                "auth": "none",
                "models": {"claude-listed": {}},
            }
        },
        [{"match": "*", "chain": ["up/{model}"]}],
    )

    async def main() -> tuple[int, int, str]:
        app = build_app(
            config, registry=CollectorRegistry(), transport=httpx.MockTransport(Upstreams())
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:

            async def ask(model: str) -> None:
                body = {
                    "model": model,
                    "max_tokens": 1,
                    "messages": [{"role": "user", "content": "hi"}],
                }
                assert (await client.post("/v1/messages", json=body)).status_code == 200

            async def scrape() -> str:
                return (await client.get("/metrics")).text

            await ask("claude-listed")
            await ask("made-up-0")
            before = await scrape()
            for index in range(1, 301):
                await ask(f"made-up-{index}")
            after = await scrape()
        await app.aclose()
        return samples(before), samples(after), after

    before, after, text = asyncio.run(main())
    assert after == before
    assert 'model="claude-listed"' in text and 'model="unconfigured"' in text
    assert "made-up" not in text


def samples(scrape: str) -> int:
    return sum(1 for line in scrape.splitlines() if line and not line.startswith("#"))


def dense_body(size: int) -> bytes:
    """A request whose messages are `[{},{},...]` up to `size` bytes: dense JSON."""
    head, tail = b'{"model":"claude-x","max_tokens":1,"messages":[', b"{}]}"
    return head + b"{}," * ((size - len(head) - len(tail)) // 3) + tail


async def post(app: Any, body: bytes) -> list[dict[str, Any]]:
    scope = http_scope(
        [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    )
    sent: list[dict[str, Any]] = []
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_a_dense_body_at_max_body_is_refused_before_parsing_and_leaves_nothing() -> None:
    """32 MiB of `{},` parsed would be some 1.4 GB of Python objects: it is a 413 instead,
    costing what the body's bytes cost, and returning them."""
    config = gateway_config(
        {"up": {"protocol": "anthropic", "base_url": "http://up.test", "auth": "none"}},
        [{"match": "*", "chain": ["up/{model}"]}],
    )
    body = dense_body(32 * 1024 * 1024 - 1)

    async def main() -> tuple[list[dict[str, Any]], int, int, int]:
        app = build_app(config, transport=httpx.MockTransport(Upstreams()))
        await post(app, b'{"model":"claude-x","max_tokens":1,"messages":[]}')  # warm up
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            sent = await post(app, body)
            gc.collect()
            after, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await app.aclose()
        return sent, before, after, peak

    sent, before, after, peak = asyncio.run(main())
    assert sent[0]["status"] == 413
    assert b"too many JSON values" in sent[1]["body"]
    assert peak - before < 100 * 1024 * 1024, f"{(peak - before) >> 20} MiB at peak"
    assert after - before < 1024 * 1024, f"{(after - before) >> 10} KiB still held"


def test_a_large_body_of_few_values_is_admitted() -> None:
    """An image-sized string is one value: 30 MiB of it is parsed and served."""
    config = gateway_config(
        {"up": {"protocol": "anthropic", "base_url": "http://up.test", "auth": "none"}},
        [{"match": "*", "chain": ["up/{model}"]}],
    )
    text = b"a" * (30 * 1024 * 1024)
    body = b'{"model":"claude-x","max_tokens":1,"messages":[{"role":"user","content":"'
    body += text + b'"}]}'

    async def main() -> list[dict[str, Any]]:
        app = build_app(config, transport=httpx.MockTransport(Upstreams()))
        try:
            return await post(app, body)
        finally:
            await app.aclose()

    assert asyncio.run(main())[0]["status"] == 200
