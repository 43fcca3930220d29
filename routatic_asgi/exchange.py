"""How one attempt speaks to its target: what to send, and how to read what comes back.

An `Exchange` gives the relay the upstream path and body, which client headers to forward,
how to turn the response and error bodies into the caller's protocol, and a `StreamCodec`
that tells hold-back, content, error and end apart in the target's stream and re-encodes each
event for the caller. `Passthrough` changes nothing but the model name; translations between
protocols live in `routatic_asgi.translate`. Nothing here performs I/O.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol as TypingProtocol

import orjson

from routatic_asgi.attempt import InboundRequest, Protocol, Target
from routatic_asgi.config import ModelCaps
from routatic_asgi.errors import error_body
from routatic_asgi.sse import Event, encode_event

__all__ = [
    "AnthropicStream",
    "EventKind",
    "Exchange",
    "OpenAIStream",
    "Passthrough",
    "StreamCodec",
    "exchange_for",
    "stream_error_event",
]


class EventKind(Enum):
    HOLD = 1  # held back before the commit: message_start, ping, a role-only chunk
    CONTENT = 2  # the commit point
    ERROR = 3  # the upstream reports a failure inside the stream
    END = 4  # the stream is complete: message_stop, [DONE]


class StreamCodec(TypingProtocol):
    seen: bool

    def kind(self, event: Event) -> EventKind: ...

    def translate(self, event: Event) -> bytes: ...

    def finish(self) -> bytes: ...

    def error_event(self, message: str) -> bytes: ...


class Exchange(TypingProtocol):
    path: str
    passthrough: bool
    extra_headers: list[tuple[bytes, bytes]]

    def forwards(self, header: bytes) -> bool: ...

    def request_body(self) -> bytes: ...

    def response_body(self, body: bytes) -> bytes: ...

    def error_body(self, status: int, body: bytes) -> bytes: ...

    def stream(self) -> StreamCodec: ...


def stream_error_event(protocol: Protocol, message: str) -> bytes:
    """The error a caller gets inside a stream that broke after its commit."""
    if protocol == "openai":
        return encode_event(None, error_body("openai", 502, message, "server_error"))
    return encode_event("error", error_body("anthropic", 500, message, "api_error"))


class AnthropicStream:
    """An Anthropic stream: decided by event name alone, relayed byte for byte."""

    __slots__ = ("seen",)
    _HOLD = frozenset({"message_start", "ping"})

    def __init__(self) -> None:
        self.seen = False

    def kind(self, event: Event) -> EventKind:
        self.seen = True
        name = event.name
        if name in self._HOLD or (name is None and not event.data):  # ping or a comment
            return EventKind.HOLD
        if name == "error":
            return EventKind.ERROR
        if name == "message_stop":
            return EventKind.END
        return EventKind.CONTENT

    def translate(self, event: Event) -> bytes:
        return event.raw

    def finish(self) -> bytes:
        return b""

    def error_event(self, message: str) -> bytes:
        return stream_error_event("anthropic", message)


class OpenAIStream:
    """A Chat Completions stream: bare `data:` chunks, `[DONE]` at the end."""

    __slots__ = ("committed", "seen")

    def __init__(self) -> None:
        self.seen = False
        self.committed = False

    def kind(self, event: Event) -> EventKind:
        self.seen = True
        data = event.data
        if data == b"[DONE]":
            return EventKind.END
        if self.committed:
            return EventKind.CONTENT
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return EventKind.HOLD
        if not isinstance(chunk, dict):
            return EventKind.HOLD
        if "error" in chunk:
            return EventKind.ERROR
        if _has_content(chunk):
            self.committed = True
            return EventKind.CONTENT
        return EventKind.HOLD

    def translate(self, event: Event) -> bytes:
        return event.raw

    def finish(self) -> bytes:
        return b""

    def error_event(self, message: str) -> bytes:
        return stream_error_event("openai", message)


def _has_content(chunk: dict[str, object]) -> bool:
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(
            delta.get(field) for field in ("content", "tool_calls", "reasoning_content", "refusal")
        ):
            return True
    return False


_PATHS = {
    ("anthropic", "messages"): "/v1/messages",
    ("anthropic", "count_tokens"): "/v1/messages/count_tokens",
    ("openai", "chat_completions"): "/chat/completions",
}


class Passthrough:
    """Same protocol on both sides: the body goes as sent unless the model name changes."""

    passthrough = True
    extra_headers: list[tuple[bytes, bytes]] = []

    def __init__(self, request: InboundRequest, target: Target) -> None:
        self.request, self.target = request, target
        self.path = _PATHS[(target.protocol, request.endpoint)]

    def forwards(self, header: bytes) -> bool:
        return True

    def request_body(self) -> bytes:
        if self.target.model == self.request.model:
            return self.request.body
        return orjson.dumps({**self.request.payload, "model": self.target.model})

    def response_body(self, body: bytes) -> bytes:
        return body

    def error_body(self, status: int, body: bytes) -> bytes:
        return body

    def stream(self) -> StreamCodec:
        return AnthropicStream() if self.target.protocol == "anthropic" else OpenAIStream()


def exchange_for(
    request: InboundRequest, target: Target, *, now: float = 0.0, caps: ModelCaps | None = None
) -> Exchange | None:
    """The exchange for this request on this target, or None when it cannot be spoken.

    `now` stamps translated OpenAI answers; `caps` (the target model's configured
    capabilities) may turn a translated request's reasoning off and cap its max_tokens.
    """
    # The translations build on this module's interfaces, hence the late import.
    from routatic_asgi.translate import Repaired, Translation, has_foreign_thinking

    if target.protocol == request.protocol:
        if (target.protocol, request.endpoint) not in _PATHS:
            return None
        if target.protocol == "anthropic" and has_foreign_thinking(request.payload):
            return Repaired(request, target)
        return Passthrough(request, target)
    if request.endpoint == "count_tokens":
        return None
    return Translation(request, target, caps=caps, now=now)
