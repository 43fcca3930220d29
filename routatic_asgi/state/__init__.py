"""Where breaker and credential state lives: in this process, or in Redis shared by replicas.

A `StateStore` holds `Record`s (a reason, since, until and a failure count) by key, short
leases for the single probe of a half-open breaker, and values kept a while (`keep`,
`recall`: what a target reasoned, for the next turn; bounded, and forgotten at their TTL).
Two rules hold for records in every store:

- `put` never cuts a cooldown short: a record whose `until` is later (or unbounded) stays.
- a record expires `linger` seconds after its `until`: a credential's cooldown ends exactly
  at its reset, a breaker's record outlives its cooldown so the half-open probe knows the
  failure streak.

`RedisStore` makes both atomic across replicas with one Lua script and `SET NX PX`. A key it
found absent in Redis (a closed breaker, an unmarked credential: every request's case) is taken
as still absent for `staleness` seconds without asking again, so the common request costs no
round trip; a record this process writes is seen at once, and one another replica writes is
seen within `staleness`. A record found present is read from Redis every time. When Redis
cannot be reached it serves from its in-process `MemoryStore` (which it keeps up to date on
every write), says so in `degraded`, and tries Redis again a few seconds later: a request never
fails because Redis is down. This package decides nothing about breakers or credentials and
never stores a secret.
"""

from __future__ import annotations

from typing import Literal

from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.state.memory import MemoryStore
from routatic_asgi.state.record import Record, StateStore
from routatic_asgi.state.redis_store import RedisStore, parse_state_url

__all__ = [
    "MemoryStore",
    "Record",
    "RedisStore",
    "StateStore",
    "parse_state_url",
    "state_kind",
    "store_for",
]


def state_kind(state: str) -> Literal["memory", "redis"]:
    """Which kind of store a configuration's `state:` names: what is shown of it, since a
    Redis URL may hold a password."""
    return "memory" if state == "memory" else "redis"


def store_for(state: str, *, clock: Clock = SYSTEM_CLOCK) -> StateStore:
    """The store a configuration's `state:` names: `memory` or a redis:// URL."""
    if state_kind(state) == "memory":
        return MemoryStore(clock=clock)
    return RedisStore(state, clock=clock)
