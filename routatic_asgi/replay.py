"""`ReasoningMemory`: what a target reasoned before its tool calls, kept for the next turn.

A target that wants its reasoning back on tool-call turns (DeepSeek's thinking mode, a model
marked `reasoning_replay: true`) refuses the next turn when the client dropped it, as most
Chat clients do. For such a target the exchange is a `Replaying` one: before the call,
`recall` looks up, in the state store, the reasoning kept for each tool call whose turn lacks
it; as the answer leaves for the client, `sending` keeps what the target reasoned now under
each of its tool call ids — before the last bytes go, so the client's next turn finds it.

Kept values live in the `StateStore` (memory, or Redis shared by replicas) for `ttl`
seconds, bounded by the store. Keys hash the tool call id with the proxy key's name, so one
holder of a proxy key never gets reasoning another's conversation produced. It decides
nothing about routing and never changes an answer.
"""

from __future__ import annotations

import hashlib

from starlette.types import Message, Scope, Send

from routatic_asgi.attempt import ACTOR
from routatic_asgi.exchange import Exchange, Replaying
from routatic_asgi.state import StateStore

__all__ = ["REASONING_TTL", "ReasoningMemory"]

REASONING_TTL = 3600.0  # seconds a turn's reasoning is kept for the turns that follow


class ReasoningMemory:
    def __init__(self, store: StateStore, *, ttl: float = REASONING_TTL) -> None:
        self.store = store
        self.ttl = ttl

    async def recall(self, exchange: Exchange, scope: Scope) -> None:
        """Hand a replaying exchange the reasoning kept for the tool calls that lack it."""
        if not isinstance(exchange, Replaying):
            return
        wanted = {_key(scope, call): call for call in exchange.wanted()}
        if wanted:
            found = await self.store.recall(list(wanted))
            exchange.kept = {wanted[key]: value.decode() for key, value in found.items()}

    def sending(self, exchange: Exchange, scope: Scope, send: Send) -> Send:
        """`send`, keeping what the target reasoned just before a 2xx answer's last bytes."""
        if not isinstance(exchange, Replaying):
            return send
        status = 0

        async def keeping(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif not message.get("more_body") and 200 <= status < 300:
                await self._keep(exchange, scope)
            await send(message)

        return keeping

    async def _keep(self, exchange: Replaying, scope: Scope) -> None:
        for call, reasoning in exchange.log.kept().items():
            await self.store.keep(_key(scope, call), reasoning.encode(), ttl=self.ttl)


def _key(scope: Scope, call: str) -> str:
    actor = scope.get(ACTOR) or ""
    digest = hashlib.sha256(f"{actor}\0{call}".encode()).hexdigest()[:40]
    return f"reasoning:{digest}"
