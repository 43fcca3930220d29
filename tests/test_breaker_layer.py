"""`CircuitBreaker` on its own: raw ASGI around a scripted inner app, on the fake clock.

The inner app plays the upstream's outcomes (tests/scripted.py); each test drives one
attempt at a time through the layer, as the router would, and checks what the layer passed
on, what it settled, and what it remembered.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from routatic_asgi.breaker import BreakerPolicy, CircuitBreaker
from routatic_asgi.classify import Kind, Outcome, Reason
from routatic_asgi.config import CooldownConfig
from routatic_asgi.state import MemoryStore
from tests.fake_clock import FakeClock
from tests.scripted import REJECTED, TRANSIENT, USED_UP, Scripted, call, target

pytestmark = pytest.mark.anyio

ZEN = target()
# Two failures in a row open it for 30 s, doubling; Retry-After over 5 s is the breaker's.
POLICY = BreakerPolicy(CooldownConfig(base=30, max=900), failures=2, probe_max=900)
LIMITED = Outcome(Kind.TRANSIENT, Reason.RATE_LIMITED, 429, retry_after=600)


class Layer:
    def __init__(self, *outcomes: Outcome) -> None:
        self.clock = FakeClock()
        self.inner = Scripted().play(*outcomes)
        self.breaker = CircuitBreaker(
            self.inner,
            store=MemoryStore(clock=self.clock),
            policy=POLICY,
            clock=self.clock,
            jitter=lambda: 1.0,
        )

    async def row(self) -> dict[str, Any] | None:
        rows = await self.breaker.status()
        return rows[0] if rows else None


async def test_a_closed_breaker_passes_the_call_and_its_messages_through() -> None:
    layer = Layer()
    called = await call(layer.breaker, ZEN)
    assert called.outcome.kind is Kind.SUCCESS and layer.inner.calls == [ZEN]
    assert [m["type"] for m in called.sent] == ["http.response.start"] + 2 * ["http.response.body"]
    assert not called.attempt.probe and await layer.row() is None


async def test_two_failures_in_a_row_open_it_and_it_skips_without_a_call() -> None:
    layer = Layer(TRANSIENT, TRANSIENT)
    await call(layer.breaker, ZEN)
    row = await layer.row()
    assert row is not None and (row["state"], row["consecutive_failures"]) == ("closed", 1)
    await call(layer.breaker, ZEN)
    layer.clock.now += 10
    skipped = await call(layer.breaker, ZEN)
    assert skipped.outcome == Outcome(Kind.SKIPPED, Reason.BREAKER_OPEN, retry_after=20)
    assert skipped.sent == [] and len(layer.inner.calls) == 2
    assert skipped.attempt.may_panic  # open on failures alone: panic may call it anyway


async def test_a_success_between_failures_ends_the_streak() -> None:
    layer = Layer(TRANSIENT, Outcome(Kind.SUCCESS, Reason.OK), TRANSIENT)
    for _ in range(3):
        await call(layer.breaker, ZEN)
    row = await layer.row()
    assert row is not None and (row["state"], row["consecutive_failures"]) == ("closed", 1)


async def test_one_request_probes_when_the_cooldown_ends_and_its_success_closes() -> None:
    layer = Layer(TRANSIENT, TRANSIENT)
    for _ in range(2):
        await call(layer.breaker, ZEN)
    layer.clock.now += 30
    release = anyio.Event()
    inner = layer.inner

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        await inner(scope, receive, send)

    layer.breaker.app = slow
    probes: list[Any] = []

    async def probe() -> None:
        probes.append(await call(layer.breaker, ZEN))

    async with anyio.create_task_group() as group:
        group.start_soon(probe)
        await anyio.wait_all_tasks_blocked()
        concurrent = await call(layer.breaker, ZEN)  # the probe is in flight: skipped
        assert concurrent.outcome.reason == Reason.BREAKER_PROBING
        release.set()
    [probed] = probes
    assert probed.outcome.kind is Kind.SUCCESS and probed.attempt.probe  # never retried
    assert await layer.row() is None and len(inner.calls) == 3


async def test_a_failed_probe_reopens_it_for_longer() -> None:
    layer = Layer(TRANSIENT, TRANSIENT, TRANSIENT)
    for _ in range(2):
        await call(layer.breaker, ZEN)
    layer.clock.now += 30
    await call(layer.breaker, ZEN)  # the probe fails
    row = await layer.row()
    assert row is not None and row["state"] == "open"
    assert row["until"] == layer.clock.now + 60


async def test_the_breaker_records_a_success_before_the_stream_goes_on() -> None:
    layer = Layer(TRANSIENT, TRANSIENT)
    for _ in range(2):
        await call(layer.breaker, ZEN)
    layer.clock.now += 30
    states: list[str | None] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            row = await layer.row()
            states.append(row["state"] if row else None)

    await call(layer.breaker, ZEN, send=send)
    assert states == [None, None]  # closed before the first body chunk passed


async def test_a_cancelled_probe_lets_the_next_request_probe() -> None:
    layer = Layer(TRANSIENT, TRANSIENT)
    for _ in range(2):
        await call(layer.breaker, ZEN)
    layer.clock.now += 30
    with anyio.CancelScope() as gone:

        async def client_goes_away(scope: Any, receive: Any, send: Any) -> None:
            gone.cancel()  # as the router does when the client hangs up mid-probe
            await anyio.sleep_forever()

        layer.breaker.app = client_goes_away
        await call(layer.breaker, ZEN)
    layer.breaker.app = layer.inner
    probe = await call(layer.breaker, ZEN)
    assert probe.attempt.probe and probe.outcome.kind is Kind.SUCCESS


async def test_panic_calls_a_target_open_on_failures_but_never_one_asked_to_wait() -> None:
    layer = Layer(TRANSIENT, TRANSIENT)
    for _ in range(2):
        await call(layer.breaker, ZEN)
    panicked = await call(layer.breaker, ZEN, panic=True)
    assert panicked.outcome.kind is Kind.SUCCESS and panicked.attempt.probe
    asked = Layer(LIMITED)
    await call(asked.breaker, ZEN)  # a long Retry-After opens it at once
    refused = await call(asked.breaker, ZEN, panic=True)
    assert refused.outcome.reason == Reason.BREAKER_OPEN and not refused.attempt.may_panic
    assert refused.outcome.retry_after == 600


@pytest.mark.parametrize(
    "outcome",
    [
        REJECTED,
        USED_UP,
        Outcome(Kind.CLIENT, Reason.REJECTED, 400),
        Outcome(Kind.CANCELLED, Reason.CLIENT_DISCONNECTED),
        Outcome(Kind.UNFIT, Reason.CONTEXT_TOO_LONG, 400),
    ],
)
async def test_what_is_not_the_targets_failure_opens_nothing(outcome: Outcome) -> None:
    layer = Layer(outcome, outcome, outcome)
    for _ in range(3):
        await call(layer.breaker, ZEN)
    assert await layer.row() is None and len(layer.inner.calls) == 3


async def test_an_inner_app_that_settles_nothing_counts_as_a_failure() -> None:
    layer = Layer()

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    layer.breaker.app = silent
    for _ in range(2):
        await call(layer.breaker, ZEN)
    row = await layer.row()
    assert row is not None and (row["state"], row["reason"]) == ("open", "no_answer")
