"""`WatchedStore`: breaker and credential metrics, heard at the state store's boundary.

The breaker and the credential short-circuit keep their state in a `StateStore`; wrapping
that store lets telemetry see every transition without reaching into either layer. A
breaker record written means open, a won probe lease means half-open, a deleted record means
closed; a credential record means rejected (no end) or exhausted (until its reset). State that
changes with time alone (a cooldown running out) is recomputed before every scrape. Transitions
are counted where they happen (so replicas' counts add up) and added as events to the current
span. It changes nothing it forwards and never sees a secret (credential keys hold an id and a
fingerprint).
"""

from __future__ import annotations

import re

from opentelemetry import trace

from routatic_asgi.breaker import PREFIX as BREAKER
from routatic_asgi.breaker import STREAK_MEMORY
from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.short_circuit import PREFIX as CREDENTIAL
from routatic_asgi.state import Record, StateStore
from routatic_asgi.telemetry.metrics import Metrics

__all__ = ["WatchedStore", "breaker_labels", "credential_labels"]


# Records known here before the first sweep for ones the store has forgotten.
_FIRST_SWEEP = 1024


def _forgotten(record: Record, now: float, linger: float) -> bool:
    """Whether the store has let `record` expire: `linger` after its end, or never."""
    return record.until is not None and now >= record.until + linger


# How bad each breaker phase is, to show one state for the keys of a provider/model pair.
_SEVERITY = {"closed": 0, "half_open": 1, "open": 2}
_KEY_INDEX = re.compile(r"#\d+$")


def breaker_labels(target_key: str) -> tuple[str, str]:
    """(provider, model) of a breaker's target key "provider/model" or "provider/model#i"."""
    provider, _, model = target_key.partition("/")
    return provider, _KEY_INDEX.sub("", model)


def credential_labels(state_key: str) -> tuple[str, str]:
    """(provider, provider#index) of a credential's state key "provider#index:fingerprint"."""
    credential = state_key.rpartition(":")[0] or state_key
    return credential.partition("#")[0], credential


def _breaker_phase(record: Record | None, now: float) -> str:
    if record is None or record.failures == 0 or not record.opened:
        return "closed"
    return "open" if record.in_force(now) else "half_open"


def _credential_state(record: Record | None, now: float) -> str:
    if record is None or not record.in_force(now):
        return "ok"
    return "rejected" if record.until is None else "exhausted"


