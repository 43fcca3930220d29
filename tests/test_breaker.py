"""The circuit breaker: its arithmetic on a fake clock, then the middleware in the real chain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from routatic_asgi.attempt import Attempt, Credential, Target
from routatic_asgi.breaker import (
    BreakerPolicy,
    Phase,
    cooldown,
    counts_against,
    phase,
    tripped,
)
from routatic_asgi.classify import Kind, Outcome
from routatic_asgi.config import Config, CooldownConfig
from routatic_asgi.state import MemoryStore, Record
from tests.conftest import gateway_config
from tests.fake_clock import NOW, FakeClock
from tests.fake_upstream import anthropic_stream
from tests.resilience_kit import Upstreams, app_for, ask, client_for, error

POLICY = CooldownConfig(base=30, max=900)
ONE_STRIKE = BreakerPolicy(POLICY, failures=1, probe_max=900)  # opens on every failure
DEFAULTS = BreakerPolicy()  # two failures, probes at most 30 s apart, Retry-After over 5 s


# --- the arithmetic -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "seconds"), [(1, 30), (2, 60), (3, 120), (5, 480), (6, 900), (60, 900)]
)
def test_the_cooldown_doubles_up_to_its_max(failures: int, seconds: float) -> None:
    assert cooldown(failures, None, POLICY) == seconds


def test_retry_after_is_a_floor_the_jitter_never_cuts() -> None:
    assert cooldown(1, 120, POLICY) == 120
    assert cooldown(1, 30, POLICY, jitter=0.9) == 30
    assert cooldown(1, 0, POLICY) == 30
    assert cooldown(6, 2000, POLICY) == 2000


@pytest.mark.parametrize(("jitter", "seconds"), [(0.8, 24), (1.0, 30)])
def test_the_jitter_scales_the_backoff(jitter: float, seconds: float) -> None:
    assert cooldown(1, None, POLICY, jitter) == pytest.approx(seconds)
    assert cooldown(9, None, POLICY, jitter) == pytest.approx(900 * jitter)


def test_phases() -> None:
    assert phase(None, NOW) is Phase.CLOSED
    record = Record("status_500", NOW, NOW + 30, 1)
    assert phase(record, NOW + 29.9) is Phase.OPEN
    assert phase(record, NOW + 30) is Phase.HALF_OPEN


def test_each_failure_lengthens_the_streak() -> None:
    failure = Outcome(Kind.TRANSIENT, "status_500", 500)
    first = tripped(None, failure, NOW, ONE_STRIKE, 1.0)
    assert first == Record("status_500", NOW, NOW + 30, 1)
    second = tripped(first, failure, NOW + 31, ONE_STRIKE, 1.0)  # the probe failed
    assert second == Record("status_500", NOW + 31, NOW + 31 + 60, 2)


def test_a_failure_while_open_does_not_lengthen_the_streak() -> None:
    opened = Record("status_500", NOW, NOW + 30, 1)
    late = tripped(opened, Outcome(Kind.TRANSIENT, "status_503", 503), NOW + 1, ONE_STRIKE, 1.0)
    assert late.failures == 1
    limited = Outcome(Kind.TRANSIENT, "rate_limited", 429, 600)
    waited = tripped(opened, limited, NOW + 1, ONE_STRIKE, 1)
    assert waited.until == NOW + 601 and waited.failures == 1


def test_one_failure_opens_nothing_the_second_in_a_row_does() -> None:
    failure = Outcome(Kind.TRANSIENT, "status_500", 500)
    first = tripped(None, failure, NOW, DEFAULTS, 1.0)
    assert first == Record("status_500", NOW, NOW, 1)  # counted, still closed
    assert phase(first, NOW) is Phase.CLOSED and phase(first, NOW + 5) is Phase.CLOSED
    second = tripped(first, failure, NOW + 1, DEFAULTS, 1.0)
    assert second == Record("status_500", NOW + 1, NOW + 31, 2)
    assert phase(second, NOW + 2) is Phase.OPEN and phase(second, NOW + 31) is Phase.HALF_OPEN


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(Kind.TRANSIENT, "rate_limited", 429, retry_after=60),
        Outcome(Kind.EXHAUSTED, "usage_limit", 429),
    ],
)
def test_the_upstream_asking_to_wait_opens_at_once(outcome: Outcome) -> None:
    opened = tripped(None, outcome, NOW, DEFAULTS, 1.0)
    assert phase(opened, NOW + 1) is Phase.OPEN and opened.asked
    assert opened.until == NOW + max(outcome.retry_after or 0, 30)


def test_a_short_retry_after_is_the_routers_to_wait_not_the_breakers() -> None:
    short = Outcome(Kind.TRANSIENT, "rate_limited", 429, retry_after=2)
    assert phase(tripped(None, short, NOW, DEFAULTS, 1.0), NOW + 1) is Phase.CLOSED


def test_the_wait_between_probes_is_capped_but_an_asked_wait_is_not() -> None:
    record = Record("status_500", NOW, NOW + 30, 9)
    failure = Outcome(Kind.TRANSIENT, "status_500", 500)
    later = tripped(record, failure, NOW + 30, DEFAULTS, 1.0)  # the 8th failed probe
    assert later.until == NOW + 60 and later.failures == 10
    asked = Outcome(Kind.TRANSIENT, "overloaded", 529, retry_after=300)
    assert tripped(record, asked, NOW + 30, DEFAULTS, 1.0).until == NOW + 330


def attempt(kind: Kind, *, keyed: bool = True, passthrough: bool = False) -> Attempt:
    credential = Credential("p", 0, "sk-0000000000001") if keyed else None
    target = Target("p", "openai", "m", "http://p.test", passthrough, credential)
    made = Attempt(target, 1, True)
    made.settle(Outcome(kind, kind.value))
    return made


@pytest.mark.parametrize(
    ("kind", "counts"),
    [
        (Kind.TRANSIENT, True),
        (Kind.SUCCESS, False),
        (Kind.CLIENT, False),
        (Kind.UNFIT, False),
        (Kind.CANCELLED, False),
        (Kind.SKIPPED, False),
        (Kind.AUTH, False),
        (Kind.EXHAUSTED, False),
    ],
)
def test_only_the_targets_own_failures_count(kind: Kind, counts: bool) -> None:
    assert counts_against(attempt(kind)) is counts


def test_a_usage_limit_with_no_credential_to_cool_opens_the_breaker() -> None:
    assert counts_against(attempt(Kind.EXHAUSTED, keyed=False))
    assert not counts_against(attempt(Kind.EXHAUSTED, keyed=False, passthrough=True))


# --- the middleware in the chain ------------------------------------------------------------



def two_providers() -> Config:
    return gateway_config(
        {
            "a": {"protocol": "anthropic", "base_url": "http://a.test", "keys": ["sk-a-000000001"]},
            "b": {"protocol": "anthropic", "base_url": "http://b.test", "keys": ["sk-b-000000001"]},
        },
        [{"match": "*", "chain": ["a/{model}", "b/{model}"]}],
        # One failure opens the breaker here, and doubles each time: the mechanics, one by one.
        resilience={
            "cooldown": {"base": "30s", "max": "15m"},
            "breaker": {"failures": 1, "probe_max": "15m"},
            "retry": {"attempts": 0},
        },
    )


class Rig:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.upstreams = Upstreams()
        self.store = MemoryStore(clock=self.clock)
        self.app = app_for(two_providers(), self.upstreams, self.clock, store=self.store)
        self.client = client_for(self.app)

    async def status(self) -> dict[str, Any]:
        response = await self.client.get("/status")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made = Rig()
    yield made
    await made.client.aclose()
    await made.app.aclose()


@pytest.mark.anyio
async def test_a_failed_target_is_skipped_until_its_cooldown_ends(rig: Rig) -> None:
    rig.upstreams.script("a.test", 500)
    first = await ask(rig.client)
    assert first.headers["x-routatic-target"] == "b/claude-sonnet-4-6"
    rig.clock.now += 20  # inside the 24-30 s cooldown
    second = await ask(rig.client)
    assert second.status_code == 200
    assert "breaker_open" in second.headers["x-routatic-fallback"]
    assert second.headers["x-routatic-attempts"] == "1"  # a skip is not an attempt
    assert rig.upstreams.count("a.test") == 1
    [breaker] = (await rig.status())["breakers"]
    assert breaker["target"] == "a/claude-sonnet-4-6#0"
    assert breaker["state"] == "open" and breaker["consecutive_failures"] == 1
    assert breaker["since"] == NOW and 24 <= breaker["until"] - NOW <= 30


@pytest.mark.anyio
async def test_a_successful_probe_closes_the_breaker(rig: Rig) -> None:
    rig.upstreams.script("a.test", 503)
    await ask(rig.client)
    rig.clock.now += 34
    assert (await rig.status())["breakers"][0]["state"] == "half_open"
    probe = await ask(rig.client)
    assert probe.headers["x-routatic-target"] == "a/claude-sonnet-4-6"
    assert (await rig.status())["breakers"] == []
    await ask(rig.client)
    assert rig.upstreams.count("a.test") == 3


@pytest.mark.anyio
async def test_a_failed_probe_reopens_for_twice_as_long(rig: Rig) -> None:
    rig.upstreams.script("a.test", 500, 500)
    await ask(rig.client)
    rig.clock.now += 34
    await ask(rig.client)
    [breaker] = (await rig.status())["breakers"]
    assert breaker["consecutive_failures"] == 2 and breaker["state"] == "open"
    assert 48 <= breaker["until"] - rig.clock.now <= 60
    rig.clock.now += 47  # short of the shortest jittered cooldown
    await ask(rig.client)
    assert rig.upstreams.count("a.test") == 2


@pytest.mark.anyio
async def test_retry_after_sets_the_cooldown(rig: Rig) -> None:
    rig.upstreams.script("a.test", error(429, "slow down", **{"retry-after": "300"}))
    await ask(rig.client)
    [breaker] = (await rig.status())["breakers"]
    assert breaker["until"] == NOW + 300 and breaker["reason"] == "rate_limited"


@pytest.mark.anyio
async def test_client_errors_unfit_answers_and_credential_problems_open_nothing(rig: Rig) -> None:
    rig.upstreams.script("a.test", 400)  # the client's error: back to the client
    assert (await ask(rig.client)).status_code == 400
    rig.upstreams.script("a.test", 500)
    rig.upstreams.script("b.test", 404)  # unfit on the fallback
    await ask(rig.client)
    breakers = (await rig.status())["breakers"]
    assert [b["target"] for b in breakers] == ["a/claude-sonnet-4-6#0"]
    rig.clock.now += 40
    rig.upstreams.script("a.test", error(402, "insufficient credit"))
    await ask(rig.client)
    assert (await rig.status())["breakers"][0]["consecutive_failures"] == 1


@pytest.mark.anyio
async def test_every_target_open_answers_at_once_with_the_soonest_recovery(rig: Rig) -> None:
    rig.upstreams.script("a.test", error(503, "down", **{"retry-after": "120"}))
    rig.upstreams.script("b.test", 500)
    first = await ask(rig.client)
    assert first.status_code == 503
    rig.clock.now += 10
    calls = len(rig.upstreams.calls)
    second = await ask(rig.client)
    assert len(rig.upstreams.calls) == calls
    assert second.status_code == 503
    assert second.json()["error"]["type"] == "overloaded_error"
    assert 14 <= int(second.headers["retry-after"]) <= 20  # b's 24-30 s cooldown, 10 s gone
    assert second.headers["x-routatic-attempts"] == "0"


@pytest.mark.anyio
async def test_one_probe_among_fifty_concurrent_requests(rig: Rig) -> None:
    rig.upstreams.script("a.test", 500)
    await ask(rig.client)
    rig.clock.now += 40
    release = anyio.Event()

    async def slow_failure(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return error(500)

    rig.upstreams.script("a.test", slow_failure)
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await ask(rig.client)).status_code)

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        assert rig.upstreams.count("a.test") == 2
        release.set()
    assert statuses == [200] * 50
    assert rig.upstreams.count("a.test") == 2
    assert rig.upstreams.count("b.test") == 51


@pytest.mark.anyio
async def test_a_cancelled_probe_lets_the_next_request_probe(rig: Rig) -> None:
    rig.upstreams.script("a.test", 500)
    await ask(rig.client)
    rig.clock.now += 40

    async def hang(request: httpx.Request) -> httpx.Response:
        await anyio.sleep_forever()
        raise AssertionError

    rig.upstreams.script("a.test", hang)
    async with anyio.create_task_group() as group:
        group.start_soon(ask, rig.client)
        await anyio.wait_all_tasks_blocked()
        group.cancel_scope.cancel()  # the client gives up while the probe hangs
    probe = await ask(rig.client)
    assert probe.headers["x-routatic-target"] == "a/claude-sonnet-4-6"
    assert rig.upstreams.count("a.test") == 3


class Hanging(httpx.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data
        await anyio.sleep_forever()


@pytest.mark.anyio
async def test_a_streamed_probe_closes_the_breaker_at_its_first_content(rig: Rig) -> None:
    rig.upstreams.script("a.test", 500)
    await ask(rig.client)
    rig.clock.now += 40
    events = "".join(anthropic_stream("claude-sonnet-4-6")[:4]).encode()  # up to a text delta
    stream = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=Hanging(events)
    )
    rig.upstreams.script("a.test", stream)
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: ask(rig.client, stream=True))
        await anyio.wait_all_tasks_blocked()
        assert (await rig.status())["breakers"] == []  # while the probe still streams
        assert (await ask(rig.client)).headers["x-routatic-target"] == "a/claude-sonnet-4-6"
        group.cancel_scope.cancel()
    assert rig.upstreams.count("a.test") == 3


@given(
    failures=st.integers(1, 200),
    retry_after=st.none() | st.floats(0, 1e6),
    jitter=st.floats(0.8, 1.0),
)
def test_the_cooldown_respects_retry_after_and_its_bounds(
    failures: int, retry_after: float | None, jitter: float
) -> None:
    seconds = cooldown(failures, retry_after, POLICY, jitter)
    assert seconds >= (retry_after or 0)
    assert seconds >= POLICY.base * 0.8
    assert seconds <= max(retry_after or 0, POLICY.max)
    assert cooldown(failures + 1, retry_after, POLICY, jitter) >= seconds


@pytest.mark.anyio
async def test_by_default_a_dead_target_gets_one_call_per_30_s_and_is_back_within_30_s() -> None:
    """The README's promise for `breaker.probe_max`, with no resilience settings at all."""
    config = gateway_config(
        {
            "a": {"protocol": "anthropic", "base_url": "http://a.test", "keys": ["sk-a-000000001"]},
            "b": {"protocol": "anthropic", "base_url": "http://b.test", "keys": ["sk-b-000000001"]},
        },
        [{"match": "*", "chain": ["a/{model}", "b/{model}"]}],
    )
    clock, upstreams = FakeClock(), Upstreams()
    app = app_for(config, upstreams, clock, store=MemoryStore(clock=clock))
    client = client_for(app)
    try:
        upstreams.script("a.test", *[500] * 2)  # the call and its retry: two failures open it
        assert (await ask(client)).headers["x-routatic-target"] == "b/claude-sonnet-4-6"
        for probe in range(1, 13):  # down for six minutes: the backoff alone would reach 15 min
            upstreams.script("a.test", 500)
            clock.now += 30
            assert (await ask(client)).headers["x-routatic-target"] == "b/claude-sonnet-4-6"
            assert upstreams.count("a.test") == 2 + probe  # one probe, never retried
        clock.now += 30  # a has recovered: its queue is empty, it answers 200
        back = await ask(client)
        assert back.headers["x-routatic-target"] == "a/claude-sonnet-4-6"
    finally:
        await client.aclose()
        await app.aclose()
