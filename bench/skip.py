"""Micro-benchmark: what skipping a target whose breaker is open costs, in microseconds.

    python bench/skip.py [--requests 3000]

Two figures, printed as JSON:

- `skip_us`: per skipped target in the whole chain (router, telemetry, credential layer,
  breaker), from requests whose route has eight open targets before the one that answers,
  minus the same requests with none. The upstream is an in-process mock, so only the
  gateway's own work is timed.
- `breaker_layer_us`: one call of `CircuitBreaker` alone on an open target.

In-process and single-threaded; it never opens a socket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from routatic_asgi import build_app, parse_config
from routatic_asgi.attempt import ATTEMPT, Attempt, Target
from routatic_asgi.breaker import PREFIX, CircuitBreaker
from routatic_asgi.clock import Clock
from routatic_asgi.state import MemoryStore, Record

OPEN = 8
BODY = b'{"model":"claude-bench-1","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
ANSWER = (
    b'{"id":"msg_1","type":"message","role":"assistant","model":"claude-bench-1","content":'
    b'[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":1,'
    b'"output_tokens":1}}'
)
NOW = 1_800_000_000.0


class StillClock(Clock):
    """Wall time stands at NOW, so the breaker record below stays open for the whole run."""

    def __call__(self) -> float:
        return NOW


clock = StillClock()


class Body(httpx.AsyncByteStream):
    async def __aiter__(self) -> Any:
        yield ANSWER


async def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "application/json"}, stream=Body())


def app_with(open_targets: int, store: MemoryStore) -> Any:
    providers = {
        "down": {"protocol": "anthropic", "base_url": "http://down.invalid", "auth": "none"},
        "up": {"protocol": "anthropic", "base_url": "http://up.invalid", "auth": "none"},
    }
    chain = [f"down/m{n}" for n in range(open_targets)] + ["up/{model}"]
    config = parse_config(
        {"providers": providers, "routes": [{"match": "*", "chain": chain}]}, env={}
    )
    return build_app(config, transport=httpx.MockTransport(answer), clock=clock, state=store)


async def request(app: Any) -> None:
    delivered = False
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await never.wait()
        return {"type": "http.disconnect"}

    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/messages",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"x-api-key", b"sk-bench")],
    }
    await app(scope, receive, send)
    assert status == 200, status


async def per_request(app: Any, count: int) -> float:
    for _ in range(200):
        await request(app)
    best = float("inf")
    for _ in range(5):  # the best of five rounds: the machine is shared
        start = time.perf_counter()
        for _ in range(count // 5):
            await request(app)
        best = min(best, (time.perf_counter() - start) / (count // 5))
    return best


async def breaker_layer(count: int) -> float:
    store = MemoryStore(clock=clock)
    target = Target("down", "anthropic", "m0", "http://down.invalid")
    await store.put(PREFIX + target.key, Record("rate_limited", NOW, NOW + 600, 1), now=NOW)

    async def never_called(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("an open breaker let a request through")

    breaker = CircuitBreaker(never_called, store=store, clock=clock)
    scope: dict[str, Any] = {"type": "http"}
    start = time.perf_counter()
    for _ in range(count):
        attempt = Attempt(target, 1, True)
        scope[ATTEMPT] = attempt
        await breaker(scope, None, None)  # type: ignore[arg-type]
        assert attempt.outcome is not None and attempt.outcome.reason == "breaker_open"
    return (time.perf_counter() - start) / count


async def main(count: int) -> dict[str, float]:
    store = MemoryStore(clock=clock)
    for n in range(OPEN):
        key = PREFIX + f"down/m{n}"
        await store.put(key, Record("rate_limited", NOW, NOW + 600, 1), now=NOW)
    plain = app_with(0, store)
    skipping = app_with(OPEN, store)
    base = await per_request(plain, count)
    with_skips = await per_request(skipping, count)
    await plain.aclose()
    await skipping.aclose()
    return {
        "skip_us": (with_skips - base) / OPEN * 1e6,
        "request_us": base * 1e6,
        "breaker_layer_us": await breaker_layer(count) * 1e6,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(main(args.requests))
    else:
        result = uvloop.run(main(args.requests))
    print(json.dumps(result))
