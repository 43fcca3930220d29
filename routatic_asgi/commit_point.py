"""`CommitPoint`: one request's answer as the client sees it, over all its attempts.

Every attempt's messages are held until one commits (a 2xx, or a stream's first content);
the committed attempt's go to the client, with the routing headers on its response start,
and a failed attempt's are dropped or kept as the answer. A rescue's continuation is spliced
into the stream that broke. flight.py decides which attempts to make and holds a commit
point to run each; this module never chooses a target and knows nothing of the router.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import nullcontext

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from routatic_asgi.attempt import ATTEMPT, REQUEST, Attempt, InboundRequest, Target
from routatic_asgi.classify import Kind, Outcome, Reason
from routatic_asgi.clock import Deadline
from routatic_asgi.exchange import answers
from routatic_asgi.hedge import Hedge
from routatic_asgi.payload import unfit_reason
from routatic_asgi.rescue import KEPT_LIMIT, Splicer

__all__ = ["CommitPoint", "attempts_header", "header_value"]

logger = logging.getLogger("routatic_asgi")


def header_value(text: str) -> bytes:
    """Text for a response header: a model name comes from the client, so every byte outside
    printable ASCII (and `%` itself) is percent-escaped; nothing can end the header line."""
    raw = text.encode()
    if raw.isascii() and text.isprintable() and "%" not in text:
        return raw
    return "".join(
        chr(byte) if 0x20 <= byte < 0x7F and byte != 0x25 else f"%{byte:02X}" for byte in raw
    ).encode()


class CommitPoint:
    """What the client gets of one request's attempts, and how each runs through `app` (the
    inner chain). Lives for one request only."""

    def __init__(
        self,
        app: ASGIApp,
        send: Send,
        request: InboundRequest,
        deadline: Deadline,
        *,
        rescue: bool,
    ) -> None:
        self.app, self.send, self.request = app, send, request
        self.deadline = deadline  # stopped at the commit: the answer then takes its own time
        self.committed = False
        # What the client got of a committed stream, kept (bounded) to rescue it if it breaks.
        self.sent: list[bytes] | None = [] if rescue else None
        self.sent_size = 0
        self.finished = False  # the client's answer has ended
        self.splicer: Splicer | None = None  # set while a rescue's continuation is relayed
        self.hedge: Hedge | None = None  # set while a slow stream races its hedge
        self.gone = asyncio.Event()  # the client has left
        self.body_message: Message = {"type": "http.request", "body": request.body}

    @property
    def rescuable(self) -> bool:
        """A stream committed now could be rescued if it broke: what it sends is kept."""
        return self.sent is not None and self.splicer is None

    def splice(self, splicer: Splicer, body: bytes) -> None:
        """Attempts from now on are a rescue's: they send `body`, and their answer is spliced
        into the stream that broke."""
        self.splicer = splicer
        self.body_message = {"type": "http.request", "body": body}

    async def run(self, attempt: Attempt, scope: Scope) -> None:
        """Run one attempt, holding its messages until it commits (or the client has one)."""
        held: list[Message] = []
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return self.body_message
            await self.gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if self.splicer is not None:  # a rescue's continuation: spliced once it commits
                held.append(message)
                if attempt.succeeded:
                    await self._splice(held)
            elif self.committed:
                if self.hedge is None or self.hedge.may_send(attempt):
                    await self.deliver(message)
            elif attempt.succeeded:
                await self._commit(attempt, [*held, message])
            else:
                held.append(message)

        scope[ATTEMPT] = attempt
        hedge = self.hedge
        with hedge.running(attempt) if hedge is not None else nullcontext():
            await self._call(attempt, scope, receive, send)
        if hedge is not None and attempt in hedge.outraced:
            return
        if attempt.outcome is None:
            attempt.settle(Outcome(Kind.TRANSIENT, Reason.NO_ANSWER))
        elif self.splicer is not None:
            if attempt.succeeded:
                await self._splice(held)
        elif attempt.succeeded and not self.committed and held:
            await self._commit(attempt, held)
        elif not self.committed:
            _keep_answer(attempt, held)

    async def _call(self, attempt: Attempt, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the inner chain for one attempt, settling what it ended by, if it did not.

        A target that cannot serve the request (its model's configured capabilities, or its
        protocol for the endpoint) is skipped first: known before any call, no inner layer
        sees it."""
        unfit = _unfit(scope[REQUEST], attempt.target)
        if unfit is not None:
            attempt.settle(Outcome(Kind.SKIPPED, unfit))
            return
        try:
            await self.app(scope, receive, send)
        except anyio.get_cancelled_exc_class():
            if self.hedge is not None and attempt in self.hedge.outraced:
                # The other attempt committed first: this one is dropped, not failed.
                attempt.settle(Outcome(Kind.CANCELLED, Reason.HEDGED))
            elif self.gone.is_set():
                if attempt.succeeded:  # gone mid-answer: the answer, not the attempt, was cut
                    attempt.broken = Reason.CLIENT_DISCONNECTED
                attempt.settle(Outcome(Kind.CANCELLED, Reason.CLIENT_DISCONNECTED))
            else:
                attempt.settle(Outcome(Kind.TRANSIENT, Reason.DEADLINE))
            raise
        except Exception:
            logger.exception("attempt on %s failed inside the proxy", attempt.target.name)
            attempt.settle(Outcome(Kind.TRANSIENT, Reason.INTERNAL_ERROR))
            if self.committed:
                raise

    async def _commit(self, attempt: Attempt, messages: list[Message]) -> None:
        self.committed = True
        self.deadline.stop()
        if self.hedge is not None:
            self.hedge.committed(attempt)
        start, *rest = messages
        start = {**start, "headers": [*start.get("headers", ()), *self._routing_headers(attempt)]}
        await self.send(start)
        for message in rest:
            await self.deliver(message)

    async def deliver(self, message: Message) -> None:
        """Send a committed answer's message, keeping what a rescue would need to read back."""
        if message["type"] == "http.response.body":
            self.finished = not message.get("more_body", False)
            if self.sent is not None:
                body = message.get("body", b"")
                self.sent_size += len(body)
                if self.sent_size > KEPT_LIMIT:
                    self.sent = None  # too much to read back: this stream cannot be rescued
                else:
                    self.sent.append(body)
        await self.send(message)

    async def _splice(self, held: list[Message]) -> None:
        assert self.splicer is not None
        for message in held:
            if message["type"] != "http.response.body":
                continue  # the continuation's own response start: the client has one
            more = message.get("more_body", False)
            body = self.splicer.feed(message.get("body", b""))
            if body or not more:
                await self.deliver({"type": "http.response.body", "body": body, "more_body": more})
        held.clear()

    def _routing_headers(self, attempt: Attempt) -> list[tuple[bytes, bytes]]:
        target = header_value(attempt.target.name)
        headers = [(b"x-routatic-target", target), attempts_header(self.request.attempts)]
        outraced = self.hedge.outraced if self.hedge is not None else set()
        earlier = [
            f"{a.target.name}={a.outcome.reason if a.outcome else Reason.HEDGED}"
            for a in self.request.attempts
            if a is not attempt and (a.outcome is not None or a in outraced)
        ]
        if earlier:
            fallback = ", ".join(earlier)
            headers.append((b"x-routatic-fallback", header_value(fallback)))
        return headers


