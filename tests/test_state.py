"""One suite for every `StateStore`: memory always, Redis where ROUTATIC_TEST_REDIS_URL is set.

Each Redis case uses a key prefix of its own, so cases never see each other's records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from routatic_asgi import build_app
from routatic_asgi.state import MemoryStore, Record, RedisStore, StateStore, state_kind, store_for
from tests.conftest import closed_port_url, gateway_config, redis_url
from tests.fake_clock import NOW, FakeClock
from tests.resilience_kit import Upstreams, ask, client_for

pytestmark = pytest.mark.anyio


async def ttl_of(store: StateStore, key: str, clock: FakeClock) -> float | None:
    """Seconds until the store forgets `key` (None: never)."""
    if isinstance(store, RedisStore):
        millis = await store._redis().pttl(store._key("rec", key))
        return None if millis == -1 else millis / 1000
    assert isinstance(store, MemoryStore)
    expires = store._records[key][1]
    return None if expires is None else expires - clock()


async def test_put_then_get_round_trips(store: tuple[StateStore, FakeClock]) -> None:
    state, _ = store
    record = Record("rate_limited", NOW, NOW + 30.5, 2)
    assert await state.get("breaker:a") is None
    assert await state.put("breaker:a", record, now=NOW) == record
    assert await state.get("breaker:a") == record
    assert await state.records() == {"breaker:a": record}


async def test_the_ttl_equals_the_cooldown(store: tuple[StateStore, FakeClock]) -> None:
    state, clock = store
    await state.put("credential:x", Record("usage_limit", NOW, NOW + 120), now=NOW)
    assert await ttl_of(state, "credential:x", clock) == pytest.approx(120, abs=0.5)
    await state.put("breaker:y", Record("status_500", NOW, NOW + 30, 1), now=NOW, linger=600)
    assert await ttl_of(state, "breaker:y", clock) == pytest.approx(630, abs=0.5)


async def test_a_longer_cooldown_is_never_cut_short(store: tuple[StateStore, FakeClock]) -> None:
    state, _ = store
    long = Record("usage_limit", NOW, NOW + 3600)
    short = Record("rate_limited", NOW + 1, NOW + 60)
    await state.put("credential:x", long, now=NOW)
    assert await state.put("credential:x", short, now=NOW + 1) == long
    assert await state.get("credential:x") == long
    longer = Record("usage_limit", NOW + 2, NOW + 7200)
    assert await state.put("credential:x", longer, now=NOW + 2) == longer


async def test_an_unbounded_record_outlasts_any_cooldown(store: tuple[StateStore, FakeClock]) -> None:
    state, clock = store
    bad = Record("auth_rejected", NOW, None)
    await state.put("credential:x", bad, now=NOW)
    assert await ttl_of(state, "credential:x", clock) is None
    await state.put("credential:x", Record("usage_limit", NOW, NOW + 60), now=NOW)
    assert await state.get("credential:x") == bad


async def test_delete_clears(store: tuple[StateStore, FakeClock]) -> None:
    state, _ = store
    await state.put("breaker:a", Record("status_500", NOW, NOW + 30, 1), now=NOW)
    await state.delete("breaker:a")
    assert await state.get("breaker:a") is None
    assert await state.records() == {}


async def test_one_claim_wins_until_released(store: tuple[StateStore, FakeClock]) -> None:
    state, _ = store
    winners = []

    async def contender(n: int) -> None:
        if await state.claim("breaker:a", ttl=30):
            winners.append(n)

    async with anyio.create_task_group() as group:
        for n in range(50):
            group.start_soon(contender, n)
    assert len(winners) == 1
    assert not await state.claim("breaker:a", ttl=30)
    await state.release("breaker:a")
    assert await state.claim("breaker:a", ttl=30)


async def test_leases_are_not_records(store: tuple[StateStore, FakeClock]) -> None:
    state, _ = store
    await state.claim("breaker:a", ttl=30)
    assert await state.records() == {}
    assert await state.ping()
    assert not state.degraded


async def test_memory_records_expire_on_the_injected_clock() -> None:
    clock = FakeClock()
    state = MemoryStore(clock=clock)
    await state.put("credential:x", Record("usage_limit", NOW, NOW + 60), now=NOW)
    assert await state.claim("lease", ttl=10)
    clock.now += 9
    assert not await state.claim("lease", ttl=10)
    clock.now += 1
    assert await state.claim("lease", ttl=10)
    clock.now += 49
    assert await state.get("credential:x") is not None
    clock.now += 1
    assert await state.get("credential:x") is None


async def test_two_redis_stores_share_one_state() -> None:
    url = redis_url()
    one, two = RedisStore(url), RedisStore(url)
    try:
        record = Record("status_503", NOW, NOW + 30, 1)
        await one.put("breaker:a", record, now=NOW)
        assert await two.get("breaker:a") == record
        winners: list[RedisStore] = []

        async def contend(store: RedisStore) -> None:
            if await store.claim("breaker:a", ttl=30):
                winners.append(store)

        async with anyio.create_task_group() as group:
            for n in range(50):
                group.start_soon(contend, one if n % 2 else two)
        assert len(winners) == 1  # one probe between the replicas
        await winners[0].release("breaker:a")
        assert await one.claim("breaker:a", ttl=30)
        assert not await two.claim("breaker:a", ttl=30)
        await one.put("breaker:a", Record("status_503", NOW, NOW + 600, 2), now=NOW)
        await two.put("breaker:a", Record("status_500", NOW, NOW + 30, 1), now=NOW)
        assert (await one.get("breaker:a")) == Record("status_503", NOW, NOW + 600, 2)
        await one.delete("breaker:a")
        await one.release("breaker:a")
    finally:
        await one.aclose()
        await two.aclose()


async def test_an_unreachable_redis_serves_from_memory_and_says_degraded() -> None:
    clock = FakeClock()
    state = RedisStore(f"redis{closed_port_url().removeprefix('http')}/0", clock=clock)
    try:
        assert not state.degraded
        record = Record("status_500", NOW, NOW + 30, 1)
        assert await state.put("breaker:a", record, now=NOW) == record
        assert state.degraded
        assert await state.get("breaker:a") == record
        assert await state.claim("breaker:a", ttl=30)
        assert not await state.claim("breaker:a", ttl=30)
        assert await state.records() == {"breaker:a": record}
        assert not await state.ping()
        assert state.degraded
    finally:
        await state.aclose()


async def test_a_degraded_store_tries_redis_again_later() -> None:
    clock = FakeClock()
    calls: list[str] = []

    class Flaky:
        """A Redis client that is down until `up` is set."""

        def __init__(self) -> None:
            self.up = False

        async def get(self, key: str) -> Any:
            calls.append(key)
            if not self.up:
                raise ConnectionError("down")
            return None

        def register_script(self, script: str) -> Callable[..., Any]:
            return lambda **_: None

        async def aclose(self) -> None:
            pass

    flaky = Flaky()
    state = RedisStore("redis://127.0.0.1:1/0", clock=clock, client=flaky, retry_every=5)
    assert await state.get("breaker:a") is None
    assert state.degraded and len(calls) == 1
    flaky.up = True
    await state.get("breaker:a")
    assert len(calls) == 1  # within the pause, memory answers without trying Redis
    clock.now += 5
    await state.get("breaker:a")
    assert len(calls) == 2 and not state.degraded


def test_the_configured_state_picks_the_store() -> None:
    assert isinstance(store_for("memory"), MemoryStore)
    redis = store_for("redis://127.0.0.1:6379/3?key_prefix=team-a:")
    assert isinstance(redis, RedisStore)
    assert redis.prefix == "team-a:" and redis.url == "redis://127.0.0.1:6379/3"


async def test_requests_never_fail_because_redis_is_down() -> None:
    down = f"redis{closed_port_url().removeprefix('http')}/0"
    config = gateway_config(
        {
            "a": {"protocol": "anthropic", "base_url": "http://a.test", "keys": ["sk-a-000000001"]},
            "b": {"protocol": "anthropic", "base_url": "http://b.test", "keys": ["sk-b-000000001"]},
        },
        [{"match": "*", "chain": ["a/{model}", "b/{model}"]}],
        state=down,
        resilience={"retry": {"attempts": 0}, "breaker": {"failures": 1}},
    )
    upstreams = Upstreams()
    upstreams.script("a.test", 500)
    app = build_app(config, transport=httpx.MockTransport(upstreams))
    async with client_for(app) as client:
        assert (await ask(client)).status_code == 200
        second = await ask(client)  # the breaker still works, in this process's memory
        assert second.headers["x-routatic-fallback"] == "a/claude-sonnet-4-6=breaker_open"
        ready = (await client.get("/readyz")).json()
        status = (await client.get("/status")).json()
    await app.aclose()
    assert upstreams.count("a.test") == 1
    assert ready["state"] == "redis" and ready["state_degraded"] is True
    assert status["state_degraded"] is True and status["breakers"][0]["state"] == "open"


async def test_an_unreadable_redis_record_counts_as_none() -> None:
    state = RedisStore(redis_url())
    try:
        await state._redis().set(state._key("rec", "breaker:a"), b"not json")
        assert await state.get("breaker:a") is None
        assert await state.records() == {}
        record = Record("status_500", NOW, NOW + 30, 1)
        assert await state.put("breaker:a", record, now=NOW) == record
        assert await state.get("breaker:a") == record
        assert not state.degraded
    finally:
        await state.delete("breaker:a")
        await state.aclose()


def test_the_kind_of_store_is_named_without_its_url() -> None:
    assert state_kind("memory") == "memory"
    assert state_kind("redis://user:secret@10.0.0.5:6379/0") == "redis"
    assert isinstance(store_for("memory"), MemoryStore)
