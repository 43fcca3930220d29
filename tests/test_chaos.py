"""Chaos: thousands of requests over three upstreams that fail at random, on a fake clock.

The schedule keeps at least one upstream healthy at any time: time runs in epochs, each
upstream fails at random (with a random failure) in a random set of epochs, and every two
neighbouring epochs share a healthy upstream, so one has been healthy for longer than the
longest cooldown. Every request must succeed, and none may make more upstream calls than
`max_attempts` (a retry of the same target never crowds out a target still to try).
"""

from __future__ import annotations

import json
import random
from collections import Counter

import httpx
import pytest

from tests.conftest import gateway_config
from tests.fake_clock import NOW, FakeClock
from tests.fake_upstream import anthropic_stream
from tests.resilience_kit import Body, app_for, client_for, error, healthy, sse

HOSTS = ("a.test", "b.test", "c.test")
EPOCH = 60.0  # seconds of fake time; the longest cooldown (10 s + 10%) is far shorter
REQUESTS = 2000
MODEL = "claude-sonnet-4-6"

pytestmark = pytest.mark.anyio



def schedule(rng: random.Random, epochs: int) -> list[frozenset[str]]:
    """The failing hosts of each epoch; a healthy host of each epoch stays healthy in the next."""
    failing: list[frozenset[str]] = []
    keeper = rng.choice(HOSTS)
    for _ in range(epochs):
        next_keeper = rng.choice(HOSTS)
        down = {host for host in HOSTS if rng.random() < 0.6} - {keeper, next_keeper}
        failing.append(frozenset(down))
        keeper = next_keeper
    return failing


class Chaos:
    def __init__(self, rng: random.Random, clock: FakeClock) -> None:
        self.rng, self.clock = rng, clock
        self.failing = schedule(rng, int(REQUESTS * 2.0 / EPOCH) + 2)
        self.calls: Counter[str] = Counter()

    def down(self, host: str) -> bool:
        epoch = int((self.clock.now - NOW) // EPOCH)
        return host in self.failing[epoch] and self.rng.random() < 0.7

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        self.calls[payload["metadata"]["user_id"]] += 1
        stream = payload.get("stream", False)
        if not self.down(request.url.host):
            if stream:
                events = "".join(anthropic_stream(payload["model"])).encode()
                return sse(Body(events))
            return healthy(request)
        return self.failure(stream)

    def failure(self, stream: bool) -> httpx.Response:
        kind = self.rng.choice(["500", "503", "529", "429", "connect", "stream"])
        if kind == "connect":
            raise httpx.ConnectError("connection refused")
        if kind == "stream" and stream:
            body = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n'
            return sse(Body(body))
        if kind == "429":
            return error(429, "slow down", **{"retry-after": str(self.rng.randint(0, 5))})
        return error(int(kind) if kind.isdigit() else 500)


async def test_random_failures_never_reach_the_client() -> None:
    rng = random.Random(20261122)
    clock = FakeClock()
    chaos = Chaos(rng, clock)
    config = gateway_config(
        {
            name: {
                "protocol": "anthropic",
                "base_url": f"http://{host}",
                "keys": [f"sk-{name}-0001"],
            }
            for name, host in zip("abc", HOSTS, strict=True)
        },
        [{"match": "*", "chain": ["a/{model}", "b/{model}", "c/{model}"]}],
        resilience={"cooldown": {"base": "1s", "max": "10s"}},
    )
    app = app_for(config, chaos, clock)
    statuses: Counter[int] = Counter()
    fallbacks = 0
    async with client_for(app) as client:
        for n in range(REQUESTS):
            clock.now += rng.uniform(0.0, 2.0)
            body = {
                "model": MODEL,
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "hi"}],
                "metadata": {"user_id": f"request-{n}"},
                "stream": rng.random() < 0.3,
            }
            response = await client.post("/v1/messages", json=body)
            statuses[response.status_code] += 1
            fallbacks += "x-routatic-fallback" in response.headers
            if body["stream"]:
                assert b"event: message_stop" in response.content
    await app.aclose()
    assert statuses == {200: REQUESTS}
    assert len(chaos.calls) == REQUESTS
    assert max(chaos.calls.values()) <= config.resilience.max_attempts
    assert fallbacks > REQUESTS // 10  # the chaos was real
    print(
        f"chaos: {REQUESTS} requests, {sum(chaos.calls.values())} upstream calls, "
        f"{fallbacks} fell back, per-request calls {sorted(Counter(chaos.calls.values()).items())}"
    )
