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
fails because Redis is down. This module decides nothing about breakers or credentials and
never stores a secret.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from routatic_asgi.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "MemoryStore",
    "Record",
    "RedisStore",
    "StateStore",
    "parse_state_url",
    "state_kind",
    "store_for",
]

T = TypeVar("T")
# How long a record another replica wrote may go unseen (see RedisStore).
DEFAULT_STALENESS = 0.5
logger = logging.getLogger("routatic_asgi")


@dataclass(frozen=True, slots=True)
class Record:
    """Something is unusable: why, since when, until when (None: until cleared).

    `asked`: the upstream itself asked for this wait (a long Retry-After, a usage limit),
    as opposed to a wait the breaker chose after failures.
    """

    reason: str
    since: float
    until: float | None = None
    failures: int = 0
    asked: bool = False

    @property
    def opened(self) -> bool:
        """A wait is set; a breaker's record that only counts failures ends where it began."""
        return self.until != self.since

    def in_force(self, now: float) -> bool:
        return self.until is None or now < self.until

    def outlasts(self, other: Record) -> bool:
        if self.until is None:
            return True
        return other.until is not None and self.until >= other.until

    def to_json(self) -> bytes:
        data: dict[str, Any] = {"reason": self.reason, "since": self.since}
        if self.until is not None:
            data["until"] = self.until
        if self.failures:
            data["failures"] = self.failures
        if self.asked:
            data["asked"] = True
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Record | None:
        """The record stored as `raw`; None for anything unreadable (as if nothing were stored)."""
        try:
            data = orjson.loads(raw)
            return cls(
                str(data["reason"]),
                float(data["since"]),
                None if data.get("until") is None else float(data["until"]),
                int(data.get("failures", 0)),
                data.get("asked") is True,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


class StateStore(Protocol):
    """Breaker and credential state. Every method is safe under concurrent replicas."""

    @property
    def degraded(self) -> bool:
        """True while a shared store is unreachable and this process serves from memory."""
        ...

    async def get(self, key: str) -> Record | None: ...

    async def put(self, key: str, record: Record, *, now: float, linger: float = 0.0) -> Record:
        """Store `record` unless the one in place outlasts it; return the record in force."""
        ...

    async def delete(self, key: str) -> None: ...

    async def claim(self, key: str, *, ttl: float) -> bool:
        """Take the lease `key` for `ttl` seconds if nobody holds it."""
        ...

    async def release(self, key: str) -> None: ...

    async def records(self) -> dict[str, Record]:
        """Every record still stored, by key."""
        ...

    async def ping(self) -> bool:
        """Reach the store now; False (and `degraded`) when it cannot be reached."""
        ...

    async def aclose(self) -> None: ...

    async def keep(self, key: str, value: bytes, *, ttl: float) -> None:
        """Hold `value` for `ttl` seconds: a bounded cache, which may forget it sooner."""
        ...

    async def recall(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The values still held for `keys`, by key."""
        ...


_LONGEST = 366 * 86400.0  # no record outlives a year


def _expiry(record: Record, now: float, linger: float) -> float | None:
    """Seconds from now until the store forgets `record` (None: never)."""
    if record.until is None:
        return linger if linger > 0 else None
    # Bounded whatever a record says: Redis refuses an expiry it cannot hold, and one upstream
    # header must never be what marks the store degraded.
    seconds = record.until - now + linger
    return min(max(seconds, 0.001), _LONGEST) if math.isfinite(seconds) else _LONGEST


_FIRST_SWEEP = 1024  # records held before the first sweep of expired ones
# What MemoryStore.keep holds at most: the oldest values go first beyond either bound.
KEPT_VALUES = 20_000
KEPT_BYTES = 64 * 1024 * 1024


class MemoryStore:
    """In-process state: the default for one process, and Redis's stand-in when it is down."""

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        kept_values: int = KEPT_VALUES,
        kept_bytes: int = KEPT_BYTES,
    ) -> None:
        self.clock = clock
        self.kept_values, self.kept_bytes = kept_values, kept_bytes
        self._records: dict[str, tuple[Record, float | None]] = {}
        self._leases: dict[str, float] = {}
        self._sweep_at = _FIRST_SWEEP
        self._kept: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._kept_bytes = 0

    @property
    def degraded(self) -> bool:
        return False

    async def get(self, key: str) -> Record | None:
        return self._get(key)

    def _get(self, key: str) -> Record | None:
        entry = self._records.get(key)
        if entry is None:
            return None
        record, expires = entry
        if expires is not None and self.clock() >= expires:
            del self._records[key]
            return None
        return record

    async def put(self, key: str, record: Record, *, now: float, linger: float = 0.0) -> Record:
        current = self._get(key)
        if current is not None and current.outlasts(record):
            return current
        ttl = _expiry(record, now, linger)
        if key not in self._records and len(self._records) >= self._sweep_at:
            self._sweep()
        self._records[key] = (record, None if ttl is None else self.clock() + ttl)
        return record

    def _sweep(self) -> None:
        """Drop every expired record once the records have doubled since the last sweep:
        keys hold client-chosen model names and credential fingerprints, so records that
        nobody reads again must still leave memory when they expire."""
        now = self.clock()
        expired = [k for k, (_, expires) in self._records.items() if expires and now >= expires]
        for key in expired:
            del self._records[key]
        self._sweep_at = max(2 * len(self._records), _FIRST_SWEEP)

    async def delete(self, key: str) -> None:
        self._records.pop(key, None)

    async def claim(self, key: str, *, ttl: float) -> bool:
        now = self.clock()
        if self._leases.get(key, 0.0) > now:
            return False
        self._leases[key] = now + ttl
        return True

    async def release(self, key: str) -> None:
        self._leases.pop(key, None)

    async def records(self) -> dict[str, Record]:
        found = {key: self._get(key) for key in list(self._records)}
        return {key: record for key, record in found.items() if record is not None}

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None

    async def keep(self, key: str, value: bytes, *, ttl: float) -> None:
        self._forget(key)
        self._kept[key] = (value, self.clock() + ttl)
        self._kept_bytes += len(value)
        while len(self._kept) > self.kept_values or self._kept_bytes > self.kept_bytes:
            self._forget(next(iter(self._kept)))

    def _forget(self, key: str) -> None:
        entry = self._kept.pop(key, None)
        if entry is not None:
            self._kept_bytes -= len(entry[0])

    async def recall(self, keys: Sequence[str]) -> dict[str, bytes]:
        now, found = self.clock(), {}
        for key in keys:
            entry = self._kept.get(key)
            if entry is not None and now < entry[1]:
                found[key] = entry[0]
            elif entry is not None:
                self._forget(key)
        return found


# KEYS[1] the record; ARGV[1] the new record as JSON; ARGV[2] its TTL in ms (0: none).
# Keep the stored record when it ends later than the new one or never ends; an unreadable
# one is replaced.
_PUT = """
local old = redis.call('GET', KEYS[1])
if old then
  local readable, o = pcall(cjson.decode, old)
  local n = cjson.decode(ARGV[1])
  if readable and type(o) == 'table' and n['until'] ~= nil
     and (o['until'] == nil or o['until'] >= n['until']) then
    return old
  end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return ARGV[1]
"""


class RedisStore:
    """State shared by every replica through Redis; in-process memory while Redis is down.

    `url` is a redis:// URL; a `key_prefix` query parameter (default `routatic:`) keeps
    deployments sharing one Redis apart, and `staleness` (seconds, default 0.5; 0 asks Redis
    on every read) bounds how long a record another replica wrote can go unseen here.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        retry_every: float = 5.0,
        timeout: float = 0.5,
        client: Any = None,
    ) -> None:
        self.url, self.prefix, self.staleness = parse_state_url(url)
        self.clock = clock
        self.retry_every = retry_every
        self.timeout = timeout
        self.memory = MemoryStore(clock=clock)
        self._client = client
        self._put_script: Any = None
        self._down_until = 0.0
        self._degraded = False
        # key -> until when its absence in Redis is trusted without asking again
        self._absent_until: dict[str, float] = {}
        # key -> the GET in flight for it, shared by the requests that want it meanwhile
        self._reading: dict[str, asyncio.Future[Any]] = {}

    @property
    def degraded(self) -> bool:
        return self._degraded

    def _redis(self) -> Any:
        # Made on first use, inside the serving event loop.
        if self._client is None:
            from redis.asyncio import Redis

            self._client = Redis.from_url(
                self.url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout
            )
        if self._put_script is None:
            self._put_script = self._client.register_script(_PUT)
        return self._client

    async def _shared(self, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        """Run `call` on Redis; on failure return `fallback` and serve from memory a while."""
        from redis.exceptions import RedisError

        if self._degraded and self.clock() < self._down_until:
            return fallback
        try:
            result = await call()
        except (RedisError, OSError, TimeoutError) as exc:
            if not self._degraded:
                logger.warning(
                    "state store unreachable (%s); serving from memory", type(exc).__name__
                )
            self._degraded = True
            self._down_until = self.clock() + self.retry_every
            return fallback
        if self._degraded:
            logger.warning("state store reachable again")
            self._degraded = False
        return result

    def _key(self, kind: str, key: str) -> str:
        return f"{self.prefix}{kind}:{key}"

    async def get(self, key: str) -> Record | None:
        local = await self.memory.get(key)
        if local is None and self._absent_until.get(key, 0.0) > self.clock():
            return None
        raw = await self._read(key)
        if raw is _MISSING:
            return local
        record = None if raw is None else Record.from_json(raw)
        if record is None and self.staleness > 0:
            if len(self._absent_until) >= _ABSENT_LIMIT:  # client fingerprints are unbounded
                self._absent_until.clear()
            self._absent_until[key] = self.clock() + self.staleness
        return record

    async def _read(self, key: str) -> Any:
        """GET the key; requests arriving while a GET of it is in flight share that one, so
        the many requests that find a staleness ended at once cost one round trip."""
        pending = self._reading.get(key)
        if pending is None:
            get = self._shared(lambda: self._redis().get(self._key("rec", key)), _MISSING)
            pending = self._reading[key] = asyncio.ensure_future(get)
            pending.add_done_callback(lambda done: self._done_reading(key, done))
        # Shielded: one request cancelled (its client gone) does not cancel the others' read.
        return await asyncio.shield(pending)

    def _done_reading(self, key: str, done: asyncio.Future[Any]) -> None:
        if self._reading.get(key) is done:
            del self._reading[key]

    async def put(self, key: str, record: Record, *, now: float, linger: float = 0.0) -> Record:
        local = await self.memory.put(key, record, now=now, linger=linger)
        self._forget_reads(key)
        ttl = _expiry(record, now, linger)
        millis = 0 if ttl is None else max(int(ttl * 1000), 1)

        async def call() -> Any:
            self._redis()
            return await self._put_script(
                keys=[self._key("rec", key)], args=[record.to_json(), millis]
            )

        raw = await self._shared(call, _MISSING)
        stored = None if raw is _MISSING else Record.from_json(raw)
        return stored or local

    def _forget_reads(self, key: str) -> None:
        """After a write here, the next read of `key` asks Redis afresh."""
        self._absent_until.pop(key, None)
        self._reading.pop(key, None)

    async def delete(self, key: str) -> None:
        await self.memory.delete(key)
        self._forget_reads(key)
        await self._shared(lambda: self._redis().delete(self._key("rec", key)), None)

    async def claim(self, key: str, *, ttl: float) -> bool:
        millis = max(int(ttl * 1000), 1)
        taken = await self._shared(
            lambda: self._redis().set(self._key("lease", key), b"1", nx=True, px=millis), _MISSING
        )
        if taken is _MISSING:
            return await self.memory.claim(key, ttl=ttl)
        return bool(taken)

    async def release(self, key: str) -> None:
        await self.memory.release(key)
        await self._shared(lambda: self._redis().delete(self._key("lease", key)), None)

    async def records(self) -> dict[str, Record]:
        async def call() -> dict[str, Record]:
            client = self._redis()
            pattern = self._key("rec", "*")
            keys = [key async for key in client.scan_iter(match=pattern, count=500)]
            values = await client.mget(keys) if keys else []
            start = len(self._key("rec", ""))
            found = {
                key.decode()[start:]: Record.from_json(raw)
                for key, raw in zip(keys, values, strict=True)
                if raw is not None
            }
            return {key: record for key, record in found.items() if record is not None}

        found = await self._shared(call, None)
        return await self.memory.records() if found is None else found

    async def ping(self) -> bool:
        """Reach Redis now (ignoring the retry pause); True when it answered."""
        self._down_until = 0.0
        return bool(await self._shared(lambda: self._redis().ping(), False))

    async def aclose(self) -> None:
        client, self._client, self._put_script = self._client, None, None
        if client is not None:
            await client.aclose()

    async def keep(self, key: str, value: bytes, *, ttl: float) -> None:
        millis = max(int(ttl * 1000), 1)
        stored = await self._shared(
            lambda: self._redis().set(self._key("kept", key), value, px=millis), _MISSING
        )
        if stored is _MISSING:
            await self.memory.keep(key, value, ttl=ttl)

    async def recall(self, keys: Sequence[str]) -> dict[str, bytes]:
        if not keys:
            return {}
        names = [self._key("kept", key) for key in keys]
        values = await self._shared(lambda: self._redis().mget(names), _MISSING)
        # What was kept here while Redis was down is still found.
        found = await self.memory.recall(keys)
        if values is not _MISSING:
            found.update((k, bytes(v)) for k, v in zip(keys, values, strict=True) if v is not None)
        return found


class _Missing:
    pass


_MISSING: Any = _Missing()
_ABSENT_LIMIT = 10_000
_OPTIONS = ("key_prefix", "staleness")


def parse_state_url(url: str) -> tuple[str, str, float]:
    """(the URL for redis-py, the key prefix, the staleness) from a state URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    options = {name: value for name, value in query if name in _OPTIONS}
    rest = urlencode([(name, value) for name, value in query if name not in _OPTIONS])
    # Errors never quote the URL: it may hold a password.
    try:
        staleness = float(options.get("staleness", DEFAULT_STALENESS))
    except ValueError:
        raise ValueError("state staleness must be a number of seconds, 0 to 60") from None
    if not 0 <= staleness <= 60:
        raise ValueError("state staleness must be 0 to 60 seconds")
    prefix = options.get("key_prefix", "routatic:")
    return urlunsplit(parts._replace(query=rest)), prefix, staleness


def state_kind(state: str) -> Literal["memory", "redis"]:
    """Which kind of store a configuration's `state:` names: what is shown of it, since a
    Redis URL may hold a password."""
    return "memory" if state == "memory" else "redis"


def store_for(state: str, *, clock: Clock = SYSTEM_CLOCK) -> StateStore:
    """The store a configuration's `state:` names: `memory` or a redis:// URL."""
    if state_kind(state) == "memory":
        return MemoryStore(clock=clock)
    return RedisStore(state, clock=clock)
