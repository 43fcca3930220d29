"""Breaker, short-circuit, credential and state-store metrics, heard at the store's boundary,
on a fake clock: unit level over a MemoryStore, then through the assembled app."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from routatic_asgi import build_app
from routatic_asgi.state import MemoryStore, Record
from routatic_asgi.telemetry.metrics import Metrics
from routatic_asgi.telemetry.state_watch import WatchedStore, breaker_labels, credential_labels
from tests.conftest import gateway_config
from tests.fake_clock import NOW
from tests.fake_clock import FakeClock as Clock
from tests.fake_upstream import anthropic_message

REQUEST = {"model": "claude-x", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}



class _Body(httpx.AsyncByteStream):
    """A body the relay streams as from the network (a `content=` body counts as read)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


def _answer(status: int, payload: Any) -> httpx.Response:
    headers = {"content-type": "application/json"}
    return httpx.Response(status, headers=headers, stream=_Body(json.dumps(payload).encode()))


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_labels_come_from_the_keys_without_the_key_index() -> None:
    assert breaker_labels("openrouter/deepseek/deepseek-chat#1") == (
        "openrouter",
        "deepseek/deepseek-chat",
    )
    assert breaker_labels("anthropic/claude-x") == ("anthropic", "claude-x")
    assert credential_labels("zen#2:0123456789abcdef") == ("zen", "zen#2")


@pytest.mark.anyio
async def test_a_breaker_opens_goes_half_open_with_time_and_closes_on_a_probe() -> None:
    clock, registry = Clock(), CollectorRegistry()
    metrics = Metrics(registry)
    store = WatchedStore(MemoryStore(clock=clock), metrics, clock=clock)
    key, labels = "breaker:zen/m#0", {"provider": "zen", "model": "m"}

    def state() -> float | None:
        metrics.exposition()  # a scrape recomputes what time alone changes
        return _value(registry, "routatic_breaker_state", **labels)

    def transitions(to_state: str) -> float | None:
        name = "routatic_breaker_transitions_total"
        return _value(registry, name, **labels, to_state=to_state)

    await store.put(key, Record("overloaded", NOW, NOW + 30, 1), now=NOW, linger=3600)
    assert state() == 1 and transitions("open") == 1
    await store.put(key, Record("overloaded", NOW, NOW + 30, 1), now=NOW, linger=3600)
    assert transitions("open") == 1  # a late failure of an open breaker is no transition

    clock.now += 31
    assert state() == 2
    assert await store.claim(key, ttl=60)
    assert transitions("half_open") == 1
    await store.put(key, Record("overloaded", clock.now, clock.now + 60, 2), now=clock.now)
    assert state() == 1 and transitions("open") == 2

    clock.now += 61
    assert await store.claim(key, ttl=60)
    await store.delete(key)
    assert state() == 0 and transitions("closed") == 1


@pytest.mark.anyio
async def test_a_provider_model_shows_its_worst_key() -> None:
    clock, registry = Clock(), CollectorRegistry()
    metrics = Metrics(registry)
    store = WatchedStore(MemoryStore(clock=clock), metrics, clock=clock)
    await store.put("breaker:zen/m#0", Record("overloaded", NOW, NOW + 30, 1), now=NOW)
    await store.get("breaker:zen/m#1")
    assert _value(registry, "routatic_breaker_state", provider="zen", model="m") == 1


@pytest.mark.anyio
async def test_credential_state_follows_rejections_and_resets() -> None:
    clock, registry = Clock(), CollectorRegistry()
    metrics = Metrics(registry)
    store = WatchedStore(MemoryStore(clock=clock), metrics, clock=clock)
    labels = {"provider": "zen", "credential": "zen#0"}
    await store.put("credential:zen#0:00ff", Record("auth_rejected", NOW, None), now=NOW)
    assert _value(registry, "routatic_credential_state", **labels) == 2
    labels1 = {"provider": "zen", "credential": "zen#1"}
    await store.put("credential:zen#1:11ee", Record("usage_limit", NOW, NOW + 60), now=NOW)
    assert _value(registry, "routatic_credential_state", **labels1) == 1
    clock.now += 61
    metrics.exposition()
    assert _value(registry, "routatic_credential_state", **labels1) == 0


class _Unreachable(MemoryStore):
    @property
    def degraded(self) -> bool:
        return True

    async def ping(self) -> bool:
        return False


@pytest.mark.anyio
async def test_a_degraded_store_sets_the_gauge() -> None:
    registry = CollectorRegistry()
    store = WatchedStore(MemoryStore(), Metrics(registry))
    assert await store.ping()
    assert _value(registry, "routatic_state_store_degraded") == 0
    down = WatchedStore(_Unreachable(), Metrics(registry := CollectorRegistry()))
    assert not await down.ping()
    assert _value(registry, "routatic_state_store_degraded") == 1


