"""The SSE framer's fast paths (bare `\\n` streams, `event:`/`data:` pairs) agree with the
general line-by-line reading of the spec on any input, cut anywhere."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from routatic_asgi.sse import Event, SSEFramer, parse_event

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\r|\n")


def reference_parse(raw: bytes) -> Event:
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


def reference_frame(wire: bytes) -> tuple[list[Event], bytes]:
    events, start = [], 0
    for match in _BOUNDARY.finditer(wire):
        end = match.end()
        if wire[end - 1 : end] == b"\r" and end == len(wire):
            break
        raw = wire[start:end]
        if raw.strip(b"\r\n"):
            events.append(reference_parse(raw))
        start = end
    return events, wire[start:]


pieces = st.sampled_from(
    [b"event: ", b"data: ", b"data:", b"event:x", b"id: 1", b": c", b"\n", b"\n\n", b"\r", b"a"]
)
wires = st.lists(st.one_of(pieces, st.binary(max_size=6)), max_size=30).map(b"".join)


@given(wires)
def test_parse_event_matches_the_reference(raw: bytes) -> None:
    assert parse_event(raw) == reference_parse(raw)


@given(wires, st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_framing_matches_the_reference_however_cut(wire: bytes, cuts: list[int]) -> None:
    points = sorted({min(cut, len(wire)) for cut in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    framer = SSEFramer()
    events = [event for chunk in chunks for event in framer.feed(chunk)]
    expected, tail = reference_frame(wire)
    if b"\r" not in wire or len(chunks) == 1:  # a cut may hold back an event ending in "\r"
        assert events == expected
        assert framer.tail() == tail
    else:  # blank separators are not events; every other byte is kept, in order
        kept = b"".join(e.raw for e in events) + framer.tail()
        assert kept.replace(b"\r", b"").replace(b"\n", b"") == wire.replace(b"\r", b"").replace(
            b"\n", b""
        )


def test_the_common_shape_takes_the_fast_path_and_keeps_bytes() -> None:
    raw = b'event: content_block_delta\ndata: {"type":"content_block_delta"}\n\n'
    event = parse_event(raw)
    assert (event.raw, event.name, event.data) == (
        raw,
        "content_block_delta",
        b'{"type":"content_block_delta"}',
    )
