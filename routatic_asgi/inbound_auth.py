"""`InboundAuth`: let in only clients holding a configured proxy key.

The key comes as `x-routatic-key`, or as `Authorization: Bearer` (the router refuses that form
when the route would forward the header to a passthrough provider). Every configured key is
compared in constant time; the presented value is never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from routatic_asgi.answer import proxy_error
from routatic_asgi.attempt import ACTOR, PROXY_KEY_HEADER
from routatic_asgi.config import InboundKey
from routatic_asgi.router import endpoint_for, send_answer

__all__ = ["InboundAuth"]


class InboundAuth:
    def __init__(self, app: ASGIApp, *, keys: Iterable[InboundKey]) -> None:
        self.app = app
        self.keys = [(key.name, key.key.get_secret_value().encode()) for key in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys:
            await self.app(scope, receive, send)
            return
        for header, presented in _presented(scope):
            actor = self._match(presented)
            if actor is not None:
                scope[ACTOR] = actor
                scope[PROXY_KEY_HEADER] = header
                await self.app(scope, receive, send)
                return
        protocol, _ = endpoint_for(scope["path"])
        message = "a valid proxy key is required: send it as x-routatic-key"
        await send_answer(send, proxy_error(protocol, 401, message, "authentication_error"))

    def _match(self, presented: bytes) -> str | None:
        found = None
        for name, key in self.keys:  # no early exit: every key costs the same
            if hmac.compare_digest(presented, key) and found is None:
                found = name
        return found


def _presented(scope: Scope) -> list[tuple[bytes, bytes]]:
    found = []
    for name, value in scope["headers"]:
        if name == b"x-routatic-key":
            found.append((name, value.strip()))
        elif name == b"authorization" and value[:7].lower() == b"bearer ":
            found.append((name, value[7:].strip()))
    return found
