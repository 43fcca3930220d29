"""Server-sent events: an incremental framer that keeps every event's raw bytes.

The framer splits a byte stream, cut anywhere, into events and hands back each one's exact
bytes, so a relay can forward them unchanged while knowing where events begin and end. It
holds at most one incomplete event; it never parses JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Event", "SSEFramer", "encode_event"]

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Event:
    raw: bytes  # the event's bytes on the wire, blank-line terminator included
    name: str | None  # the `event:` field, or None
    data: bytes  # `data:` lines joined with "\n"


def parse_event(raw: bytes) -> Event:
    name: str | None = None
    data: list[bytes] = []
    for line in _LINE.split(raw):
        if not line or line[:1] == b":":
            continue
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    return Event(raw, name, b"\n".join(data))


class SSEFramer:
    """Feed bytes, get complete events; `tail()` returns whatever was left unterminated."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer + chunk if self._buffer else chunk
        events: list[Event] = []
        start = 0
        # A lone "\r" at the end may be half of "\r\n": wait for the next chunk to decide.
        for match in _BOUNDARY.finditer(buffer):
            end = match.end()
            if buffer[end - 1 : end] == b"\r" and end == len(buffer):
                break
            raw = buffer[start:end]
            if raw.strip(b"\r\n"):
                events.append(parse_event(raw))
            start = end
        self._buffer = buffer[start:]
        return events

    def tail(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        return rest


def encode_event(name: str | None, data: bytes) -> bytes:
    """One event on the wire: `event: name` (when named) and a single `data:` line."""
    if name is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"
