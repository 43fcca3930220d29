"""`RedisStore`: state shared by every replica through Redis; memory while Redis is down.

Puts are atomic across replicas (one Lua script that never shortens a longer cooldown),
leases are `SET NX PX`, and an absence read from Redis is trusted for `staleness` seconds.
When Redis cannot be reached the store serves from its `MemoryStore` and says so in
`degraded`; a request never fails because Redis is down. Errors never quote the state URL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.state.memory import MemoryStore
from routatic_asgi.state.record import Record, expiry

__all__ = ["DEFAULT_STALENESS", "RedisStore", "parse_state_url"]

T = TypeVar("T")
# How long a record another replica wrote may go unseen (see RedisStore).
DEFAULT_STALENESS = 0.5
logger = logging.getLogger("routatic_asgi")


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
        ttl = expiry(record, now, linger)
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
