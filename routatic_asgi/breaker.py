"""`CircuitBreaker`: leave a failing target alone until it has recovered.

One breaker per `Target.key`, kept in a `StateStore` so replicas share it. Closed: no record,
or one that only counts a streak of failures below `failures`. Open: a record whose cooldown
runs; the target is skipped ("breaker_open") with `retry_after` = the time left. Half-open:
the cooldown has ended; exactly one real request (the one that wins the store's lease)
probes, concurrent ones skip ("breaker_probing"). A success closes the breaker, a failure
reopens it with the next, longer cooldown.

It opens on evidence: after `failures` consecutive failed calls, or at once when the upstream
asks for a wait longer than the router would wait out on the same target (a long
Retry-After, a usage limit). The wait it chooses itself is capped at `probe_max`, so a
recovered target is back in use soon; a wait the upstream asked for is honoured.

Panic: when the router finds every target of a route open on failures alone, it sends the
request to the one that recovers soonest with `attempt.panic` set, and this layer lets it
through (without the probe lease); a target the upstream told to wait is never called early.

The state arithmetic is pure (`phase`, `cooldown`, `tripped`) and takes `now` and the jitter
from the caller. Only transient failures count: a client that went away, a client error, an
unfit answer or a credential problem (the credential layer's business) never opens a breaker.
This layer never calls an upstream of its own: there are no synthetic health checks.

Every state it enters or reads is told to its `Board` (transitions.py), which announces the
transitions to listeners (telemetry); the `breaker:` keys of the store are known here only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from routatic_asgi.attempt import ATTEMPT, Attempt, call_then_act
from routatic_asgi.classify import Kind, Outcome, Reason
from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.config import CooldownConfig
from routatic_asgi.state import MemoryStore, Record, StateStore
from routatic_asgi.transitions import Announce, Board, Phase, Subject

__all__ = ["BreakerPolicy", "CircuitBreaker", "Phase", "cooldown", "phase", "tripped"]

Jitter = Callable[[], float]

PREFIX = "breaker:"
# A breaker's record stays this long after its cooldown, to remember the failure streak.
STREAK_MEMORY = 3600.0
# What a request skipping a target whose probe is in flight is told to wait.
PROBE_WAIT = 1.0


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a breaker opens and for how long."""

    cooldown: CooldownConfig = field(default_factory=CooldownConfig)
    failures: int = 2  # consecutive failed calls that open it
    probe_max: float = 30.0  # the longest wait it chooses itself between probes
    wait_max: float = 5.0  # a Retry-After up to this is waited out by the router, not here


def phase(record: Record | None, now: float) -> Phase:
    if record is None or record.failures == 0 or not record.opened:
        return Phase.CLOSED
    return Phase.OPEN if record.in_force(now) else Phase.HALF_OPEN


def cooldown(
    openings: int,
    retry_after: float | None,
    policy: CooldownConfig,
    jitter: float = 1.0,
    cap: float = math.inf,
) -> float:
    """Seconds to stay open after the `openings`-th opening in a row.

    `max(retry_after, min(base * 2**(n-1), max, cap) * jitter)`: the jitter (0.8-1.0) keeps
    replicas that failed together from probing together and never takes the wait above
    `cap`; the upstream's own wait is a floor.
    """
    exponent = min(max(openings, 1) - 1, 64)
    backoff = min(policy.base * 2.0**exponent, policy.max, cap) * jitter
    return max(retry_after or 0.0, backoff)


def asked_to_wait(outcome: Outcome, wait_max: float) -> bool:
    """The upstream itself says to stay away longer than a retry would wait."""
    if outcome.kind is Kind.EXHAUSTED:
        return True
    return outcome.retry_after is not None and outcome.retry_after > wait_max


def tripped(
    record: Record | None, outcome: Outcome, now: float, policy: BreakerPolicy, jitter: float
) -> Record:
    """The breaker's record after a failure.

    Below `policy.failures` consecutive failures it only counts them (closed), unless the
    upstream asked for a wait. A failure that arrives while the breaker is already open began
    before it opened: it does not lengthen the streak, though its Retry-After may lengthen
    the cooldown.
    """
    previous = record.failures if record is not None else 0
    current = phase(record, now)
    failures = previous if current is Phase.OPEN else previous + 1
    asked = asked_to_wait(outcome, policy.wait_max)
    if failures < policy.failures and not asked and current is not Phase.OPEN:
        return Record(outcome.reason, now, now, failures)
    openings = failures - policy.failures + 1
    seconds = cooldown(openings, outcome.retry_after, policy.cooldown, jitter, policy.probe_max)
    return Record(outcome.reason, now, now + seconds, failures, asked)


def counts_against(attempt: Attempt) -> bool:
    """Whether this attempt's outcome is the target's failure."""
    outcome = attempt.outcome
    if outcome is None:
        return True  # the chain gave no answer at all
    if outcome.kind is Kind.TRANSIENT:
        return True
    # A usage limit on a target with no credential of ours has nobody else to cool.
    target = attempt.target
    return outcome.kind is Kind.EXHAUSTED and target.credential is None and not target.passthrough


def _jitter() -> float:
    return random.uniform(0.8, 1.0)


