"""Session affinity: which key of a pool, and which member of a group, a session prefers.

Rendezvous (highest random weight) hashing: every choice gets a score from a hash of the
session and the choice, and the session tries choices best score first. The inner layers
skip a bad or cooling key, so a session lands on the best *healthy* choice; when one goes
bad only the sessions that preferred it move, each to its own second choice, and they stay
there while it is bad. With weights, a choice wins new sessions in proportion to its weight.

`FailoverHold` is the optional `resilience.affinity.hold`: a session that failed over keeps
its fallback first until the primary has not been seen failing for `hold` seconds, so a
flapping primary does not make it bounce between two cold caches.

Pure decisions with an injected clock; the hold's memory is per process and bounded. Nothing
here reads breaker or credential state, and nothing here performs I/O.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from routatic_asgi.attempt import Attempt, Target
from routatic_asgi.classify import Kind

__all__ = ["FailoverHold", "rendezvous", "seed_of"]

Choice = TypeVar("Choice")
_T = TypeVar("_T")
Clock = Callable[[], float]

_TWO_64 = float(2**64)


def seed_of(name: str) -> bytes:
    """A choice's fixed identity in the hash: the same in every process and replica."""
    return hashlib.blake2b(name.encode(), digest_size=16).digest()


def _unit(session: bytes, seed: bytes) -> float:
    """A uniform number in (0, 1) for this session and choice."""
    digest = hashlib.blake2b(session, digest_size=8, key=seed).digest()
    return (int.from_bytes(digest, "big") + 0.5) / _TWO_64


def rendezvous(
    session: bytes, choices: Sequence[Choice], seeds: Sequence[bytes], weights: Sequence[float]
) -> list[Choice]:
    """`choices` best first for `session`; choice i wins with probability w_i / sum(w)."""
    if len(choices) < 2:
        return list(choices)
    scores = [
        -weight / math.log(_unit(session, seed))
        for seed, weight in zip(seeds, weights, strict=True)
    ]
    order = sorted(range(len(choices)), key=lambda i: scores[i], reverse=True)
    return [choices[i] for i in order]


# Outcomes that say a target is unhealthy right now (not the request's fault).
_UNHEALTHY = frozenset({Kind.TRANSIENT, Kind.EXHAUSTED, Kind.AUTH})
_UNHEALTHY_SKIPS = frozenset(
    {"breaker_open", "breaker_probing", "credential_auth", "credential_exhausted"}
)


def _unhealthy(attempt: Attempt) -> bool:
    outcome = attempt.outcome
    if outcome is None:
        return False
    if outcome.kind is Kind.SKIPPED:
        return outcome.reason in _UNHEALTHY_SKIPS
    return outcome.kind in _UNHEALTHY


@dataclass(slots=True)
class _Held:
    primary: str  # Target.key the session prefers
    fallback: str  # Target.key it failed over to
    at: float


class FailoverHold:
    """Which sessions stay on their fallback, and until when. Lives as long as the app."""

    def __init__(self, hold: float, *, clock: Clock, limit: int = 50_000) -> None:
        self.hold, self.clock, self.limit = hold, clock, limit
        self._held: dict[str, _Held] = {}
        self._failing: dict[str, float] = {}  # Target.key -> when last seen unhealthy

    def arrange(self, session: str, targets: list[Target]) -> list[Target]:
        """`targets` with the session's held fallback first, while its hold lasts."""
        held = self._held.get(session) if self.hold > 0 else None
        if held is None or not targets or targets[0].key != held.primary:
            return targets
        since = max(held.at, self._failing.get(held.primary, 0.0))
        if self.clock() >= since + self.hold:
            del self._held[session]
            return targets
        fallback = next((t for t in targets if t.key == held.fallback), None)
        if fallback is None:
            return targets
        return [fallback, *(t for t in targets if t is not fallback)]

    def learn(self, session: str, attempts: Sequence[Attempt]) -> None:
        """After a request: note unhealthy targets, and hold a session that failed over."""
        if self.hold <= 0 or not attempts:
            return
        now = self.clock()
        for attempt in attempts:
            if _unhealthy(attempt):
                self._remember(self._failing, attempt.target.key, now)
        served = next((a for a in attempts if a.succeeded), None)
        if served is None:
            return
        held = self._held.get(session)
        if held is not None and served.target.key in (held.fallback, held.primary):
            if served.target.key == held.primary:
                del self._held[session]
            return
        first = attempts[0]
        if served is not first and _unhealthy(first):
            primary = held.primary if held is not None else first.target.key
            self._remember(self._held, session, _Held(primary, served.target.key, now))

    def _remember(self, book: dict[str, _T], key: str, value: _T) -> None:
        book.pop(key, None)  # re-inserted last: the oldest entries go first when full
        book[key] = value
        while len(book) > self.limit:
            del book[next(iter(book))]

