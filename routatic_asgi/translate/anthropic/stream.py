"""An Anthropic stream read as it passes through: decided by event name, relayed byte for byte.

This is the watcher of a same-protocol passthrough, and the pivot stream of an Anthropic
target (the pivot is the Anthropic shape, so nothing needs decoding). Never rewrites a byte.
"""

from __future__ import annotations

from routatic_asgi.sse import Event
from routatic_asgi.translate.codec import EventKind, stream_error_event

__all__ = ["AnthropicStream"]


class AnthropicStream:
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