class CircuitBreaker:
    def __init__(
        self,
        app: ASGIApp,
        *,
        store: StateStore | None = None,
        policy: BreakerPolicy | None = None,
        probe_timeout: float = 600.0,
        clock: Clock = SYSTEM_CLOCK,
        jitter: Jitter = _jitter,
        board: Board | None = None,
    ) -> None:
        self.app = app
        # Where this layer announces its transitions (telemetry listens); shared by reloads.
        self.board = board if board is not None else Board.for_breakers()
        self.clock = clock
        self.store: StateStore = store if store is not None else MemoryStore(clock=clock)
        self.policy = policy or BreakerPolicy()
        self.probe_timeout = probe_timeout
        self.jitter = jitter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        attempt: Attempt | None = scope.get(ATTEMPT)
        if scope["type"] != "http" or attempt is None:
            await self.app(scope, receive, send)
            return
        key = attempt.target.key
        record = await self.store.get(PREFIX + key)
        now = self.clock()
        current = phase(record, now)
        if record is not None or self.board.subject(key) is not None:  # else closed, known so
            self._announce(self.board.learn, attempt, current, record, now)
        if current is Phase.OPEN:
            assert record is not None and record.until is not None
            if not (attempt.panic and not record.asked):
                attempt.may_panic = not record.asked
                wait = record.until - now
                attempt.settle(Outcome(Kind.SKIPPED, Reason.BREAKER_OPEN, retry_after=wait))
                return
        probing = current is Phase.HALF_OPEN
        if probing:
            if not await self.store.claim(PREFIX + key, ttl=self.probe_timeout):
                wait = PROBE_WAIT
                attempt.settle(Outcome(Kind.SKIPPED, Reason.BREAKER_PROBING, retry_after=wait))
                return
            self._announce(self.board.enter, attempt, Phase.HALF_OPEN, record, now, "probe")
        # A probe (or a call in panic) is one call: the router never retries it.
        attempt.probe = attempt.probe or current is not Phase.CLOSED
        try:
            await call_then_act(
                self.app, scope, receive, send, attempt, lambda: self._record(attempt, record)
            )
        finally:
            if probing:
                # A probe that was cancelled or failed lets the next request probe.
                with anyio.CancelScope(shield=True):
                    await self.store.release(PREFIX + key)

    async def _record(self, attempt: Attempt, record: Record | None) -> None:
        key = PREFIX + attempt.target.key
        if attempt.outcome is not None and attempt.outcome.kind is Kind.SUCCESS:
            if record is not None:
                await self.store.delete(key)
                self._announce(
                    self.board.enter, attempt, Phase.CLOSED, None, self.clock(), "recovered"
                )
            return
        if not counts_against(attempt):
            return
        now = self.clock()
        outcome = attempt.outcome or Outcome(Kind.TRANSIENT, Reason.NO_ANSWER)
        opened = tripped(record, outcome, now, self.policy, self.jitter())
        in_force = await self.store.put(key, opened, now=now, linger=STREAK_MEMORY)
        current = phase(in_force, now)
        announce = self.board.enter if current is Phase.OPEN else self.board.learn
        self._announce(announce, attempt, current, in_force, now)

    def _announce(
        self,
        announce: Announce,
        attempt: Attempt,
        state: Phase,
        record: Record | None,
        now: float,
        reason: str | None = None,
    ) -> None:
        """Tell the board the state of the attempt's target, and when the record behind it
        lapses (the cooldown) and is forgotten (the streak's memory)."""
        target = attempt.target
        subject = Subject(target.key, target.provider, target.model)
        if record is None:
            announce(subject, state, reason or "recovered", now=now)
            return
        until = record.until
        forgotten = None if until is None else until + STREAK_MEMORY
        announce(
            subject, state, reason or record.reason, now=now, lapses=until, forgotten=forgotten
        )

    async def status(self, targets: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Every breaker with state, and each of `targets` (target keys) closed if it has none.

        Rows: target, state, reason, since, until, consecutive failures.
        """
        now = self.clock()
        records = {
            key.removeprefix(PREFIX): record
            for key, record in (await self.store.records()).items()
            if key.startswith(PREFIX)
        }
        rows = []
        for target in sorted(records.keys() | set(targets)):
            record = records.get(target)
            rows.append(
                {
                    "target": target,
                    "state": phase(record, now).value,
                    "reason": record.reason if record else None,
                    "since": record.since if record else None,
                    "until": record.until if record else None,
                    "consecutive_failures": record.failures if record else 0,
                }
            )
        return rows

    async def reset(self, name: str) -> list[str]:
        """Close by hand the breakers of `name` (`provider/model`: each of its keys'; or one,
        `provider/model#N`); the target keys closed, each announced."""
        return await self._close(lambda key: key == name or key.startswith(f"{name}#"))

    async def forget(self, providers: Iterable[str]) -> None:
        """Close the breakers of `providers` (their configuration changed: they start afresh)."""
        prefixes = tuple(f"{provider}/" for provider in providers)
        if prefixes:
            await self._close(lambda key: key.startswith(prefixes))

    async def _close(self, chosen: Callable[[str], bool]) -> list[str]:
        closed = []
        for key in await self.store.records():
            target = key.removeprefix(PREFIX)
            if key.startswith(PREFIX) and chosen(target):
                await self.store.delete(key)
                closed.append(target)
                subject = self.board.subject(target)
                if subject is not None:
                    self.board.enter(subject, Phase.CLOSED, "reset", now=self.clock())
        return sorted(closed)
