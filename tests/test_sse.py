"""The SSE framer: any chunking of a stream yields the same events with the same bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from routatic_asgi.sse import SSEFramer, encode_event, parse_event
from tests.fake_upstream import anthropic_stream, openai_stream

STREAM = "".join(anthropic_stream("claude-x", deltas=5)).encode()


def frame(chunks: list[bytes]) -> tuple[list[bytes], bytes]:
    framer = SSEFramer()
    raws = [event.raw for chunk in chunks for event in framer.feed(chunk)]
    return raws, framer.tail()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_any_chunking_yields_the_same_events(cuts: list[int]) -> None:
    whole, _ = frame([STREAM])
    raws, tail = frame(split(STREAM, cuts))
    assert raws == whole
    assert b"".join(raws) == STREAM
    assert tail == b""


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", None]), st.text(alphabet='xyz {}:"', max_size=20)),
        max_size=8,
    ),
    st.sampled_from([b"\n", b"\r\n"]),
    st.lists(st.integers(min_value=0, max_value=500), max_size=20),
)
def test_line_endings_and_cuts(
    events: list[tuple[str | None, str]], newline: bytes, cuts: list[int]
) -> None:
    wire = b"".join(
        (b"event: " + name.encode() + newline if name else b"")
        + b"data: "
        + data.encode()
        + newline
        + newline
        for name, data in events
    )
    raws, tail = frame(split(wire, cuts))
    assert b"".join(raws) + tail == wire
    parsed = [parse_event(raw) for raw in raws]
    assert [(e.name, e.data.decode()) for e in parsed] == events


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=10))
def test_arbitrary_bytes_never_raise_and_lose_nothing(data: bytes, cuts: list[int]) -> None:
    raws, tail = frame(split(data, cuts))
    kept = b"".join(raws) + tail
    # Blank separators between events are not events; everything else is kept in order.
    assert kept.replace(b"\r", b"").replace(b"\n", b"") == data.replace(b"\r", b"").replace(
        b"\n", b""
    )


def test_parse_event_fields() -> None:
    event = parse_event(b': comment\nevent: message_start\ndata: {"a":\ndata: 1}\nid: 7\n\n')
    assert event.name == "message_start"
    assert event.data == b'{"a":\n1}'
    bare = [parse_event(raw) for raw in frame(["".join(openai_stream("m")).encode()])[0]]
    assert bare[-1].name is None and bare[-1].data == b"[DONE]"


def test_encode_event_round_trips() -> None:
    event = parse_event(encode_event("error", b'{"type":"error"}'))
    assert (event.name, event.data) == ("error", b'{"type":"error"}')
