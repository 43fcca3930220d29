"""`MemoryStore`: breaker and credential state in this process.

The default for one process, and Redis's stand-in while it is down. Expired records leave
memory (swept as they double), and kept values are bounded in count and bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.state.record import Record, expiry

__all__ = ["KEPT_BYTES", "KEPT_VALUES", "MemoryStore"]


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
        ttl = expiry(record, now, linger)
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
