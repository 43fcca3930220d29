"""`AuthShortCircuit`: never spend a request on a credential known to be rejected or used up.

Credential state is kept per `Credential.id` (and the secret's fingerprint, so a new key starts
clean) in a `StateStore`, by `CredentialMarks` (marks.py), which announces every mark on a
`Board` (transitions.py) for telemetry to hear. Before an attempt, a target whose credential
is marked is skipped: "credential_auth" for a rejected key, "credential_exhausted" for one
cooling until its usage limit resets. After an attempt:

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

from dataclasses import replace
from functools import partial
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from routatic_asgi.attempt import ATTEMPT, Attempt, Credential, call_then_act
from routatic_asgi.classify import Kind, Outcome, Reason
from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.keyring import Keyring
from routatic_asgi.marks import CredentialMarks, client_subject, skip_reason, subject_of
from routatic_asgi.state import MemoryStore, Record, StateStore
from routatic_asgi.transitions import Board, Subject

__all__ = ["AuthShortCircuit"]


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
        board: Board | None = None,
    ) -> None:
        self.app = app
        self.clock = clock
        store = store if store is not None else MemoryStore(clock=clock)
        # Marks are announced on `board` (telemetry listens); it is shared by reloads.
        board = board if board is not None else Board.for_credentials()
        self.marks = CredentialMarks(store, board, quota_cooldown=quota_cooldown, clock=clock)
        self.keyring = keyring or Keyring({})
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
        subject = subject_of(credential)
        if await self._skipped(attempt, subject):
            return
        retry = self.keyring.can_refresh(target.provider)
        fresh = await self._call(scope, receive, send, attempt, subject, retry=retry)
        if fresh is None:
            return
        # The same target again with the fresh key: a retry within the attempt, announced to
        # its listeners (two upstream calls were made; nothing of the first reached the router).
        attempt.retry(replace(target, credential=fresh))
        await self._call(scope, receive, send, attempt, subject_of(fresh), retry=False)

    async def _passthrough(
        self, scope: Scope, receive: Receive, send: Send, attempt: Attempt
    ) -> None:
        """The client's own credential: a rejection is the client's to fix and is never marked,
        but one used up (a subscription's 5-hour limit, say) cools like ours, so that client's
        next requests go straight to a fallback until the reset."""
        subject = client_subject(scope, attempt.target.provider)
        if subject is None:
            await self.app(scope, receive, send)
        elif not await self._skipped(attempt, subject):
            await self._call(scope, receive, send, attempt, subject, retry=False)

    async def _skipped(self, attempt: Attempt, subject: Subject) -> bool:
        """Settle the attempt as skipped if the credential is marked."""
        record = await self.marks.read(subject)
        if record is None:
            return False
        now = self.clock()
        if await self._recheck(attempt, subject, record, now):
            return False
        wait = None if record.until is None else record.until - now
        attempt.settle(Outcome(Kind.SKIPPED, skip_reason(record), retry_after=wait))
        return True

    async def _recheck(
        self, attempt: Attempt, subject: Subject, record: Record, now: float
    ) -> bool:
        """A used-up credential whose stated reset is far off is tried by one real request
        every `quota_recheck` (a lease that long, shared by replicas): limits are often lifted
        early (a plan upgraded, credit bought), and the reset a provider states is a guess.
        The recheck is a probe: never retried; its success clears the credential."""
        if record.until is None or now - record.since < self.quota_recheck:
            return False
        if not await self.marks.claim_recheck(subject, self.quota_recheck):
            return False
        attempt.probe = True
        return True

    async def _call(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        attempt: Attempt,
        subject: Subject,
        *,
        retry: bool,
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

        act = partial(self.marks.mark, subject, attempt)
        await call_then_act(self.app, scope, receive, holding_send, attempt, act)
        if not rejected():
            return None
        fresh = await self.keyring.refresh(attempt.target.provider, attempt.target.credential)
        if fresh is None:
            for message in held:
                await send(message)
        return fresh

    async def status(self, credentials: list[Credential]) -> list[dict[str, Any]]:
        """Every credential: provider, index, last 4 characters, state, reason, since, until."""
        current = {credential.id: credential for credential in credentials}
        current.update((credential.id, credential) for credential in self.keyring.known())
        return await self.marks.status(current.values())
