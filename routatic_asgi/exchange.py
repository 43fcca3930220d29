"""How one attempt speaks to its target: what to send, and how to read what comes back.

An `Exchange` gives the relay the upstream path and body, which client headers to forward,
how to turn the response and error bodies into the caller's protocol, and a `StreamCodec`
that tells hold-back, content, error and end apart in the target's stream and re-encodes each
event for the caller. `Passthrough` (the same protocol on both sides) changes nothing but the
model name and never goes through the pivot; `Repaired` is a passthrough (Anthropic or Responses)
whose history carries thinking or reasoning the target would refuse; every other pair is a
`routatic_asgi.translate.Translation`. Nothing here performs I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import Protocol as TypingProtocol

import orjson

from routatic_asgi.attempt import InboundRequest, Target
from routatic_asgi.config import ModelCaps, ProviderConfig
from routatic_asgi.translate import (
    CODECS,
    EventKind,
    StreamCodec,
    Translation,
    anthropic_history,
    cap_output,
    has_foreign_thinking,
    stream_error_event,
)
from routatic_asgi.translate.responses import has_foreign_reasoning, without_foreign_reasoning

__all__ = [
    "EventKind",
    "Exchange",
    "Passthrough",
    "Repaired",
    "StreamCodec",
    "exchange_for",
    "stream_error_event",
]


class Exchange(TypingProtocol):
    path: str
    passthrough: bool
    extra_headers: list[tuple[bytes, bytes]]

    def forwards(self, header: bytes) -> bool: ...

    def request_body(self) -> bytes: ...

    def response_body(self, body: bytes) -> bytes: ...

    def error_body(self, status: int, body: bytes) -> bytes: ...

    def stream(self) -> StreamCodec: ...


_PATHS = {
    ("anthropic", "messages"): "/v1/messages",
    ("anthropic", "count_tokens"): "/v1/messages/count_tokens",
    ("openai", "chat_completions"): "/chat/completions",
    ("responses", "responses"): "/responses",
}


class Passthrough:
    """Same protocol on both sides: the body goes as sent unless the model name changes."""

    passthrough = True
    extra_headers: list[tuple[bytes, bytes]] = []

    def __init__(
        self, request: InboundRequest, target: Target, max_output: int | None = None
    ) -> None:
        self.request, self.target = request, target
        self.path = _PATHS[(target.protocol, request.endpoint)]
        self.max_output = max_output

    def forwards(self, header: bytes) -> bool:
        return True

    def request_body(self) -> bytes:
        """As sent, unless the model is renamed or asks for more output than it can give."""
        body = self._capped(self.request.payload)
        if body is None and self.target.model == self.request.model:
            return self.request.body
        return orjson.dumps({**(body or self.request.payload), "model": self.target.model})

    def _capped(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        if self.max_output is None:
            return None
        body = dict(payload)
        return body if cap_output(body, self.max_output) else None

    def response_body(self, body: bytes) -> bytes:
        return body

    def error_body(self, status: int, body: bytes) -> bytes:
        return body

    def stream(self) -> StreamCodec:
        return CODECS[self.target.protocol].watch()


class Repaired(Passthrough):
    """The same protocol on both sides, with history the target would refuse taken out first:
    thinking Anthropic did not sign (Anthropic), reasoning items another protocol wrote
    (Responses)."""

    def __init__(
        self, request: InboundRequest, target: Target, max_output: int | None = None
    ) -> None:
        super().__init__(request, target, max_output)
        self.repair = _REPAIRS[target.protocol]

    def request_body(self) -> bytes:
        body = self.repair(self.request.payload)
        body = self._capped(body) or body
        body["model"] = self.target.model
        return orjson.dumps(body)


_REPAIRS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "anthropic": anthropic_history,
    "responses": without_foreign_reasoning,
}


def exchange_for(
    request: InboundRequest,
    target: Target,
    *,
    now: float = 0.0,
    caps: ModelCaps | None = None,
    provider: ProviderConfig | None = None,
) -> Exchange | None:
    """The exchange for this request on this target, or None when it cannot be spoken.

    `now` stamps translated OpenAI answers; `caps` (the target model's configured
    capabilities) may turn a translated request's reasoning off, and caps the output limit of
    any request, passthrough included, to the model's `max_output`; `provider` (the target's
    configuration) says how a translation keeps its cache warm.
    """
    if target.protocol == request.protocol:
        if (target.protocol, request.endpoint) not in _PATHS:
            return None
        limit = caps.max_output if caps is not None else None
        if target.protocol == "anthropic" and has_foreign_thinking(request.payload):
            return Repaired(request, target, limit)
        if target.protocol == "responses" and has_foreign_reasoning(request.payload):
            return Repaired(request, target, limit)
        return Passthrough(request, target, limit)
    if request.endpoint == "count_tokens":
        return None
    return Translation(request, target, caps=caps, now=now, provider=provider)
