"""Prompt caches stay warm: coding sessions over a pool of keys that cache per account.

Twenty concurrent sessions of ten turns each, as Claude Code sends them (the whole
conversation every turn, a session header), through the gateway to a pool of three keys of a
provider that caches prefixes per key. A turn is a hit when it reads the whole previous turn
from the cache.
"""

from __future__ import annotations

import pytest

from tests.coding_sessions import KEYS, SYSTEM, Sessions
from tests.fake_clock import FakeClock
from tests.prefix_cache import PrefixCache

SESSIONS, TURNS = 20, 10

pytestmark = pytest.mark.anyio


async def test_affinity_keeps_every_session_on_its_warm_key() -> None:
    run = Sessions("affinity", SESSIONS)
    await run.run(range(1, TURNS + 1))
    assert run.hit_ratio() >= 0.95
    assert all(len(set(run.keys(s))) == 1 for s in range(SESSIONS))
    assert len({run.keys(s)[0] for s in range(SESSIONS)}) == 3  # and the pool is shared


async def test_round_robin_scatters_sessions_over_cold_caches() -> None:
    run = Sessions("round_robin", SESSIONS)
    await run.run(range(1, TURNS + 1))
    assert run.hit_ratio() <= 0.5  # what affinity fixes: about a third hit


async def test_a_rejected_key_costs_its_sessions_one_turn_of_cache() -> None:
    run = Sessions("affinity", SESSIONS)

    def revoke(n: int) -> None:
        if n == 6:
            run.fake.revoked.add(KEYS[1])

    await run.run(range(1, TURNS + 1), before=revoke)
    on_revoked = {s for s in range(SESSIONS) if run.keys(s)[4] == KEYS[1]}
    assert 3 <= len(on_revoked) <= 12  # about a third of the sessions
    for session in range(SESSIONS):
        expected = [6] if session in on_revoked else []
        assert run.misses(session) == expected, session
        assert len(set(run.keys(session)[5:])) == 1  # and they stay where they moved
        assert KEYS[1] not in run.keys(session)[5:]


def test_the_fake_caches_per_key_within_its_ttl() -> None:
    clock = FakeClock()
    fake = PrefixCache(clock, ttl=300)
    body = {"model": "m", "system": SYSTEM, "messages": [{"role": "user", "content": "hi"}]}
    first = fake.lookup(KEYS[0], body)
    assert first.cached == 0
    assert fake.lookup(KEYS[0], body).cached == first.prompt
    assert fake.lookup(KEYS[1], body).cached == 0  # another account: cold
    clock.now += 200
    assert fake.lookup(KEYS[1], body).cached == first.prompt  # a read refreshes the entry
    clock.now += 200
    assert fake.lookup(KEYS[1], body).cached == first.prompt
    assert fake.lookup(KEYS[0], body).cached == 0  # expired