class WatchedStore:
    """A `StateStore` that forwards every call and records what the calls mean."""

    def __init__(self, store: StateStore, metrics: Metrics, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store, self.metrics, self.clock = store, metrics, clock
        self.breakers: dict[str, Record | None] = {}  # by target key
        self.pairs: dict[tuple[str, str], set[str]] = {}  # target keys by (provider, model)
        self.half_open: set[str] = set()
        self.credentials: dict[str, Record | None] = {}  # by state key
        self.sweep_at = _FIRST_SWEEP
        self.was_degraded: bool | None = None  # as last published
        metrics.before_scrape.append(self.refresh)

    @property
    def degraded(self) -> bool:
        return self.store.degraded

    async def get(self, key: str) -> Record | None:
        record = await self.store.get(key)
        self._saw(key, record)
        return record

    async def put(self, key: str, record: Record, *, now: float, linger: float = 0.0) -> Record:
        in_force = await self.store.put(key, record, now=now, linger=linger)
        if key.startswith(BREAKER):
            target = key.removeprefix(BREAKER)
            # A record that only counts failures below the threshold opens nothing.
            if in_force.opened and self._phase(target, now) != "open":
                self._transition(target, "open", in_force.reason)
        self._saw(key, in_force)
        return in_force

    async def delete(self, key: str) -> None:
        await self.store.delete(key)
        if key.startswith(BREAKER):
            target = key.removeprefix(BREAKER)
            if self._phase(target, self.clock()) != "closed":
                self._transition(target, "closed", "recovered")
        self._saw(key, None)

    async def claim(self, key: str, *, ttl: float) -> bool:
        won = await self.store.claim(key, ttl=ttl)
        if won and key.startswith(BREAKER):
            target = key.removeprefix(BREAKER)
            self._transition(target, "half_open", "probe")
            self.half_open.add(target)
            self._publish_breaker(target, self.clock())
        self._degraded()
        return won

    async def release(self, key: str) -> None:
        await self.store.release(key)
        self.half_open.discard(key.removeprefix(BREAKER))

    async def records(self) -> dict[str, Record]:
        return await self.store.records()

    async def ping(self) -> bool:
        reached = await self.store.ping()
        self._degraded()
        return reached

    async def aclose(self) -> None:
        await self.store.aclose()

    # --- what the calls mean ----------------------------------------------------------------

    def _phase(self, target: str, now: float) -> str:
        if target in self.half_open:
            return "half_open"
        return _breaker_phase(self.breakers.get(target), now)

    def _transition(self, target: str, to_state: str, reason: str) -> None:
        provider, model = breaker_labels(target)
        self.metrics.breaker_transition(provider, model, to_state)
        trace.get_current_span().add_event(
            "routatic.breaker", {"target": target, "to_state": to_state, "reason": reason}
        )

    def _saw(self, key: str, record: Record | None) -> None:
        """Publish what a record read or written means, when it differs from the last one seen
        (most reads are of a closed breaker's missing record: nothing to publish)."""
        self._degraded()
        if key.startswith(BREAKER):
            target = key.removeprefix(BREAKER)
            if self.breakers.get(target) == record:  # a closed breaker unknown here: None
                return
            now = self.clock()
            if record is None:  # closed: published, then forgotten (model names are the
                self._forget(target)  # client's to choose, without end)
            else:
                if target not in self.breakers:
                    self.pairs.setdefault(breaker_labels(target), set()).add(target)
                    self._sweep(now)
                self.breakers[target] = record
                if record.in_force(now):
                    self.half_open.discard(target)
            self._publish_breaker(target, now)
        elif key.startswith(CREDENTIAL):
            state_key = key.removeprefix(CREDENTIAL)
            if self.credentials.get(state_key) == record:  # clients' own: None unless marked
                return
            if record is None:
                self.credentials.pop(state_key, None)
            else:
                if state_key not in self.credentials:
                    self._sweep(self.clock())
                self.credentials[state_key] = record
            provider, credential = credential_labels(state_key)
            self.metrics.credential(provider, credential, _credential_state(record, self.clock()))

    def _forget(self, target: str) -> None:
        self.breakers.pop(target, None)
        self.half_open.discard(target)
        labels = breaker_labels(target)
        keys = self.pairs.get(labels)
        if keys is not None:
            keys.discard(target)
            if not keys:
                del self.pairs[labels]

    def _sweep(self, now: float) -> None:
        """Forget what the store has forgotten (records past their end and linger), once the
        records known here have doubled since the last sweep: memory follows the store's,
        at a cost spread thin over the writes."""
        if len(self.breakers) + len(self.credentials) < self.sweep_at:
            return
        for target, record in list(self.breakers.items()):
            if record is None or _forgotten(record, now, STREAK_MEMORY):
                self._forget(target)
                self._publish_breaker(target, now)  # closed, as far as this key goes
        for state_key, record in list(self.credentials.items()):
            if record is None or _forgotten(record, now, 0.0):  # a cooldown ends at its reset
                del self.credentials[state_key]
                self.metrics.credential(*credential_labels(state_key), "ok")
        self.sweep_at = max(2 * (len(self.breakers) + len(self.credentials)), _FIRST_SWEEP)

    def _publish_breaker(self, target: str, now: float) -> None:
        """One state per provider/model: the worst of its keys' breakers."""
        labels = breaker_labels(target)
        keys = self.pairs.get(labels, set()) | {target}
        worst = max((self._phase(key, now) for key in keys), key=_SEVERITY.__getitem__)
        self.metrics.breaker(*labels, worst)

    def _degraded(self) -> None:
        # Every read passes here: the gauge is set only when the state changes.
        degraded = self.store.degraded
        if degraded is not self.was_degraded:
            self.was_degraded = degraded
            self.metrics.degraded(degraded)

    def refresh(self) -> None:
        """Recompute what time alone changes: cooldowns that ran out, resets that came."""
        now = self.clock()
        self.sweep_at = 0  # a scrape forgets what the store has forgotten
        self._sweep(now)
        for keys in list(self.pairs.values()):
            self._publish_breaker(next(iter(keys)), now)
        for state_key, record in list(self.credentials.items()):
            provider, credential = credential_labels(state_key)
            self.metrics.credential(provider, credential, _credential_state(record, now))
        self._degraded()
