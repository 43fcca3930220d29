"""Coding sessions over a pool of keys that cache per account, for the cache tests and the bench.

Sessions send what Claude Code sends: the whole conversation every turn, a large system prompt
with a breakpoint, and a session header; each user turn may carry a tool output of some size. Every session's turn n goes concurrently, in a shuffled
order, then the fake clock moves on 20 s (a coding turn, well within the cache's ttl) before
turn n+1. The gateway runs in-process over a `PrefixCache` provider with three keys.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from routatic_asgi.config import Config, parse_config
from tests.fake_clock import FakeClock
from tests.prefix_cache import PrefixCache
from tests.resilience_kit import app_for, client_for

KEYS = ["sk-cache-key-00000a", "sk-cache-key-00000b", "sk-cache-key-00000c"]
SYSTEM = "You are a careful coding agent. " * 200
MODEL = "claude-sonnet-4-6"
CACHED_PRICE = 0.1  # a cached input token is billed at a tenth of an uncached one


def pool_config(strategy: str) -> Config:
    provider = {"protocol": "anthropic", "base_url": "http://pool", "keys": KEYS}
    return parse_config(
        {
            "providers": {"pool": {**provider, "strategy": strategy}},
            "routes": [{"match": "*", "chain": ["pool/{model}"]}],
        },
        env={},
    )


@dataclass
class Turn:
    """One turn's answer: its usage as the client saw it, and the key that served it."""

    read: int  # input tokens read from the cache
    written: int  # input tokens written to it
    uncached: int
    key: str

    @property
    def prompt(self) -> int:
        return self.read + self.written + self.uncached

    @property
    def cost(self) -> float:
        """Input tokens billed, a cached one at CACHED_PRICE (a written one as uncached)."""
        return self.uncached + self.written + CACHED_PRICE * self.read


class Sessions:
    """`count` sessions of the same agent against a pool picking keys by `strategy`, each user
    turn carrying about `output_tokens` of tool output."""

    def __init__(self, strategy: str, count: int = 20, output_tokens: int = 0) -> None:
        self.output = "x" * (4 * output_tokens)  # the fake counts four characters a token
        self.clock = FakeClock()
        self.fake = PrefixCache(self.clock)
        self.app = app_for(pool_config(strategy), self.fake, self.clock)
        self.history: dict[int, list[dict[str, Any]]] = {s: [] for s in range(count)}
        self.turns: dict[int, list[Turn]] = {s: [] for s in range(count)}

    async def turn(self, client: httpx.AsyncClient, session: int, n: int) -> None:
        messages = self.history[session]
        text = f"session {session}, step {n}: go on{self.output}"
        messages.append({"role": "user", "content": text})
        body = {
            "model": MODEL,
            "max_tokens": 64,
            "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
            "messages": messages,
        }
        header = f"9d0c-{session:04d}"
        response = await client.post(
            "/v1/messages", json=body, headers={"x-claude-code-session-id": header}
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        messages.append({"role": "assistant", "content": answer["content"]})
        usage = answer["usage"]
        served = [s.key for s in self.fake.served if s.session == header]
        self.turns[session].append(
            Turn(
                usage["cache_read_input_tokens"],
                usage["cache_creation_input_tokens"],
                usage["input_tokens"],
                served[-1] if served else "",
            )
        )

    async def run(self, numbers: range, before: Callable[[int], None] | None = None) -> None:
        """Turns `numbers` of every session; `before(n)` may change the provider first."""
        async with client_for(self.app) as client:
            for n in numbers:
                if before is not None:
                    before(n)
                order = list(self.history)
                random.Random(n).shuffle(order)  # sessions' turns arrive in any order
                await asyncio.gather(*(self.turn(client, s, n) for s in order))
                self.clock.now += 20

    def keys(self, session: int) -> list[str]:
        return [turn.key for turn in self.turns[session]]

    def misses(self, session: int) -> list[int]:
        """Turns (from the second, numbered from 1) that did not read the whole previous turn
        from the cache."""
        turns = self.turns[session]
        return [n + 1 for n in range(1, len(turns)) if turns[n].read < turns[n - 1].prompt]

    def hit_ratio(self) -> float:
        """The share of later turns (the second on) that read the whole previous turn."""
        later = sum(len(turns) - 1 for turns in self.turns.values())
        return 1 - sum(len(self.misses(s)) for s in self.turns) / later

    def at(self, n: int) -> list[Turn]:
        """Every session's turn `n` (from 1)."""
        return [turns[n - 1] for turns in self.turns.values()]
