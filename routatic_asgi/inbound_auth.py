"""`InboundAuth`: let in only clients holding a configured proxy key.

The key comes as `x-routatic-key`, or where SDKs put an API key: `Authorization: Bearer` or
`x-api-key` (the router refuses those forms when the route would forward that header to a
passthrough provider). Every configured key is
compared in constant time; an empty presented value never matches. Once a client is let in,
every header carrying a proxy key (`x-routatic-key`, and an `Authorization` or `x-api-key`,
or any other header, whose value is one) is removed from the request, so no inner layer can
forward it. The presented value is never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from routatic_asgi.answer import proxy_error, send_answer
from routatic_asgi.attempt import ACTOR, PROXY_KEY_HEADER, endpoint_of
from routatic_asgi.config import InboundKey

__all__ = ["InboundAuth"]

Headers = list[tuple[bytes, bytes]]


class InboundAuth:
    def __init__(self, app: ASGIApp, *, keys: Iterable[InboundKey]) -> None:
        self.app = app
        self.keys = [(key.name, key.key.get_secret_value().encode()) for key in keys]
        self.secrets = frozenset(key for _, key in self.keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys:
            await self.app(scope, receive, send)
            return
        for header, presented in _presented(scope["headers"]):
            actor = self._match(presented)
            if actor is not None:
                scope[ACTOR] = actor
                scope[PROXY_KEY_HEADER] = header
                scope["headers"] = self._without_proxy_keys(scope["headers"])
                await self.app(scope, receive, send)
                return
        protocol, _ = endpoint_of(scope)
        message = "a valid proxy key is required: send it as x-routatic-key"
        await send_answer(send, proxy_error(protocol, 401, message, "authentication_error"))

    def _match(self, presented: bytes) -> str | None:
        if not presented:
            return None
        found = None
        for name, key in self.keys:  # no early exit: every key costs the same
            if hmac.compare_digest(presented, key) and found is None:
                found = name
        return found

    def _without_proxy_keys(self, headers: Headers) -> Headers:
        """The request's headers less every one that carries a proxy key, in any form."""
        return [
            (name, value)
            for name, value in headers
            if name != b"x-routatic-key" and _token(value) not in self.secrets
        ]


def _token(value: bytes) -> bytes:
    value = value.strip()
    return value[7:].strip() if value[:7].lower() == b"bearer " else value


def _presented(headers: Headers) -> list[tuple[bytes, bytes]]:
    """Candidate keys, `x-routatic-key` first: a key also sent in an SDK's API-key header is
    then not taken for one the route would have to refuse."""
    dedicated = [(name, value.strip()) for name, value in headers if name == b"x-routatic-key"]
    bearer = [
        (name, value[7:].strip())
        for name, value in headers
        if name == b"authorization" and value[:7].lower() == b"bearer "
    ]
    api_key = [(name, value.strip()) for name, value in headers if name == b"x-api-key"]
    return dedicated + bearer + api_key
