"""Server-sent events: an incremental framer that keeps every event's raw bytes.

The framer splits a byte stream, cut anywhere, into events and hands back each one's exact
bytes, so a relay can forward them unchanged while knowing where events begin and end. It
holds at most one incomplete event, of at most `EVENT_LIMIT` bytes: a larger one raises
`EventTooLarge`, so no upstream can make it hold more. Its work is linear in the stream: an
incomplete event's bytes are kept as they came and scanned once each, not copied and rescanned
on every chunk. It never parses JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

__all__ = ["EVENT_LIMIT", "Event", "EventTooLarge", "SSEFramer", "encode_event"]

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
# The events nearly every provider sends, `event: x\ndata: y\n\n` and `data: y\n\n`, each
# matched whole in C.
_SIMPLE = re.compile(rb"(?:event: ([^\n]*)\n)?data: ([^\n]*)\n\n")
_LINE = re.compile(rb"\r\n|\r|\n")

# The largest event a stream may carry: far above any real one (a long tool call's arguments
# arrive in many small deltas), small enough that a runaway upstream costs a bounded amount.
EVENT_LIMIT = 16 * 1024 * 1024


class EventTooLarge(Exception):
    """An event (complete or not) grew past the framer's limit: the stream cannot be relayed."""


class Event(NamedTuple):  # a tuple: made once per event, it must be cheap to build
    raw: bytes  # the event's bytes on the wire, blank-line terminator included
    name: str | None  # the `event:` field, or None
    data: bytes  # `data:` lines joined with "\n"


# `Event(...)` goes through a `__new__` written in Python; the framer builds the tuple in C.
_new_event = tuple.__new__


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

    __slots__ = ("_held", "_last", "_limit", "_size")

    def __init__(self, limit: int = EVENT_LIMIT) -> None:
        self._held: list[bytes] = []  # an incomplete event, as it came
        self._last = b""  # its last 3 bytes: a boundary may begin there
        self._size = 0
        self._limit = limit

    def feed(self, chunk: bytes) -> list[Event]:
        return list(self.events(chunk))

    def events(self, chunk: bytes) -> Iterator[Event]:
        """`feed`, one event at a time, each handed over as soon as it is framed: a relay
        sends the first content on while the rest of the chunk (from a fast upstream, the
        whole answer) is still to be framed. Read it to its end: only then is an unterminated
        last event kept for the next chunk."""
        if self._held:
            # Only the seam and the new bytes can hold the first boundary: the held ones were
            # scanned when they came. No boundary: keep the chunk and join nothing.
            seam = self._last + chunk
            if _BOUNDARY.search(seam) is None if b"\r" in seam else b"\n\n" not in seam:
                self._hold(chunk)
                return iter(())
            buffer = b"".join(self._held) + chunk
            self._held, self._last, self._size = [], b"", 0
        else:
            buffer = chunk
        return self._frames_lf(buffer) if b"\r" not in buffer else self._frames_any(buffer)

    def _checked(self, event: Event) -> Event:
        if len(event.raw) > self._limit:
            raise EventTooLarge(f"an event of {len(event.raw)} bytes")
        return event

    def _hold(self, rest: bytes) -> None:
        if rest:
            self._held.append(rest)
            self._last = (self._last + rest[-3:])[-3:]
            self._size += len(rest)
            if self._size > self._limit:
                raise EventTooLarge(f"an unterminated event past {self._limit} bytes")

    def _frames_any(self, buffer: bytes) -> Iterator[Event]:
        start = 0
        # A lone "\r" at the end may be half of "\r\n": wait for the next chunk to decide.
        for match in _BOUNDARY.finditer(buffer):
            end = match.end()
            if buffer[end - 1 : end] == b"\r" and end == len(buffer):
                break
            raw = buffer[start:end]
            start = end
            if raw.strip(b"\r\n"):
                yield self._checked(parse_event(raw))
        self._hold(buffer[start:])

    def _frames_lf(self, buffer: bytes) -> Iterator[Event]:
        """`events` for the usual stream with bare `\n` line ends: each event of one `data:`
        line (named or not) in one regex match, any other up to the next blank line by a
        plain find."""
        simple = _SIMPLE.match
        limit = self._limit
        start = 0
        while True:
            found = simple(buffer, start)
            if found is not None:
                end = found.end()
                name = found[1]
                text = None if name is None else name.decode("utf-8", "replace")
                if end - start > limit:
                    raise EventTooLarge(f"an event of {end - start} bytes")
                yield _new_event(Event, (buffer[start:end], text, found[2]))
                start = end
            else:
                end = buffer.find(b"\n\n", start)
                if end < 0:
                    break
                end += 2
                raw = buffer[start:end]
                start = end
                if raw.strip(b"\n"):
                    yield self._checked(parse_event(raw))
        self._hold(buffer[start:] if start else buffer)

    def tail(self) -> bytes:
        rest = b"".join(self._held)
        self._held, self._last, self._size = [], b"", 0
        return rest


def encode_event(name: str | None, data: bytes) -> bytes:
    """One event on the wire: `event: name` (when named) and a single `data:` line."""
    if name is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"
