"""An Anthropic stream read as it passes through: decided by event name, relayed byte for byte.

This is the watcher of a same-protocol passthrough, and the pivot stream of an Anthropic
target (the pivot is the Anthropic shape, so nothing needs decoding). Never rewrites a byte;
a stream complete but for its `message_stop` (its `message_delta`, with the stop reason
and usage, came after content) gets that one event appended, not an error.
"""

from __future__ import annotations

import orjson

from routatic_asgi.sse import Event
from routatic_asgi.translate.codec import EventKind, stream_error_event

__all__ = ["AnthropicStream"]

_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


class AnthropicStream:
    __slots__ = ("content", "finished", "seen", "stopped")
    _HOLD = frozenset({"message_start", "ping"})

    def __init__(self) -> None:
        self.seen = False
        self.content = False  # a content event went by: the commit point
        self.finished = False  # the message_delta after content: complete but for its stop
        self.stopped = False  # message_stop itself went by

    def kind(self, event: Event) -> EventKind:
        self.seen = True
        name = event.name
        if name in self._HOLD or (name is None and not event.data):  # ping or a comment
            return EventKind.HOLD
        if name == "error":
            return EventKind.ERROR
        if name == "message_stop":
            self.stopped = True
            return EventKind.END
        if name == "message_delta" and self.content:
            self.finished = True
            return EventKind.END
        if self.content and event.data:
            orjson.loads(event.data)  # a malformed event raises: the stream broke
        self.content = True
        return EventKind.CONTENT

    def translate(self, event: Event) -> bytes:
        return event.raw

    def finish(self) -> bytes:
        if self.finished and not self.stopped:
            return _MESSAGE_STOP
        return b""

    def error_event(self, message: str) -> bytes:
        return stream_error_event("anthropic", message)
