"""A shared store trusts a key it found absent for `staleness` seconds, and no longer.

The common request finds its breaker closed and its credential unmarked; asking Redis for
both on every attempt is two round trips that almost always say "nothing". These cases
count the round trips and check that a record another replica writes is seen within the
staleness, and one written here at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from routatic_asgi.errors import ConfigError
from routatic_asgi.state import Record, RedisStore, parse_state_url
from tests.conftest import gateway_config, redis_url
from tests.fake_clock import NOW, FakeClock

pytestmark = pytest.mark.anyio

RECORD = Record("status_503", NOW, NOW + 30, 1)


class Shared:
    """A Redis client holding one dict, counting the GETs it answers."""

    def __init__(self, records: dict[str, bytes]) -> None:
        self.records = records
        self.gets = 0
        self.answer = asyncio.Event()  # a GET reads when sent, answers once this is set
        self.answer.set()

    async def get(self, key: str) -> Any:
        self.gets += 1
        value = self.records.get(key)
        await self.answer.wait()
        return value

    def register_script(self, script: str) -> Callable[..., Any]:
        async def put(keys: list[str], args: list[Any]) -> bytes:
            self.records[keys[0]] = args[0]
            return bytes(args[0])

        return put

    async def aclose(self) -> None:
        pass


def replica(records: dict[str, bytes], clock: FakeClock, staleness: str = "2") -> RedisStore:
    url = f"redis://127.0.0.1:1/0?staleness={staleness}"
    return RedisStore(url, clock=clock, client=Shared(records))


async def test_an_absent_key_costs_one_round_trip_per_staleness() -> None:
    clock = FakeClock()
    store = replica({}, clock)
    for _ in range(100):
        assert await store.get("breaker:a") is None
    assert store._client.gets == 1
    clock.now += 2
    assert await store.get("breaker:a") is None
    assert store._client.gets == 2


async def test_another_replicas_record_is_seen_within_the_staleness() -> None:
    clock, records = FakeClock(), {}
    one, two = replica(records, clock), replica(records, clock)
    assert await one.get("breaker:a") is None
    await two.put("breaker:a", RECORD, now=NOW)
    clock.now += 1.9
    assert await one.get("breaker:a") is None  # trusted absent a little longer
    clock.now += 0.1
    assert await one.get("breaker:a") == RECORD
    assert await one.get("breaker:a") == RECORD  # a present record is read every time
    assert one._client.gets == 3


async def test_a_record_written_here_is_seen_at_once() -> None:
    clock = FakeClock()
    store = replica({}, clock)
    assert await store.get("breaker:a") is None
    await store.put("breaker:a", RECORD, now=NOW)
    assert await store.get("breaker:a") == RECORD


async def test_concurrent_reads_of_one_key_share_one_round_trip() -> None:
    clock = FakeClock()
    store = replica({}, clock, staleness="0")
    found = await asyncio.gather(*(store.get("breaker:a") for _ in range(10)))
    assert found == [None] * 10
    assert store._client.gets == 1


async def test_a_write_here_is_not_hidden_by_a_read_in_flight() -> None:
    clock = FakeClock()
    store = replica({}, clock, staleness="0")
    store._client.answer.clear()
    before = asyncio.ensure_future(store.get("breaker:a"))
    for _ in range(3):
        await asyncio.sleep(0)  # its GET has read "nothing" and awaits the answer
    await store.put("breaker:a", RECORD, now=NOW)
    after = asyncio.ensure_future(store.get("breaker:a"))
    await asyncio.sleep(0)
    store._client.answer.set()
    assert await before is None
    assert await after == RECORD


async def test_no_staleness_asks_every_time() -> None:
    clock = FakeClock()
    store = replica({}, clock, staleness="0")
    for _ in range(3):
        assert await store.get("breaker:a") is None
    assert store._client.gets == 3


async def test_real_redis_replicas_share_within_the_staleness() -> None:
    clock = FakeClock()
    url = redis_url() + "&staleness=1"
    one, two = RedisStore(url, clock=clock), RedisStore(url, clock=clock)
    try:
        assert await one.get("breaker:a") is None
        await two.put("breaker:a", RECORD, now=NOW)
        assert await one.get("breaker:a") is None
        clock.now += 1
        assert await one.get("breaker:a") == RECORD
    finally:
        await two.delete("breaker:a")
        await one.aclose()
        await two.aclose()


def test_the_staleness_is_part_of_the_state_url() -> None:
    assert parse_state_url("redis://h:6379/0?staleness=0.25&key_prefix=a:") == (
        "redis://h:6379/0",
        "a:",
        0.25,
    )
    assert parse_state_url("redis://h:6379/0")[2] == 0.5
    with pytest.raises(ConfigError, match="staleness"):
        gateway_config(
            {"a": {"protocol": "anthropic", "base_url": "http://a.test", "auth": "none"}},
            [{"match": "*", "chain": ["a/{model}"]}],
            state="redis://h:6379/0?staleness=-1",
        )
