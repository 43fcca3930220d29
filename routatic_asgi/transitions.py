"""What the breaker and credential layers announce when a state changes, and who listens.

As pybreaker's listeners: a layer tells a `Board` each state it enters or learns, and the
board tells its listeners (telemetry) the transitions, so no listener reads the layer's
records or parses its keys. A breaker is closed, open or half-open (`Phase`); a credential is
ok, cooling (used up until its reset) or bad (rejected) (`CredentialState`).

Each transition says whether this process made it (`here`: it opened a breaker after a
failure, won a probe, closed it after a success, marked a key) or learned it. A state is
learned three ways:

- from the store: another replica opened or closed a breaker, or marked a key; the layer
  reads that record on its next request for it, and the board announces the state read when
  it differs from the one last announced;
- from time: an open breaker goes half-open when its cooldown ends, a cooling key is ok at its
  reset, and a state is forgotten (closed, ok) when the store forgets its record; `tick(now)`
  (telemetry calls it before every scrape) announces those;
- never from what a listener guesses.

The board remembers only what is not at rest (a closed breaker and an ok key are forgotten
once announced), and drops what the store has forgotten, so its memory follows the store's.
It is shared by every chain a reload builds. A broken listener is logged, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

__all__ = ["Announce", "Board", "CredentialState", "Listener", "Phase", "Subject", "Transition"]

logger = logging.getLogger("routatic_asgi")
# States remembered before the first sweep of ones the store has forgotten.
_FIRST_SWEEP = 1024


class Phase(StrEnum):
    """A breaker's state."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CredentialState(StrEnum):
    """A credential's state."""

    OK = "ok"
    COOLING = "cooling"  # used up, until its reset
    BAD = "bad"  # rejected, until refreshed, reloaded or forgotten


@dataclass(frozen=True, slots=True)
class Subject:
    """What a state belongs to, as its layer names it: a key of its own (a breaker's target key,
    a credential's id and fingerprint) and bounded labels for metrics."""

    key: str
    provider: str
    name: str  # a breaker's model; a credential's id (provider#index, provider#client)


@dataclass(frozen=True, slots=True)
class Transition:
    kind: str  # "breaker" or "credential"
    subject: Subject
    state: str  # a Phase or a CredentialState
    reason: str
    here: bool  # made by this process's own call, not learned from the store or from time


Listener = Callable[[Transition], None]


class Announce(Protocol):
    """`Board.enter` or `Board.learn`: how a layer tells its board a subject's state."""

    def __call__(
        self,
        subject: Subject,
        state: str,
        reason: str,
        *,
        now: float,
        lapses: float | None = None,
        forgotten: float | None = None,
    ) -> None: ...


@dataclass(slots=True)
class _Known:
    subject: Subject
    state: str
    lapses: float | None  # when the state lapses by itself (open: half-open; cooling: ok)
    forgotten: float | None  # when the store forgets the record behind it (then at rest)
    lapsed: bool = False  # the state was reached by time, not announced by the layer


@dataclass(slots=True)
class Board:
    """The states one kind of layer last announced, by subject key, and its listeners.

    `rest` is the state nothing is remembered for (closed, ok); `lapsed` the state one with an
    end reaches at that end (half-open, ok).
    """

    kind: str
    rest: str
    lapsed: str
    listeners: list[Listener] = field(default_factory=list)
    _known: dict[str, _Known] = field(default_factory=dict)
    _sweep_at: int = _FIRST_SWEEP

    @classmethod
    def for_breakers(cls) -> Board:
        return cls("breaker", Phase.CLOSED, Phase.HALF_OPEN)

    @classmethod
    def for_credentials(cls) -> Board:
        return cls("credential", CredentialState.OK, CredentialState.OK)

    def subject(self, key: str) -> Subject | None:
        """The subject under `key`, while its state is remembered (not at rest)."""
        known = self._known.get(key)
        return None if known is None else known.subject

    def enter(
        self,
        subject: Subject,
        state: str,
        reason: str,
        *,
        now: float,
        lapses: float | None = None,
        forgotten: float | None = None,
    ) -> None:
        """This process moved `subject` to `state`. A transition unless the subject is there
        already by an earlier announcement (a late failure of an open breaker, a second
        request that failed beside the first); one time moved it to is entered anew (the
        probe of a breaker whose cooldown ended)."""
        known = self._caught_up(subject.key, now)
        # Already there by an announcement (a state time reached is entered anew).
        same = known.state == state and not known.lapsed if known else state == self.rest
        self._remember(subject, state, lapses, forgotten, now)
        if not same:
            self._tell(Transition(self.kind, subject, state, reason, here=True))

    def learn(
        self,
        subject: Subject,
        state: str,
        reason: str,
        *,
        now: float,
        lapses: float | None = None,
        forgotten: float | None = None,
    ) -> None:
        """The layer read `subject`'s record and found it in `state` (another replica's doing,
        or time's): announced when it differs from what was last announced."""
        known = self._caught_up(subject.key, now)
        if known is None:
            if state == self.rest:  # every request's case: nothing marked, nothing known
                return
        elif known.state == state:
            if not known.lapsed:  # the same state, perhaps for longer (a later Retry-After)
                known.lapses, known.forgotten = lapses, forgotten
            return
        self._remember(subject, state, lapses, forgotten, now)
        self._tell(Transition(self.kind, subject, state, reason, here=False))

    def tick(self, now: float) -> None:
        """Announce what time alone changed: lapsed states, and states the store forgot."""
        for key in list(self._known):
            self._caught_up(key, now)
        self._sweep_at = max(2 * len(self._known), _FIRST_SWEEP)

    def _caught_up(self, key: str, now: float) -> _Known | None:
        """What is known of `key` once what time changed since is announced (learned)."""
        known = self._known.get(key)
        if known is None:
            return None
        state, by_time = self._now(known, now)
        if not by_time or (known.lapsed and state == known.state):
            return known
        if state == self.rest:
            del self._known[key]
        else:
            known.state, known.lapsed = state, True
        self._tell(Transition(self.kind, known.subject, state, "expired", here=False))
        return self._known.get(key)

    def _now(self, known: _Known, now: float) -> tuple[str, bool]:
        """(the state at `now`, whether time moved it there from the one announced)."""
        if known.forgotten is not None and now >= known.forgotten:
            return self.rest, True
        if known.lapses is not None and now >= known.lapses and known.state != self.lapsed:
            return self.lapsed, True
        return known.state, known.lapsed

    def _remember(
        self,
        subject: Subject,
        state: str,
        lapses: float | None,
        forgotten: float | None,
        now: float,
    ) -> None:
        if state == self.rest:
            self._known.pop(subject.key, None)
            return
        if subject.key not in self._known and len(self._known) >= self._sweep_at:
            # Keys hold client-chosen model names and fingerprints: once the states held have
            # doubled since the last look, what the store has forgotten is forgotten here too.
            self.tick(now)
        self._known[subject.key] = _Known(subject, state, lapses, forgotten)

    def _tell(self, transition: Transition) -> None:
        for listener in self.listeners:
            try:
                listener(transition)
            except Exception:
                logger.exception("state listener failed")
