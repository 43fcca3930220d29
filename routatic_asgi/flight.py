"""`Flight`: one request's journey over its targets, in order, until one commits.

It decides which attempts to make: the next target, a retry of the same one after a blip, a
hedge beside a slow stream, a call in panic when every target is open on failures alone, and
a rescue of a stream that broke after its commit. It owns the deadline and the client's
disconnect, and gives the final answer when every target failed. Running one attempt and
holding its messages is its `CommitPoint`'s (commit_point.py).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import orjson
from starlette.types import Receive, Scope, Send

from routatic_asgi.answer import final_answer, send_answer
from routatic_asgi.attempt import DEADLINE, HANG_UP, REQUEST, Attempt, InboundRequest, Target
from routatic_asgi.classify import Kind, Reason
from routatic_asgi.commit_point import CommitPoint, attempts_header
from routatic_asgi.hedge import Hedge
from routatic_asgi.payload import estimate_tokens
from routatic_asgi.rescue import PROTOCOLS, Splicer, continuation, transcript
from routatic_asgi.retry import retry_pause
from routatic_asgi.telemetry import RECORD
from routatic_asgi.translate.codec import stream_error_event

if TYPE_CHECKING:
    from routatic_asgi.router import FallbackRouter

__all__ = ["Flight"]

_SPENT = frozenset({Kind.TRANSIENT, Kind.UNFIT})
_UNFIT = frozenset({Reason.UNFIT_VISION, Reason.UNFIT_TOOLS, Reason.UNFIT_CONTEXT})


class Flight:
    """One request's journey over its targets. Lives for one request only."""

    def __init__(
        self,
        router: FallbackRouter,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: InboundRequest,
        targets: list[Target],
    ) -> None:
        self.router, self.scope, self.receive = router, scope, receive
        self.request, self.targets = request, targets
        self.tried = 0  # upstream calls made, retries included
        # One scope for both: the deadline ends it, and so does the client leaving.
        self.deadline = router.clock.deadline(router.resilience.deadline)
        scope[DEADLINE] = self.deadline  # the relay arms no timer of its own that fires later
        rescue = router.resilience.rescue and request.stream and request.protocol in PROTOCOLS
        self.point = CommitPoint(router.app, send, request, self.deadline, rescue=rescue)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # A bare asyncio task, not an anyio task group: that cost a tenth of a short request.
        watcher = loop.create_task(self._watch_disconnect())
        try:
            with self.deadline:
                await self._attempts()
            self.router.routing.settled(self.request.session, self.request.attempts)
            if self.point.committed or self.point.gone.is_set():
                return
            answer = final_answer(
                self.request.protocol,
                self.request.attempts,
                self.router.clock(),
                deadline_passed=self.deadline.expired,
            )
            answer.headers.append(attempts_header(self.request.attempts))
            await send_answer(self.point.send, answer)
        finally:
            watcher.cancel()

    async def _watch_disconnect(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.point.gone.set()
                # Upstream connections close now, not once cancellation has unwound every
                # layer: with hundreds of clients gone at once that took a third of a second.
                for hang_up in list(self.scope.get(HANG_UP, ())):
                    hang_up()
                self.deadline.cancel()
                return

    async def _attempts(self) -> None:
        # Provider/models that failed in a way another key of the pool cannot mend (down,
        # overloaded, unfit): their other keys are not tried in this request. A rate limit is
        # per key, so there the next key is tried.
        spent: set[str] = set()
        for index, target in enumerate(self.targets):
            if self.tried >= self.router.resilience.max_attempts:
                return
            if target.name in spent:
                continue
            backup = self._hedge_target(index, spent)
            if backup is not None:
                attempt, hedged = await self._race(target, backup)
                if hedged is not None:
                    spent.add(backup.name)
                    if self.point.committed and hedged.succeeded:
                        attempt, index = hedged, self.targets.index(backup)
            else:
                attempt, hedged = await self._try(target), None
            # A retry never takes the place of a target still to try within max_attempts.
            ahead = {t.name for t in self.targets[index + 1 :]} - spent - {target.name}
            retried = 0
            while (
                hedged is None
                and (pause := self._retry_pause(attempt, retried, len(ahead))) is not None
            ):
                await self.router.clock.sleep(pause)
                retried += 1
                attempt = await self._try(target, via=Reason.RETRIED)
            outcome = attempt.outcome
            assert outcome is not None
            if self.point.committed:
                await self._rescue(index, attempt)  # nothing to do when the answer ended well
                return
            if outcome.kind is Kind.CANCELLED:
                return
            if outcome.kind in _SPENT and outcome.reason != Reason.RATE_LIMITED:
                spent.add(target.name)
            if outcome.reason == Reason.CONTEXT_TOO_LONG and self._longer_ahead(index):
                continue
            if outcome.kind is Kind.CLIENT or (outcome.kind is Kind.AUTH and target.passthrough):
                return
        await self._panic()

    def _hedge_target(self, index: int, spent: set[str]) -> Target | None:
        """The target a slow stream's hedge would go to: the next one not yet spent."""
        resilience = self.router.resilience
        if resilience.hedge_after is None or not self.request.stream:
            return None
        if self.tried + 2 > resilience.max_attempts:
            return None
        name = self.targets[index].name
        for target in self.targets[index + 1 :]:
            if target.name not in spent and target.name != name:
                return target
        return None

    async def _race(self, target: Target, backup: Target) -> tuple[Attempt, Attempt | None]:
        """`target`, with `backup` started beside it if its first content is slow (hedge.py)."""
        hedge = self.point.hedge = Hedge()
        found: dict[str, Attempt] = {}

        async def first() -> None:
            found["first"] = await self._try(target)

        async def second() -> None:
            # Its own copy of the scope: the first attempt's layers still read theirs.
            found["second"] = await self._try(backup, via=Reason.HEDGED, scope=dict(self.scope))

        after = self.router.resilience.hedge_after
        assert after is not None
        try:
            await hedge.race(first, second, after=after, clock=self.router.clock)
        finally:
            self.point.hedge = None
        return found["first"], found.get("second")

    def _longer_ahead(self, index: int) -> bool:
        """A later target is known (`models:` capabilities) to hold a longer context than the
        one that found the prompt too long (than the prompt's estimate, if its own is unknown).
        Otherwise the error goes back as it came, so the client compacts."""

        def context(target: Target) -> int | None:
            return target.caps.context if target.caps is not None else None

        own = context(self.targets[index]) or estimate_tokens(self.request.payload)
        return any((context(t) or 0) > own for t in self.targets[index + 1 :])

    async def _try(
        self,
        target: Target,
        *,
        via: Reason | None = None,
        panic: bool = False,
        scope: Scope | None = None,
    ) -> Attempt:
        first = bool(self.targets) and target.name == self.targets[0].name
        attempt = Attempt(target, len(self.request.attempts) + 1, first)
        attempt.via, attempt.panic = via, panic
        attempt.rescue = self.point.rescuable
        self.request.attempts.append(attempt)
        self.scope[RECORD].attempt_started(attempt)
        await self.point.run(attempt, self.scope if scope is None else scope)
        assert attempt.outcome is not None
        if attempt.outcome.kind is not Kind.SKIPPED:
            self.tried += 1
        return attempt

    def _retry_pause(self, attempt: Attempt, retried: int, ahead: int) -> float | None:
        if self.point.committed or self.tried + ahead >= self.router.resilience.max_attempts:
            return None
        remaining = self.deadline.remaining()
        return retry_pause(
            attempt,
            retried=retried,
            policy=self.router.resilience.retry,
            remaining=remaining,
            jitter=self.router.pause(),
        )

    async def _panic(self) -> None:
        """Every target is open on failures alone: call the one that recovers soonest.

        As Envoy's panic threshold: refusing every request would lock a lone target out for
        its whole cooldown, while it may well be able to serve. A target the upstream told to
        wait, a cooling credential or a probe in flight is no case for panic.
        """
        if self.point.committed or self.tried or not self.request.attempts:
            return
        candidates = []
        for attempt in self.request.attempts:
            outcome = attempt.outcome
            assert outcome is not None
            if attempt.may_panic:
                candidates.append(attempt)
            elif not (outcome.kind is Kind.SKIPPED and outcome.reason in _UNFIT):
                return
        if candidates:
            soonest = min(candidates, key=lambda a: (a.outcome and a.outcome.retry_after) or 0.0)
            await self._try(soonest.target, panic=True)

    async def _rescue(self, index: int, broken: Attempt) -> None:
        """A committed stream broke: ask the next targets for the rest and splice it in (see
        rescue.py); when none can give it, the client gets the error event, never a quiet end."""
        point = self.point
        if point.finished or point.gone.is_set() or not broken.rescue:
            return
        request = self.request
        used = broken.usage.output if broken.usage is not None else 0
        found = transcript(request.protocol, b"".join(point.sent), used) if point.sent else None
        if found is not None:
            payload = continuation(request.payload, found.text)
            body = orjson.dumps(payload)
            self.scope[REQUEST] = InboundRequest(
                request.protocol, request.endpoint, body, payload, request.model, True,
                request.query, request.attempts, request.route,
            )  # fmt: skip
            point.splice(Splicer(found), body)
            try:
                for target in self.targets[index + 1 :]:
                    if self.tried >= self.router.resilience.max_attempts:
                        break
                    attempt = await self._try(target, via=Reason.RESCUED)
                    if attempt.succeeded or point.gone.is_set():
                        break
            finally:
                self.scope[REQUEST] = request
        if not point.finished and not point.gone.is_set():
            message = f"the upstream stream broke: {broken.broken or 'unknown'}"
            error = stream_error_event(request.protocol, message)
            await point.deliver({"type": "http.response.body", "body": error, "more_body": False})
