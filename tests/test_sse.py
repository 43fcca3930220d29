"""The SSE framer: any chunking of a stream yields the same events with the same bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routatic_asgi.sse import EVENT_LIMIT, EventTooLarge, SSEFramer, encode_event, parse_event
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


@given(
    st.binary(max_size=200).map(lambda b: bytes(b"\r\na:"[x % 4] for x in b)),
    st.lists(st.integers(min_value=0, max_value=200), max_size=60),
)
def test_any_chunking_of_line_ends_frames_like_one_piece(data: bytes, cuts: list[int]) -> None:
    """Held bytes are not rescanned: a boundary split across any number of tiny chunks
    (`\\r\\n` `\\r` `\\n` `\\r`) is still found exactly where one whole feed finds it."""
    assert frame(split(data, cuts)) == frame([data])
    assert frame([data[i : i + 1] for i in range(len(data))]) == frame([data])


def test_an_unterminated_event_past_the_limit_fails_the_stream() -> None:
    framer = SSEFramer(limit=1024 * 1024)
    framer.feed(b"event: a\ndata: 1\n\nevent: content_block_delta\ndata: ")
    piece = b"x" * 4096
    with pytest.raises(EventTooLarge):
        for _ in range(1024 * 1024 // len(piece) + 1):
            framer.feed(piece)


def test_one_chunk_holding_an_event_past_the_limit_fails_the_stream() -> None:
    framer = SSEFramer(limit=1000)
    assert len(framer.feed(b"data: " + b"x" * 900 + b"\n\n")) == 1
    with pytest.raises(EventTooLarge):
        framer.feed(b"data: " + b"x" * 1000 + b"\n\ndata: y\n\n")


def test_events_hands_each_event_over_before_the_rest_of_the_chunk_is_framed() -> None:
    # A relay sends the first content on before it frames the rest of a whole answer; the
    # event past the limit still fails the stream when it is reached, and nothing sooner.
    framer = SSEFramer(limit=1000)
    events = framer.events(b"data: 1\n\nevent: a\ndata: 2\n\ndata: " + b"x" * 1000 + b"\n\n")
    assert next(events).data == b"1"
    assert next(events).name == "a"
    with pytest.raises(EventTooLarge):
        next(events)


def test_events_read_to_the_end_keep_the_unterminated_rest() -> None:
    framer = SSEFramer()
    assert [e.data for e in framer.events(b"data: 1\n\ndata: 2")] == [b"1"]
    assert [e.raw for e in framer.events(b"\n\n")] == [b"data: 2\n\n"]
    assert framer.tail() == b""


def test_the_default_limit_is_16_mib() -> None:
    assert EVENT_LIMIT == 16 * 1024 * 1024
    framer = SSEFramer()
    framer.feed(b"data: ")
    chunk = b"x" * (1024 * 1024)
    for _ in range(15):
        framer.feed(chunk)  # 15 MiB held: still one event in progress
    with pytest.raises(EventTooLarge):
        framer.feed(chunk * 2)
