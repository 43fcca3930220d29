"""`CredentialMarks`: the credential layer's memory of keys that are rejected or used up.

A mark is a `Record` in the `StateStore`, under the credential's id and a fingerprint of its
secret (a new key starts clean): bad (rejected: no end) or cooling (used up: until its
reset). Every mark this layer makes, clears or reads is announced on its `Board`
(transitions.py), so telemetry never reads these records or their keys. This module is the
only one that knows those keys; it never stores, logs or shows a secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.types import Scope

from routatic_asgi.attempt import Attempt, Credential, proxy_key_in_authorization
from routatic_asgi.classify import Kind, Outcome, Reason, depleted_until
from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.state import Record, StateStore
from routatic_asgi.transitions import Announce, Board, CredentialState, Subject

__all__ = ["CredentialMarks", "credential_record", "credential_state"]

PREFIX = "credential:"
RECHECK = ":recheck"  # the lease of a used-up credential's recheck
# A rejected key is tried again after a day at the latest, so a mark cannot outlive a fix.
REJECTED_MEMORY = 86400.0


def credential_record(
    outcome: Outcome, headers: Mapping[str, str], now: float, quota_cooldown: float
) -> Record | None:
    """What an attempt's outcome says about its credential (None: nothing to remember)."""
    if outcome.kind is Kind.AUTH:
        return Record(outcome.reason, now, None)
    if outcome.kind is Kind.EXHAUSTED:
        until = outcome.reset_at if outcome.reset_at and outcome.reset_at > now else None
        return Record(outcome.reason, now, until or now + quota_cooldown)
    if outcome.kind is Kind.SUCCESS:
        until = depleted_until(headers, now)
        return None if until is None else Record(Reason.DEPLETED, now, until)
    return None


def credential_state(record: Record | None, now: float) -> CredentialState:
    if record is None or not record.in_force(now):
        return CredentialState.OK
    return CredentialState.BAD if record.until is None else CredentialState.COOLING


def skip_reason(record: Record) -> Reason:
    return Reason.CREDENTIAL_AUTH if record.until is None else Reason.CREDENTIAL_EXHAUSTED


def _fingerprint(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()[:16]


def subject_of(credential: Credential) -> Subject:
    key = f"{credential.id}:{_fingerprint(credential.secret.encode())}"
    return Subject(key, credential.provider, credential.id)


def client_subject(scope: Scope, provider: str) -> Subject | None:
    """The credential a client sends a passthrough provider, if it sends one: known by a
    fingerprint of it, never by the credential itself."""
    headers = dict(scope["headers"])
    secret = headers.get(b"x-api-key")
    if secret is None and not proxy_key_in_authorization(scope):
        secret = headers.get(b"authorization")  # unless it carried the proxy key
    if not secret:
        return None
    name = f"{provider}#client"
    return Subject(f"{name}:{_fingerprint(secret)}", provider, name)


class CredentialMarks:
    """Marks kept in `store`, announced on `board`."""

    def __init__(
        self,
        store: StateStore,
        board: Board,
        *,
        quota_cooldown: float = 3600.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store, self.board, self.clock = store, board, clock
        self.quota_cooldown = quota_cooldown

    async def read(self, subject: Subject) -> Record | None:
        """The mark in force on `subject`, if any (one the store holds past its end is none)."""
        record = await self.store.get(PREFIX + subject.key)
        if record is None and self.board.subject(subject.key) is None:
            return None  # every request's case: nothing marked, nothing known
        now = self.clock()
        state = credential_state(record, now)
        self._announce(self.board.learn, subject, state, record, now)
        return record if state is not CredentialState.OK else None

    async def claim_recheck(self, subject: Subject, ttl: float) -> bool:
        return await self.store.claim(PREFIX + subject.key + RECHECK, ttl=ttl)

    async def mark(self, subject: Subject, attempt: Attempt) -> None:
        """Remember what the attempt's outcome says about its credential."""
        outcome = attempt.outcome
        if outcome is None or (attempt.target.passthrough and outcome.kind is Kind.AUTH):
            return
        now = self.clock()
        record = credential_record(outcome, attempt.upstream_headers, now, self.quota_cooldown)
        if record is None:
            if attempt.probe and outcome.kind is Kind.SUCCESS:  # a recheck went through
                await self.store.delete(PREFIX + subject.key)
                self.board.enter(subject, CredentialState.OK, "recovered", now=now)
            return
        linger = REJECTED_MEMORY if record.until is None else 0.0
        in_force = await self.store.put(PREFIX + subject.key, record, now=now, linger=linger)
        state = credential_state(in_force, now)
        self._announce(self.board.enter, subject, state, in_force, now)

    def _announce(
        self,
        announce: Announce,
        subject: Subject,
        state: CredentialState,
        record: Record | None,
        now: float,
    ) -> None:
        if record is None or state is CredentialState.OK:
            announce(subject, state, "recovered", now=now)
            return
        # A cooling mark lapses at its reset; a bad one is forgotten with its record.
        forgotten = record.since + REJECTED_MEMORY if record.until is None else None
        announce(subject, state, record.reason, now=now, lapses=record.until, forgotten=forgotten)

    async def status(self, credentials: Iterable[Credential]) -> list[dict[str, Any]]:
        """Every credential: provider, index, last 4 characters, state, reason, since, until."""
        rows = []
        for credential in credentials:
            record = await self.read(subject_of(credential))
            state = credential_state(record, self.clock())
            rows.append(
                {
                    "provider": credential.provider,
                    "index": credential.index,
                    "key": credential.hint,
                    "source": credential.source,
                    "state": state.value,
                    "reason": record.reason if record else None,
                    "since": record.since if record else None,
                    "until": record.until if record else None,
                    "consecutive_failures": 1 if record else 0,
                }
            )
        return rows

    async def reset(self, name: str) -> list[str]:
        """Clear by hand the marks of `name`: `provider#N`, `provider#client` (clients' own), or
        `provider` (every one of its keys); the credential ids cleared, each announced."""
        prefix = f"{name}:" if "#" in name else f"{name}#"
        return await self._clear(lambda key: key.startswith(prefix))

    async def forget(self, providers: Iterable[str]) -> None:
        """Clear the marks of `providers` (their configuration changed: they start afresh)."""
        prefixes = tuple(f"{provider}#" for provider in providers)
        if prefixes:
            await self._clear(lambda key: key.startswith(prefixes))

    async def _clear(self, chosen: Callable[[str], bool]) -> list[str]:
        cleared = []
        for stored in await self.store.records():
            key = stored.removeprefix(PREFIX)
            if not stored.startswith(PREFIX) or not chosen(key):
                continue
            await self.store.delete(stored)
            cleared.append(key.split(":")[0])  # the id, never the fingerprint
            subject = self.board.subject(key)
            if subject is not None:
                self.board.enter(subject, CredentialState.OK, "reset", now=self.clock())
        return sorted(dict.fromkeys(cleared))
