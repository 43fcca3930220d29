"""What a protocol package provides: the codecs between its wire shapes and the pivot.

A `Codec` is one protocol's set of pure functions — request, answer, stream and error, each
way — plus where its generation endpoint lives and which client headers must not reach it.
`StreamCodec` is what the relay drives for a stream: `kind()` tells hold-back, content (the
commit point), error and end apart in the TARGET's events; `translate()` returns the bytes
for the CLIENT. Nothing here performs I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any
from typing import Protocol as TypingProtocol

import orjson

from routatic_asgi.attempt import Protocol, Target
from routatic_asgi.errors import error_body
from routatic_asgi.sse import Event, encode_event

__all__ = [
    "CacheHints",
    "Codec",
    "EventKind",
    "PivotEvents",
    "StreamCodec",
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


class PivotEvents:
    """The commit point in pivot events, for a codec that encodes them for a client:
    `message_start` and `ping` are held back, the first other event is content, `error` before
    it is the target's failure (after it, the end), `message_stop` is the end."""

    _HOLD = frozenset({"message_start", "ping"})

    def __init__(self) -> None:
        self.seen = False
        self.committed = False

    def kind(self, event: Event) -> EventKind:
        self.seen = True
        name = event.name
        if name in self._HOLD or name is None:
            return EventKind.HOLD
        if name == "error":
            return EventKind.END if self.committed else EventKind.ERROR
        if name == "message_stop":
            return EventKind.END
        self.committed = True
        return EventKind.CONTENT


def stream_error_event(protocol: Protocol, message: str) -> bytes:
    """The error a caller gets inside a stream that broke after its commit."""
    if protocol == "openai":
        return encode_event(None, error_body("openai", 502, message, "server_error"))
    if protocol == "responses":
        # The passthrough watcher and the codecs write their own, with a sequence number.
        error = {"type": "error", "code": "server_error", "message": message, "param": None}
        return encode_event("error", orjson.dumps(error))
    return encode_event("error", error_body("anthropic", 500, message, "api_error"))


Payload = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CacheHints:
    """What keeps a target's prompt cache warm, for a translated request.

    `prompt_cache_key`: sent to OpenAI-protocol and Responses targets (their cache routing
    hint). `breakpoints`: the pivot's `cache_control` reaches a Chat Completions target that
    honours it (OpenRouter); otherwise it is dropped. `auto_breakpoints`: an Anthropic target
    gets breakpoints on tools, system and the last turns when the client sent none.
    """

    prompt_cache_key: str | None = None
    breakpoints: bool = False
    auto_breakpoints: bool = False

    def keyed(self, body: dict[str, Any]) -> dict[str, Any]:
        """An OpenAI-protocol body with the `prompt_cache_key`, when there is one."""
        if self.prompt_cache_key:
            body["prompt_cache_key"] = self.prompt_cache_key
        return body


NO_HINTS = CacheHints()


@dataclass(frozen=True, slots=True)
class Codec:
    """One wire protocol, to and from the pivot (the Anthropic Messages shape).

    Client side: `request_to_pivot`, `answer_from_pivot`, `error_from_pivot`,
    `stream_from_pivot` (None: the client reads pivot events as they are). Target side:
    `request_from_pivot`, `answer_to_pivot`, `error_to_pivot`, `stream_to_pivot` (None: the
    target's events are pivot events). `watch` reads this protocol's own stream for a
    same-protocol passthrough, which never goes through the pivot.
    """

    protocol: Protocol
    path: str  # the generation endpoint, after the provider's base_url
    foreign: tuple[bytes, ...]  # client header prefixes never sent to this protocol's targets
    extra_headers: tuple[tuple[bytes, bytes], ...]
    # (client payload, target model, reasoning allowed) → pivot request
    request_to_pivot: Callable[[Payload, str, bool], dict[str, Any]]
    # (pivot request, target, reasoning allowed, cache hints) → the target's request
    request_from_pivot: Callable[[Payload, Target, bool, CacheHints], dict[str, Any]]
    answer_to_pivot: Callable[[bytes], bytes]
    # (pivot answer, the client's payload, now) → the client's answer
    answer_from_pivot: Callable[[bytes, Payload, int], bytes]
    error_to_pivot: Callable[[int, bytes], bytes]
    error_from_pivot: Callable[[int, bytes], bytes]
    stream_to_pivot: Callable[[], StreamCodec] | None
    stream_from_pivot: Callable[[Payload, int], StreamCodec] | None
    watch: Callable[[], StreamCodec]