def _unfit(request: InboundRequest, target: Target) -> Reason | None:
    """Why the target cannot serve the request whatever its state, or None if it can."""
    unfit = unfit_reason(request.payload, target.caps)
    if unfit is None and not answers(request, target):
        return Reason.NO_TRANSLATION
    return unfit


def attempts_header(attempts: Sequence[Attempt]) -> tuple[bytes, bytes]:
    """How many attempts called a target (skipped ones are not counted)."""
    count = sum(1 for a in attempts if a.outcome is None or a.outcome.kind is not Kind.SKIPPED)
    return (b"x-routatic-attempts", str(count).encode())


_ANSWER_LIMIT = 1024 * 1024


def _keep_answer(attempt: Attempt, held: list[Message]) -> None:
    """Keep a failed attempt's error response (status, headers, body) to return it as is.

    A 2xx that failed (a stream that broke before its content) is no answer to give: the
    client must never get a 200 for a request no target served."""
    if not held or held[0]["type"] != "http.response.start" or held[0]["status"] < 300:
        return
    start = held[0]
    attempt.status = start["status"]
    attempt.headers = [
        (name, value) for name, value in start.get("headers", ()) if name != b"content-length"
    ]
    attempt.body = b"".join(m.get("body", b"") for m in held[1:])[:_ANSWER_LIMIT]