@pytest.mark.anyio
@pytest.mark.parametrize("traced", [True, False])
async def test_through_the_app_a_failing_target_is_short_circuited_then_probed(
    traced: bool,
) -> None:
    clock, registry = Clock(), CollectorRegistry()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    failing = {"left": 2}  # the call and its retry

    async def upstreams(request: httpx.Request) -> httpx.Response:
        if request.url.host == "down" and failing["left"]:
            failing["left"] -= 1
            return _answer(529, {"type": "error", "error": {}})
        return _answer(200, anthropic_message("claude-x"))

    config = gateway_config(
        {
            "down": {"protocol": "anthropic", "base_url": "http://down", "keys": ["sk-down-0001"]},
            "up": {"protocol": "anthropic", "base_url": "http://up", "auth": "none"},
        },
        [{"match": "claude-x", "chain": ["down/{model}", "up/{model}"]}],
    )
    app = build_app(
        config,
        registry=registry,
        tracer_provider=provider if traced else None,
        clock=clock,
        transport=httpx.MockTransport(upstreams),
    )
    down = {"provider": "down", "model": "claude-x"}

    async def post() -> Any:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://gateway"
        ) as client:
            response = await client.post("/v1/messages", json=REQUEST)
            scrape = await client.get("/metrics")
        assert response.status_code == 200 and scrape.status_code == 200
        return response

    await post()  # down answers 529 twice in a row (its retry too): its breaker opens, up serves
    assert _value(registry, "routatic_breaker_state", **down) == 1
    await post()  # down is skipped without a call
    short = {"provider": "down", "reason": "breaker_open"}
    assert _value(registry, "routatic_short_circuits_total", **short) == 1
    clock.now += 3600
    probed = await post()  # the cooldown is over: this request probes down, which recovered
    assert probed.headers["x-routatic-target"] == "down/claude-x"
    assert _value(registry, "routatic_breaker_state", **down) == 0
    for to_state in ("open", "half_open", "closed"):
        labels = {**down, "to_state": to_state}
        assert _value(registry, "routatic_breaker_transitions_total", **labels) == 1
    await app.aclose()
    if not traced:
        return
    requests = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    events = [[(e.name, dict(e.attributes or {})) for e in s.events] for s in requests]
    assert ("routatic.breaker", {"target": "down/claude-x#0", "to_state": "open",
            "reason": "overloaded"}) in events[0]  # fmt: skip
    assert [name for name, _ in events[2]] == ["routatic.breaker", "routatic.breaker"]


@pytest.mark.anyio
async def test_a_refreshed_key_counts_two_upstream_calls_once_each() -> None:
    registry = CollectorRegistry()

    async def upstreams(request: httpx.Request) -> httpx.Response:
        if request.headers["x-api-key"] == "sk-stale-000001":
            return _answer(401, {"type": "error", "error": {"type": "authentication_error"}})
        return _answer(200, anthropic_message("claude-x"))

    config = gateway_config(
        {"p": {"protocol": "anthropic", "base_url": "http://p", "keys": ["sk-stale-000001"],
               "key_command": "echo sk-fresh-000002"}},
        [{"match": "claude-x", "chain": ["p/{model}"]}],
    )  # fmt: skip
    app = build_app(config, registry=registry, transport=httpx.MockTransport(upstreams))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://gateway"
    ) as client:
        assert (await client.post("/v1/messages", json=REQUEST)).status_code == 200
    await app.aclose()
    target = {"provider": "p", "model": "claude-x"}
    for outcome in ("auth", "success"):
        labels = {**target, "outcome": outcome}
        assert _value(registry, "routatic_upstream_attempts_total", **labels) == 1
    assert _value(registry, "routatic_upstream_ttfb_seconds_count", **target) == 1


@pytest.mark.anyio
async def test_an_unreachable_redis_shows_as_degraded_on_metrics_and_readyz() -> None:
    with socket.socket() as sock:  # a loopback port where nothing listens
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    config = gateway_config(
        {"up": {"protocol": "anthropic", "base_url": "http://up", "auth": "none"}},
        [{"match": "*", "chain": ["up/{model}"]}],
        state=f"redis://127.0.0.1:{closed}/0",
    )
    registry = CollectorRegistry()

    async def upstreams(request: httpx.Request) -> httpx.Response:
        return _answer(200, anthropic_message("claude-x"))

    app = build_app(config, registry=registry, transport=httpx.MockTransport(upstreams))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://gateway"
    ) as client:
        assert (await client.post("/v1/messages", json=REQUEST)).status_code == 200
        ready = (await client.get("/readyz")).json()
        scraped = (await client.get("/metrics")).text
    await app.aclose()
    assert ready["state_degraded"] is True
    assert "\nroutatic_state_store_degraded 1.0\n" in scraped
