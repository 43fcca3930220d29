"""Server-sent events: an incremental framer that keeps every event's raw bytes.

The framer splits a byte stream, cut anywhere, into events and hands back each one's exact
bytes, so a relay can forward them unchanged while knowing where events begin and end. It
holds at most one incomplete event; it never parses JSON.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["Event", "SSEFramer", "encode_event"]

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\r|\n")


class Event(NamedTuple):  # a tuple: made once per event, it must be cheap to build
    raw: bytes  # the event's bytes on the wire, blank-line terminator included
    name: str | None  # the `event:` field, or None
    data: bytes  # `data:` lines joined with "\n"


def parse_event(raw: bytes) -> Event:
    # The shape nearly every provider sends, `event: x\ndata: y\n\n`, without a line loop.
    if raw[:7] == b"event: " and b"\r" not in raw:
        head, found, rest = raw.partition(b"\ndata: ")
        if found and rest[-2:] == b"\n\n" and rest.count(b"\n") == 2 and b"\n" not in head:
            return Event(raw, head[7:].decode("utf-8", "replace"), rest[:-2])
    name: str | None = None
    data: list[bytes] = []
    for line in raw.split(b"\n") if b"\r" not in raw else _LINE.split(raw):
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
        if b"\r" not in buffer:
            return self._feed_lf(buffer)
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

    def _feed_lf(self, buffer: bytes) -> list[Event]:
        """`feed` for the usual stream with bare `\n` line ends: plain finds, no regex."""
        events: list[Event] = []
        start = 0
        end = buffer.find(b"\n\n")
        while end >= 0:
            end += 2
            raw = buffer[start:end]
            if raw.strip(b"\n"):
                events.append(parse_event(raw))
            start = end
            end = buffer.find(b"\n\n", start)
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
