"""A `Record` of something unusable, and the `StateStore` protocol every store keeps.

Pure data and arithmetic: no I/O, no store. `expiry` says when a store forgets a record, the
same for every backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

__all__ = ["Record", "StateStore", "expiry"]


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


def expiry(record: Record, now: float, linger: float) -> float | None:
    """Seconds from now until the store forgets `record` (None: never)."""
    if record.until is None:
        return linger if linger > 0 else None
    # Bounded whatever a record says: Redis refuses an expiry it cannot hold, and one upstream
    # header must never be what marks the store degraded.
    seconds = record.until - now + linger
    return min(max(seconds, 0.001), _LONGEST) if math.isfinite(seconds) else _LONGEST
