"""A Responses API stream read as it passes through: decided by event name, relayed byte for byte.

The watcher of a same-protocol passthrough: `response.created`, `response.in_progress` and
the opening of items are held back; the first delta or finished item is the commit point;
`response.completed`/`response.incomplete` end it; `response.failed` and `error` before the
commit are the target's failure. Never rewrites a byte; counts events so that an error it
must add after the commit carries the next `sequence_number`.
"""

from __future__ import annotations

from routatic_asgi.sse import Event
from routatic_asgi.translate.codec import EventKind
from routatic_asgi.translate.responses.stream_from_pivot import failed_event

__all__ = ["END", "FAILED", "HOLD", "ResponsesStream"]

# The watcher's and the decoder's reading of a Responses stream: what is held back before the
# commit, what ends it, what is the target's failure.
HOLD = frozenset(
    {
        "response.created",
        "response.in_progress",
        "response.queued",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_summary_part.added",
    }
)
END = frozenset({"response.completed", "response.incomplete"})
FAILED = frozenset({"response.failed", "error"})


class ResponsesStream:
    __slots__ = ("committed", "events", "seen")

    def __init__(self) -> None:
        self.seen = False
        self.committed = False
        self.events = 0

    def kind(self, event: Event) -> EventKind:
        self.seen = True
        name = event.name
        if name is None:
            return EventKind.HOLD
        self.events += 1
        if name in END:
            return EventKind.END
        if name in FAILED:
            return EventKind.ERROR
        if name in HOLD and not self.committed:
            return EventKind.HOLD
        self.committed = True
        return EventKind.CONTENT

    def translate(self, event: Event) -> bytes:
        return event.raw

    def finish(self) -> bytes:
        return b""

    def error_event(self, message: str) -> bytes:
        response = {"object": "response", "status": "failed", "output": []}
        return failed_event(response, self.events, message)
