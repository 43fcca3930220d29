"""Breaker, short-circuit, credential and state-store metrics through the assembled app, its
upstreams in-process (the boards and their watch alone: tests/test_state_watch.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from routatic_asgi import build_app
from tests.conftest import closed_port_url, gateway_config, sample, traced
from tests.fake_clock import FakeClock
from tests.resilience_kit import Upstreams, app_for, client_for, respond

pytestmark = pytest.mark.anyio

REQUEST = {"model": "claude-x", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("tracing", [True, False])
async def test_a_failing_target_is_short_circuited_then_probed(tracing: bool) -> None:
    clock, registry, upstreams = FakeClock(), CollectorRegistry(), Upstreams()
    provider, exporter = traced()
    upstreams.script("down", 529, 529)  # the call and its retry
    config = gateway_config(
        {
            "down": {"protocol": "anthropic", "base_url": "http://down", "keys": ["sk-down-0001"]},
            "up": {"protocol": "anthropic", "base_url": "http://up", "auth": "none"},
        },
        [{"match": "claude-x", "chain": ["down/{model}", "up/{model}"]}],
    )
    tracer_provider = provider if tracing else None
    app = app_for(config, upstreams, clock, registry=registry, tracer_provider=tracer_provider)
    down = {"provider": "down", "model": "claude-x"}

    async def post() -> Any:
        async with client_for(app) as client:
            response = await client.post("/v1/messages", json=REQUEST)
            scrape = await client.get("/metrics")
        assert response.status_code == 200 and scrape.status_code == 200
        return response

    await post()  # down answers 529 twice in a row (its retry too): its breaker opens, up serves
    assert sample(registry, "routatic_breaker_state", **down) == 1
    await post()  # down is skipped without a call
    assert upstreams.count("down") == 2
    short = {"provider": "down", "reason": "breaker_open"}
    assert sample(registry, "routatic_short_circuits_total", **short) == 1
    clock.now += 3600
    probed = await post()  # the cooldown is over: this request probes down, which recovered
    assert probed.headers["x-routatic-target"] == "down/claude-x"
    assert sample(registry, "routatic_breaker_state", **down) == 0
    for to_state in ("open", "half_open", "closed"):
        labels = {**down, "to_state": to_state}
        assert sample(registry, "routatic_breaker_transitions_total", **labels) == 1
    await app.aclose()
    if not tracing:
        return
    requests = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    events = [[(e.name, dict(e.attributes or {})) for e in s.events] for s in requests]
    assert ("routatic.breaker", {"target": "down/claude-x#0", "to_state": "open",
            "reason": "overloaded"}) in events[0]  # fmt: skip
    assert [name for name, _ in events[2]] == ["routatic.breaker", "routatic.breaker"]


async def test_a_refreshed_key_counts_two_upstream_calls_once_each() -> None:
    registry, upstreams = CollectorRegistry(), Upstreams()
    rejected = {"type": "error", "error": {"type": "authentication_error"}}
    upstreams.script("p", respond(401, rejected))
    config = gateway_config(
        {"p": {"protocol": "anthropic", "base_url": "http://p", "keys": ["sk-stale-000001"],
               "key_command": "echo sk-fresh-000002"}},
        [{"match": "claude-x", "chain": ["p/{model}"]}],
    )  # fmt: skip
    app = app_for(config, upstreams, FakeClock(), registry=registry)
    async with client_for(app) as client:
        assert (await client.post("/v1/messages", json=REQUEST)).status_code == 200
    await app.aclose()
    assert upstreams.keys("p") == ["sk-stale-000001", "sk-fresh-000002"]
    target = {"provider": "p", "model": "claude-x"}
    for outcome in ("auth", "success"):
        labels = {**target, "outcome": outcome}
        assert sample(registry, "routatic_upstream_attempts_total", **labels) == 1
    assert sample(registry, "routatic_upstream_ttfb_seconds_count", **target) == 1


async def test_an_unreachable_redis_shows_as_degraded_on_metrics_and_readyz() -> None:
    closed = closed_port_url().removeprefix("http://")  # a loopback port where nothing listens
    config = gateway_config(
        {"up": {"protocol": "anthropic", "base_url": "http://up", "auth": "none"}},
        [{"match": "*", "chain": ["up/{model}"]}],
        state=f"redis://{closed}/0",
    )
    registry = CollectorRegistry()
    app = build_app(config, registry=registry, transport=httpx.MockTransport(Upstreams()))
    async with client_for(app) as client:
        assert (await client.post("/v1/messages", json=REQUEST)).status_code == 200
        ready = (await client.get("/readyz")).json()
        scraped = (await client.get("/metrics")).text
    await app.aclose()
    assert ready["state_degraded"] is True
    assert "\nroutatic_state_store_degraded 1.0\n" in scraped
