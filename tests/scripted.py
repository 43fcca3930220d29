"""An inner ASGI app that plays scripted outcomes, to test a layer on its own (raw ASGI).

`Scripted` stands where the relay would: each call takes the next outcome of its script
(success when the script is empty), settles the attempt with it and sends an answer, as
the relay does (a success streams two body chunks, a failure sends its error; the outcome is settled before the first message, as the relay classifies an answer
before passing it on). `call(layer, target)` runs one attempt through a layer and returns it with the
messages the layer passed on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from routatic_asgi.attempt import ATTEMPT, Attempt, Credential, Target
from routatic_asgi.classify import SUCCESS, Kind, Outcome, Reason
from tests.conftest import http_scope

TRANSIENT = Outcome(Kind.TRANSIENT, Reason.OVERLOADED, 529)
REJECTED = Outcome(Kind.AUTH, Reason.AUTH_REJECTED, 401)
USED_UP = Outcome(Kind.EXHAUSTED, Reason.USAGE_LIMIT, 429)


def target(
    provider: str = "zen", model: str = "m", index: int | None = 0, secret: str = "sk-zen-0001"
) -> Target:
    credential = None if index is None else Credential(provider, index, secret)
    return Target(provider, "anthropic", model, f"http://{provider}.test", credential=credential)


@dataclass
class Scripted:
    """The innermost app: plays `script`, one outcome per call, and remembers each call."""

    script: deque[Outcome] = field(default_factory=deque)
    calls: list[Target] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # the upstream's response headers

    def play(self, *outcomes: Outcome) -> Scripted:
        self.script.extend(outcomes)
        return self

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        attempt: Attempt = scope[ATTEMPT]
        self.calls.append(attempt.target)
        outcome = self.script.popleft() if self.script else SUCCESS
        status = outcome.status or (200 if outcome.kind is Kind.SUCCESS else 500)
        attempt.upstream_headers = dict(self.headers)
        attempt.settle(outcome)  # as the relay does: classified before anything is passed on
        await send({"type": "http.response.start", "status": status, "headers": []})
        if outcome.kind is Kind.SUCCESS:
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b", "more_body": False})


@dataclass
class Called:
    attempt: Attempt
    sent: list[dict[str, Any]]

    @property
    def outcome(self) -> Outcome:
        assert self.attempt.outcome is not None
        return self.attempt.outcome


async def call(
    layer: Any,
    to: Target,
    *,
    panic: bool = False,
    headers: list[tuple[bytes, bytes]] | None = None,
    send: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    listener: Callable[[Attempt], None] | None = None,
) -> Called:
    """One attempt on `to` through `layer`, as the router makes it; `send` also sees each
    message the layer passes on, `listener` hears the attempt."""
    attempt = Attempt(to, 1, True)
    attempt.panic = panic
    if listener is not None:
        attempt.listeners.append(listener)
    scope = http_scope(headers or [])
    scope[ATTEMPT] = attempt
    sent: list[dict[str, Any]] = []
    also = send

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}"}

    async def send_(message: dict[str, Any]) -> None:
        sent.append(message)
        if also is not None:
            await also(message)

    await layer(scope, receive, send_)
    return Called(attempt, sent)
