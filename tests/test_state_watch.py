"""Breaker and credential state metrics, heard from the layers' announcements on a fake
clock: the boards and their watch, then the breaker on a store two replicas share (what the
assembled app records is tests/test_state_metrics.py's)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from routatic_asgi.breaker import BreakerPolicy, CircuitBreaker
from routatic_asgi.classify import Kind, Reason
from routatic_asgi.state import MemoryStore, RedisStore, StateStore
from routatic_asgi.telemetry.metrics import Metrics
from routatic_asgi.telemetry.state_watch import StateWatch
from routatic_asgi.transitions import Board, CredentialState, Phase, Subject, Transition
from tests.conftest import cleared, redis_url, sample
from tests.fake_clock import FakeClock
from tests.scripted import TRANSIENT, Scripted, call, target


class Watched:
    """The two boards and their watch, as build_app wires them, on a fake clock."""

    def __init__(self, degraded: bool = False, clock: FakeClock | None = None) -> None:
        self.clock, self.registry = clock or FakeClock(), CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.breakers, self.credentials = Board.for_breakers(), Board.for_credentials()
        boards = (self.breakers, self.credentials)
        StateWatch(self.metrics, boards, clock=self.clock, degraded=lambda: degraded)

    def breaker(self, **labels: str) -> float | None:
        self.metrics.exposition()  # a scrape recomputes what time alone changes
        return sample(self.registry, "routatic_breaker_state", **labels)

    def transitions(self, to_state: str, **labels: str) -> float | None:
        name = "routatic_breaker_transitions_total"
        return sample(self.registry, name, **labels, to_state=to_state)

    def credential(self, **labels: str) -> float | None:
        self.metrics.exposition()
        return sample(self.registry, "routatic_credential_state", **labels)


ZEN_M0 = Subject("zen/m#0", "zen", "m")
ZEN_M1 = Subject("zen/m#1", "zen", "m")
LABELS = {"provider": "zen", "model": "m"}


def test_a_breaker_opens_goes_half_open_with_time_and_closes_on_a_probe() -> None:
    watched = Watched()
    board, now = watched.breakers, watched.clock.now
    board.enter(ZEN_M0, Phase.OPEN, "overloaded", now=now, lapses=now + 30, forgotten=now + 3630)
    assert watched.breaker(**LABELS) == 1 and watched.transitions("open", **LABELS) == 1
    board.enter(ZEN_M0, Phase.OPEN, "overloaded", now=now, lapses=now + 30, forgotten=now + 3630)
    assert watched.transitions("open", **LABELS) == 1  # a late failure of an open breaker

    watched.clock.now += 31
    assert watched.breaker(**LABELS) == 2  # the cooldown ran out: half-open, by time alone
    assert watched.transitions("half_open", **LABELS) is None
    board.enter(ZEN_M0, Phase.HALF_OPEN, "probe", now=watched.clock.now)
    assert watched.transitions("half_open", **LABELS) == 1  # this process's probe
    now = watched.clock.now
    board.enter(ZEN_M0, Phase.OPEN, "overloaded", now=now, lapses=now + 60, forgotten=now + 3660)
    assert watched.breaker(**LABELS) == 1 and watched.transitions("open", **LABELS) == 2

    watched.clock.now += 61
    board.enter(ZEN_M0, Phase.HALF_OPEN, "probe", now=watched.clock.now)
    board.enter(ZEN_M0, Phase.CLOSED, "recovered", now=watched.clock.now)
    assert watched.breaker(**LABELS) == 0 and watched.transitions("closed", **LABELS) == 1


def test_a_breaker_the_store_forgot_is_closed_at_the_next_scrape() -> None:
    watched = Watched()
    now = watched.clock.now
    watched.breakers.learn(ZEN_M0, Phase.OPEN, "overloaded", now=now, lapses=now + 30,
                           forgotten=now + 3630)  # fmt: skip
    assert watched.breaker(**LABELS) == 1 and watched.transitions("open", **LABELS) is None
    watched.clock.now += 3630
    assert watched.breaker(**LABELS) == 0
    assert watched.breakers.subject(ZEN_M0.key) is None  # and forgotten here too


def test_a_provider_model_shows_its_worst_key() -> None:
    watched = Watched()
    now = watched.clock.now
    watched.breakers.enter(ZEN_M0, Phase.OPEN, "overloaded", now=now, lapses=now + 30)
    watched.breakers.learn(ZEN_M1, Phase.CLOSED, "recovered", now=now)
    assert watched.breaker(**LABELS) == 1
    watched.breakers.enter(ZEN_M1, Phase.HALF_OPEN, "probe", now=now)
    assert watched.breaker(**LABELS) == 1
    watched.breakers.enter(ZEN_M0, Phase.CLOSED, "recovered", now=now)
    assert watched.breaker(**LABELS) == 2


def test_credential_state_follows_rejections_and_resets() -> None:
    watched = Watched()
    now = watched.clock.now
    bad = Subject("zen#0:00ff", "zen", "zen#0")
    watched.credentials.enter(bad, CredentialState.BAD, "auth_rejected", now=now)
    assert watched.credential(provider="zen", credential="zen#0") == 2
    cooling = Subject("zen#1:11ee", "zen", "zen#1")
    watched.credentials.enter(cooling, CredentialState.COOLING, "usage_limit", now=now,
                              lapses=now + 60)  # fmt: skip
    assert watched.credential(provider="zen", credential="zen#1") == 1
    watched.clock.now += 61
    assert watched.credential(provider="zen", credential="zen#1") == 0


def test_a_broken_listener_is_logged_and_the_others_still_hear() -> None:
    watched = Watched()

    def broken(transition: Transition) -> None:
        raise RuntimeError("a broken listener")

    watched.breakers.listeners.insert(0, broken)
    watched.breakers.enter(ZEN_M0, Phase.OPEN, "overloaded", now=watched.clock.now)
    assert watched.breaker(**LABELS) == 1


def test_a_degraded_store_sets_the_gauge() -> None:
    up, down = Watched(), Watched(degraded=True)
    for watched, value in ((up, 0), (down, 1)):
        watched.metrics.exposition()
        assert sample(watched.registry, "routatic_state_store_degraded") == value


# --- the layers announce, on one store shared like Redis by two replicas ---------------------


class Replica:
    """A breaker and its watch, as one replica of a deployment runs them."""

    def __init__(self, store: StateStore, clock: FakeClock, inner: Scripted) -> None:
        self.watched = Watched(clock=clock)
        self.breaker = CircuitBreaker(
            inner, store=store, policy=BreakerPolicy(failures=1), clock=clock,
            board=self.watched.breakers, jitter=lambda: 1.0,
        )  # fmt: skip
        self.metrics = self.watched.metrics

    def state(self) -> float | None:
        return self.watched.breaker(provider="openrouter", model="deepseek/deepseek-chat")

    def transitions(self, to_state: str) -> float | None:
        labels = {"provider": "openrouter", "model": "deepseek/deepseek-chat"}
        return self.watched.transitions(to_state, **labels)


@pytest.fixture(params=["memory", "redis"])
async def two_stores(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[StateStore, StateStore, FakeClock]]:
    """What two replicas share: one MemoryStore, or a Redis store each on one Redis."""
    clock = FakeClock()
    if request.param == "memory":
        shared = MemoryStore(clock=clock)
        yield shared, shared, clock
        await cleared(shared)
        return
    url = redis_url()
    one, two = RedisStore(url, clock=clock), RedisStore(url, clock=clock)
    yield one, two, clock
    await cleared(one, two)


@pytest.mark.anyio
async def test_a_replica_learns_what_another_did_and_counts_only_its_own(
    two_stores: tuple[StateStore, StateStore, FakeClock],
) -> None:
    store_one, store_two, clock = two_stores
    inner = Scripted().play(TRANSIENT)
    one, two = Replica(store_one, clock, inner), Replica(store_two, clock, inner)
    deepseek = target("openrouter", "deepseek/deepseek-chat", index=1)

    await call(one.breaker, deepseek)  # fails: replica one opens the breaker
    assert one.state() == 1 and one.transitions("open") == 1
    assert two.state() is None  # replica two has not read it yet
    assert (await call(two.breaker, deepseek)).outcome.reason == Reason.BREAKER_OPEN
    assert two.state() == 1 and two.transitions("open") is None  # learned, not counted

    clock.now += 31
    assert (await call(two.breaker, deepseek)).outcome.kind is Kind.SUCCESS  # two probes
    assert two.state() == 0 and two.transitions("half_open") == 1
    assert two.transitions("closed") == 1
    assert one.state() == 2  # one saw the cooldown run out; the close is two's doing
    await call(one.breaker, deepseek)  # one reads the record two deleted: closed
    assert one.state() == 0 and one.transitions("closed") is None


@pytest.mark.anyio
async def test_a_reset_by_hand_is_announced_and_clears_only_what_it_names() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    replica = Replica(store, clock, Scripted().play(TRANSIENT, TRANSIENT))
    await call(replica.breaker, target("openrouter", "deepseek/deepseek-chat", index=1))
    await call(replica.breaker, target("openrouter", "other", index=1))
    assert replica.state() == 1
    assert await replica.breaker.reset("openrouter/deepseek/deepseek-chat") == [
        "openrouter/deepseek/deepseek-chat#1"
    ]
    assert replica.state() == 0 and replica.transitions("closed") == 1
    [left] = await replica.breaker.status()
    assert left["target"] == "openrouter/other#1" and left["state"] == "open"
