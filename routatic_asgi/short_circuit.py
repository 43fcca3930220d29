"""`AuthShortCircuit`: never spend a request on a credential known to be rejected or used up.

Credential state is kept per `Credential.id` (and the secret's fingerprint, so a new key starts
clean) in a `StateStore`. Before an attempt, a target whose credential is marked is skipped:
"credential_auth" for a rejected key, "credential_exhausted" for one cooling until its usage
limit resets. After an attempt:

- auth (401/403): the credential is marked bad; with `key_command` the command runs once
  (10 s timeout) and the same target is tried again with the fresh key;
- exhausted (usage or quota limit): it cools until the stated reset, else `quota_cooldown`;
- success whose rate-limit headers say nothing is left: it cools until the stated reset.

The current key of a credential comes from a `Keyring` (keyring.py); this layer swaps it into
the attempt's target, so the relay sends whatever key is current without knowing about
refreshes.

A passthrough credential (the client's own) is never marked bad: its 401 goes back to the
client. One that is used up cools like ours, keyed by a fingerprint of it.
No secret is logged, stored or shown; only `provider#index` and at most the last 4 characters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from routatic_asgi.attempt import (
    ATTEMPT,
    Attempt,
    Credential,
    call_then_act,
    proxy_key_in_authorization,
)
from routatic_asgi.classify import Kind, Outcome, Reason, depleted_until
from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.keyring import Keyring
from routatic_asgi.state import MemoryStore, Record, StateStore

__all__ = ["AuthShortCircuit", "credential_record"]

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


def skip_reason(record: Record) -> Reason:
    return Reason.CREDENTIAL_AUTH if record.until is None else Reason.CREDENTIAL_EXHAUSTED


def skip_state(record: Record) -> str:
    """How /status names a marked credential: bad (rejected) or cooling (used up)."""
    return "bad" if record.until is None else "cooling"


def _fingerprint(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()[:16]


def state_key(credential: Credential) -> str:
    return f"{PREFIX}{credential.id}:{_fingerprint(credential.secret.encode())}"


def client_state_key(scope: Scope, provider: str) -> str | None:
    """The state key of the credential a client sends a passthrough provider, if it sends one:
    a fingerprint of it, never the credential itself."""
    headers = dict(scope["headers"])
    secret = headers.get(b"x-api-key")
    if secret is None and not proxy_key_in_authorization(scope):
        secret = headers.get(b"authorization")  # unless it carried the proxy key
    if not secret:
        return None
    return f"{PREFIX}{provider}#client:{_fingerprint(secret)}"


class AuthShortCircuit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        store: StateStore | None = None,
        keyring: Keyring | None = None,
        quota_cooldown: float = 3600.0,
        quota_recheck: float = 3600.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.app = app
        self.clock = clock
        self.store: StateStore = store if store is not None else MemoryStore(clock=clock)
        self.keyring = keyring or Keyring({})
        self.quota_cooldown = quota_cooldown
        self.quota_recheck = quota_recheck

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        attempt: Attempt | None = scope.get(ATTEMPT)
        if scope["type"] != "http" or attempt is None:
            await self.app(scope, receive, send)
            return
        if attempt.target.passthrough:
            await self._passthrough(scope, receive, send, attempt)
            return
        target = attempt.target
        credential = await self.keyring.current(target)
        if credential is None:
            if self.keyring.can_refresh(target.provider):
                # No key to send: say which command to check, as for a rejected key.
                source = f"providers.{target.provider}.key_command"
                attempt.target = replace(
                    target, credential=Credential(target.provider, 0, "", source)
                )
                attempt.settle(Outcome(Kind.AUTH, Reason.KEY_COMMAND_FAILED))
                return
            await self.app(scope, receive, send)  # auth: none
            return
        attempt.target = replace(target, credential=credential)
        if await self._skipped(attempt, state_key(credential)):
            return
        retry = self.keyring.can_refresh(target.provider)
        fresh = await self._call(scope, receive, send, attempt, state_key(credential), retry=retry)
        if fresh is None:
            return
        # The same target again with the fresh key: a retry within the attempt, announced to
        # its listeners (two upstream calls were made; nothing of the first reached the router).
        attempt.retry(replace(target, credential=fresh))
        await self._call(scope, receive, send, attempt, state_key(fresh), retry=False)

    async def _passthrough(
        self, scope: Scope, receive: Receive, send: Send, attempt: Attempt
    ) -> None:
        """The client's own credential: a rejection is the client's to fix and is never marked,
        but one used up (a subscription's 5-hour limit, say) cools like ours, so that client's
        next requests go straight to a fallback until the reset."""
        key = client_state_key(scope, attempt.target.provider)
        if key is None:
            await self.app(scope, receive, send)
        elif not await self._skipped(attempt, key):
            await self._call(scope, receive, send, attempt, key, retry=False)

    async def _skipped(self, attempt: Attempt, key: str) -> bool:
        """Settle the attempt as skipped if the credential under `key` is marked."""
        record = await self.store.get(key)
        now = self.clock()
        if record is None or not record.in_force(now):
            return False
        if await self._recheck(attempt, key, record, now):
            return False
        wait = None if record.until is None else record.until - now
        attempt.settle(Outcome(Kind.SKIPPED, skip_reason(record), retry_after=wait))
        return True

    async def _recheck(self, attempt: Attempt, key: str, record: Record, now: float) -> bool:
        """A used-up credential whose stated reset is far off is tried by one real request
        every `quota_recheck` (a lease that long, shared by replicas): limits are often lifted
        early (a plan upgraded, credit bought), and the reset a provider states is a guess.
        The recheck is a probe: never retried; its success clears the credential."""
        if record.until is None or now - record.since < self.quota_recheck:
            return False
        if not await self.store.claim(key + RECHECK, ttl=self.quota_recheck):
            return False
        attempt.probe = True
        return True

    async def _call(
        self, scope: Scope, receive: Receive, send: Send, attempt: Attempt, key: str, *, retry: bool
    ) -> Credential | None:
        """Call the chain and record the outcome as soon as it is settled.

        With `retry`, a rejected key's answer is held back while `key_command` runs; the fresh
        credential is returned (and nothing was sent), or the held answer goes on as it was.
        """
        held: list[Message] = []

        def rejected() -> bool:
            outcome = attempt.outcome
            return retry and outcome is not None and outcome.kind is Kind.AUTH

        async def holding_send(message: Message) -> None:
            if rejected():
                held.append(message)
            else:
                await send(message)

        act = partial(self._record, attempt, key)
        await call_then_act(self.app, scope, receive, holding_send, attempt, act)
        if not rejected():
            return None
        fresh = await self.keyring.refresh(attempt.target.provider, attempt.target.credential)
        if fresh is None:
            for message in held:
                await send(message)
        return fresh

    async def _record(self, attempt: Attempt, key: str) -> None:
        outcome = attempt.outcome
        if outcome is None or (attempt.target.passthrough and outcome.kind is Kind.AUTH):
            return
        now = self.clock()
        record = credential_record(outcome, attempt.upstream_headers, now, self.quota_cooldown)
        if record is None:
            if attempt.probe and outcome.kind is Kind.SUCCESS:
                await self.store.delete(key)  # a recheck that went through: usable again
            return
        linger = REJECTED_MEMORY if record.until is None else 0.0
        await self.store.put(key, record, now=now, linger=linger)

    async def status(self, credentials: list[Credential]) -> list[dict[str, Any]]:
        """Every credential: provider, index, last 4 characters, state, reason, since, until."""
        now = self.clock()
        current = {credential.id: credential for credential in credentials}
        current.update((credential.id, credential) for credential in self.keyring.known())
        rows = []
        for credential in current.values():
            record = await self.store.get(state_key(credential))
            if record is not None and not record.in_force(now):
                record = None
            state = "ok" if record is None else skip_state(record)
            rows.append(
                {
                    "provider": credential.provider,
                    "index": credential.index,
                    "key": credential.hint,
                    "source": credential.source,
                    "state": state,
                    "reason": record.reason if record else None,
                    "since": record.since if record else None,
                    "until": record.until if record else None,
                    "consecutive_failures": 1 if record else 0,
                }
            )
        return rows
