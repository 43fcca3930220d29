"""Prompt caches stay warm: coding sessions over a pool of keys that cache per account.

Twenty concurrent sessions of ten turns each, as Claude Code sends them (the whole
conversation every turn, a session header), through the gateway to a pool of three keys of a
provider that caches prefixes per key. A turn is a hit when it reads the whole previous turn
from the cache.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from routatic_asgi.config import parse_config
from tests.prefix_cache import PrefixCache
from tests.resilience_kit import Clock, app_for, client_for

KEYS = ["sk-cache-key-00000a", "sk-cache-key-00000b", "sk-cache-key-00000c"]
SESSIONS, TURNS = 20, 10
SYSTEM = "You are a careful coding agent. " * 200

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pool_config(strategy: str) -> Any:
    provider = {"protocol": "anthropic", "base_url": "http://pool", "keys": KEYS}
    return parse_config(
        {
            "providers": {"pool": {**provider, "strategy": strategy}},
            "routes": [{"match": "*", "chain": ["pool/{model}"]}],
        },
        env={},
    )


class Run:
    """The sessions' turns in lockstep: every session's turn n, concurrently, then n+1."""

    def __init__(self, strategy: str) -> None:
        self.clock = Clock()
        self.fake = PrefixCache(self.clock)
        self.app = app_for(pool_config(strategy), self.fake, self.clock)
        self.history: dict[int, list[dict[str, Any]]] = {s: [] for s in range(SESSIONS)}
        self.usage: dict[int, list[dict[str, int]]] = {s: [] for s in range(SESSIONS)}
        self.keys: dict[int, list[str]] = {s: [] for s in range(SESSIONS)}

    async def turn(self, client: Any, session: int, n: int) -> None:
        messages = self.history[session]
        messages.append({"role": "user", "content": f"session {session}, step {n}: go on"})
        body = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 64,
            "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
            "messages": messages,
        }
        headers = {"x-claude-code-session-id": f"9d0c-{session:04d}"}
        served = len(self.fake.served)
        response = await client.post("/v1/messages", json=body, headers=headers)
        assert response.status_code == 200, response.text
        answer = response.json()
        messages.append({"role": "assistant", "content": answer["content"]})
        self.usage[session].append(answer["usage"])
        self.keys[session].append(self.fake.served[-1].key if served < len(self.fake.served) else "")

    async def turns(self, numbers: range, before: Any = None) -> None:
        async with client_for(self.app) as client:
            for n in numbers:
                if before is not None:
                    before(n)
                order = list(range(SESSIONS))
                random.Random(n).shuffle(order)  # sessions' turns arrive in any order
                await asyncio.gather(*(self.turn(client, s, n) for s in order))
                self.clock.now += 20  # a coding turn, well within the cache's ttl

    def misses(self, session: int) -> list[int]:
        """Turns (from the second) that did not read the whole previous turn from cache."""
        usage = self.usage[session]
        prompts = [u["input_tokens"] + u["cache_read_input_tokens"]
                   + u["cache_creation_input_tokens"] for u in usage]  # fmt: skip
        return [
            n + 1
            for n in range(1, len(usage))
            if usage[n]["cache_read_input_tokens"] < prompts[n - 1]
        ]

    def hit_ratio(self) -> float:
        later_turns = SESSIONS * (TURNS - 1)
        return 1 - sum(len(self.misses(s)) for s in range(SESSIONS)) / later_turns


async def test_affinity_keeps_every_session_on_its_warm_key() -> None:
    run = Run("affinity")
    await run.turns(range(1, TURNS + 1))
    assert run.hit_ratio() >= 0.95
    assert all(len(set(keys)) == 1 for keys in run.keys.values())
    assert len({keys[0] for keys in run.keys.values()}) == 3  # and the pool is shared


async def test_round_robin_scatters_sessions_over_cold_caches() -> None:
    run = Run("round_robin")
    await run.turns(range(1, TURNS + 1))
    assert run.hit_ratio() <= 0.5  # what affinity fixes: about a third hit


async def test_a_rejected_key_costs_its_sessions_one_turn_of_cache() -> None:
    run = Run("affinity")

    def revoke(n: int) -> None:
        if n == 6:
            run.fake.revoked.add(KEYS[1])

    await run.turns(range(1, TURNS + 1), before=revoke)
    on_revoked = {s for s in range(SESSIONS) if run.keys[s][4] == KEYS[1]}
    assert 3 <= len(on_revoked) <= 12  # about a third of the sessions
    for session in range(SESSIONS):
        expected = [6] if session in on_revoked else []
        assert run.misses(session) == expected, session
        assert len(set(run.keys[session][5:])) == 1  # and they stay where they moved
        assert KEYS[1] not in run.keys[session][5:]


def test_the_fake_caches_per_key_within_its_ttl() -> None:
    clock = Clock()
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
