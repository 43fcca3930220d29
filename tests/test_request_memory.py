"""A finished request leaves nothing for the garbage collector: its memory is freed at once.

Reference cycles (scope and request record, attempts and their listeners) used to keep every
finished request, body included, alive until a full collection; those collections cost the
server a tenth of its CPU and its longest pauses.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from routatic_asgi import build_app
from tests.conftest import FakeUpstream, gateway_config, http_scope

BODY = b'{"model":"claude-x","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'


def scope_for(body: bytes) -> dict[str, Any]:
    return http_scope(
        [
            (b"content-type", b"application/json"),
            (b"anthropic-version", b"2023-06-01"),
            (b"x-api-key", b"sk-client"),
            (b"content-length", str(len(body)).encode()),
        ]
    )


async def call(app: Any, body: bytes) -> list[dict[str, Any]]:
    delivered = False
    never = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope_for(body), receive, send)
    return sent


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


@pytest.mark.parametrize("stream", [False, True], ids=["unstreamed", "streamed"])
def test_a_served_request_leaves_no_cyclic_garbage(
    upstream: FakeUpstream, collector_off: None, stream: bool
) -> None:
    prefix = upstream.provider()
    config = gateway_config(
        {"up": {"protocol": "anthropic", "base_url": upstream.url(prefix), "auth": "passthrough"}},
        [{"match": "*", "chain": ["up/{model}"]}],
    )
    body = BODY.replace(b'"max_tokens"', b'"stream":true,"max_tokens"') if stream else BODY

    async def main() -> list[str]:
        app = build_app(config)
        await call(app, body)  # the first request warms the pool and the caches
        gc.collect()
        gc.garbage.clear()
        sent = [await call(app, body) for _ in range(5)]
        assert all(messages[0]["status"] == 200 for messages in sent)
        found = gc.collect()
        kinds = sorted({type(thing).__name__ for thing in gc.garbage})
        await app.aclose()
        return kinds if found else []

    assert asyncio.run(main()) == []
