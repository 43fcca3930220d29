"""Properties of the translation: SSE chunking does not matter; a round trip keeps the talk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routatic_asgi.translate import to_anthropic, to_openai
from routatic_asgi.translate.responses import to_pivot, to_responses
from tests.translation_cases import all_fixtures, exchange, load, stream_output
from tests.translation_cases import events as events_of

STREAMS = [p for p in all_fixtures() if load(p)["kind"] == "stream"]


def cut(text: str, points: list[int]) -> list[str]:
    encoded = text.encode()
    bounds = sorted({min(p, len(encoded)) for p in points})
    pieces, start = [], 0
    for bound in [*bounds, len(encoded)]:
        pieces.append(encoded[start:bound])
        start = bound
    # Fixture streams are ASCII-safe JSON, so any byte cut decodes.
    return [piece.decode() for piece in pieces if piece]


@pytest.mark.parametrize("path", STREAMS, ids=lambda p: p.stem)
@settings(max_examples=40, deadline=None)
@given(points=st.lists(st.integers(min_value=0, max_value=4000), max_size=30))
def test_any_chunking_yields_the_same_translation(path: Path, points: list[int]) -> None:
    fixture = load(path)
    whole = "".join(fixture["input"])
    assert whole.isascii()
    expected = stream_output(exchange(fixture).stream(), [whole])
    assert stream_output(exchange(fixture).stream(), cut(whole, points)) == expected


# --- Anthropic → OpenAI → Anthropic ------------------------------------------------------

words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30
)
ids = st.from_regex(r"toolu_[A-Za-z0-9]{4,20}", fullmatch=True)
names = st.from_regex(r"[a-z][a-z_]{0,15}", fullmatch=True)
inputs = st.dictionaries(
    names, st.one_of(st.integers(-(2**63), 2**63 - 1), words, st.booleans()), max_size=3
)


@st.composite
def conversations(draw: Any) -> list[dict[str, Any]]:
    """User text, then rounds of assistant text + tool calls and user tool results + text."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": draw(words)}]
    for _ in range(draw(st.integers(0, 3))):
        calls = draw(st.lists(st.tuples(ids, names, inputs), max_size=3, unique_by=lambda c: c[0]))
        blocks: list[dict[str, Any]] = [{"type": "text", "text": draw(words)}]
        blocks += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in calls]
        messages.append({"role": "assistant", "content": blocks})
        results: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": i, "content": draw(words)} for i, _, _ in calls
        ]
        messages.append(
            {"role": "user", "content": [*results, {"type": "text", "text": draw(words)}]}
        )
    return messages


def talk(messages: list[dict[str, Any]]) -> list[Any]:
    """What must survive: each turn's role, texts, tool calls and tool results, in order."""
    turns = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        turns.append(
            (
                message["role"],
                [
                    (
                        b["type"],
                        b.get("text"),
                        b.get("id") or b.get("tool_use_id"),
                        b.get("name"),
                        b.get("input"),
                        b.get("content"),
                    )
                    for b in content
                ],
            )
        )
    return turns


@settings(max_examples=150, deadline=None)
@given(messages=conversations(), system=words)
def test_anthropic_to_openai_and_back_keeps_content_tools_and_ids(
    messages: list[dict[str, Any]], system: str
) -> None:
    tools = [{"name": "read", "description": "d", "input_schema": {"type": "object"}}]
    payload = {
        "model": "m",
        "max_tokens": 100,
        "system": system,
        "tools": tools,
        "messages": messages,
    }
    back = to_anthropic(to_openai(payload, "gpt"), "claude")
    assert back["system"] == [{"type": "text", "text": system}]
    assert back["tools"] == tools
    assert talk(back["messages"]) == talk(messages)


# --- any OpenAI chunk sequence becomes a well-formed Anthropic stream --------------------

deltas = st.one_of(
    st.fixed_dictionaries({"content": words}),
    st.fixed_dictionaries({"reasoning_content": words}),
    st.fixed_dictionaries(
        {
            "tool_calls": st.lists(
                st.fixed_dictionaries(
                    {
                        "index": st.integers(0, 2),
                        "function": st.fixed_dictionaries({"arguments": words}),
                    },
                    optional={
                        "id": st.sampled_from(["call_a", "call_b", "call_c"]),
                        "type": st.just("function"),
                    },
                ),
                min_size=1,
                max_size=2,
            )
        }
    ),
)


def chunk_of(delta: dict[str, Any], finish: str | None = None) -> str:
    body = {
        "id": "c",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(deltas, min_size=1, max_size=12),
    finish=st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
)
def test_any_openai_stream_becomes_a_well_formed_anthropic_stream(
    parts: list[dict[str, Any]], finish: str
) -> None:
    chunks = [chunk_of({"role": "assistant"}), *map(chunk_of, parts), chunk_of({}, finish)]
    fixture = {"direction": "anthropic-to-openai", "kind": "stream", "request": {"stream": True}}
    codec = exchange(fixture).stream()
    events = events_of(stream_output(codec, [*chunks, "data: [DONE]\n\n"]))
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    open_index, next_index = None, 0
    for name, data in events[1:-2]:
        if name == "content_block_start":
            assert open_index is None and data["index"] == next_index
            open_index, next_index = data["index"], next_index + 1
        elif name in ("content_block_delta", "content_block_stop"):
            assert data["index"] == open_index
            if name == "content_block_stop":
                open_index = None
    assert open_index is None
    has_tools = any(
        d["content_block"]["type"] == "tool_use" for n, d in events if n == "content_block_start"
    )
    assert (events[-2][1]["delta"]["stop_reason"] == "tool_use") == has_tools


# --- the Responses API: every pair round-trips through the pivot --------------------------


def pivot_payload(messages: list[dict[str, Any]], system: str) -> dict[str, Any]:
    tools = [{"name": "read", "description": "d", "input_schema": {"type": "object"}}]
    return {"model": "m", "max_tokens": 100, "system": system, "tools": tools, "messages": messages}


@settings(max_examples=150, deadline=None)
@given(messages=conversations(), system=words)
def test_anthropic_to_responses_and_back_keeps_content_tools_and_ids(
    messages: list[dict[str, Any]], system: str
) -> None:
    payload = pivot_payload(messages, system)
    back = to_pivot(to_responses(payload, "gpt-5"), "claude")
    assert back["system"] == [{"type": "text", "text": system}]
    assert back["tools"] == payload["tools"]
    assert talk(back["messages"]) == talk(messages)


@settings(max_examples=150, deadline=None)
@given(messages=conversations(), system=words)
def test_chat_to_responses_and_back_keeps_every_message(
    messages: list[dict[str, Any]], system: str
) -> None:
    chat = to_openai(pivot_payload(messages, system), "gpt")
    responses = to_responses(to_anthropic(chat, "gpt-5"), "gpt-5")
    again = to_openai(to_pivot(responses, "m"), "gpt")
    assert again["messages"] == chat["messages"]
    assert again["tools"] == chat["tools"]


@settings(max_examples=150, deadline=None)
@given(messages=conversations(), system=words)
def test_responses_to_chat_and_back_keeps_every_item(
    messages: list[dict[str, Any]], system: str
) -> None:
    # A Responses body as this codec writes it (string user turns become parts).
    written = to_responses(pivot_payload(messages, system), "gpt-5")
    responses = to_responses(to_pivot(written, "m"), "gpt-5")
    chat = to_openai(to_pivot(responses, "m"), "gpt")
    again = to_responses(to_anthropic(chat, "m"), "gpt-5")
    assert again["input"] == responses["input"]
    assert again["instructions"] == responses["instructions"]


# --- any pivot stream becomes a well-formed Responses stream -------------------------------

blocks = st.lists(
    st.one_of(
        st.tuples(st.just("text"), st.lists(words, min_size=1, max_size=3)),
        st.tuples(st.just("thinking"), st.lists(words, min_size=1, max_size=3)),
        st.tuples(st.just("tool_use"), st.lists(words, max_size=3)),
    ),
    min_size=1,
    max_size=6,
)


def pivot_events(parts: list[tuple[str, list[str]]], stop: str) -> list[str]:
    def event(name: str, data: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

    message = {"id": "msg_p", "model": "m", "content": [], "usage": {"input_tokens": 3}}
    out = [event("message_start", {"message": message})]
    for index, (kind, pieces) in enumerate(parts):
        block: dict[str, Any] = {"type": kind}
        if kind == "tool_use":
            block.update(id=f"toolu_{index}", name="read", input={})
        out.append(event("content_block_start", {"index": index, "content_block": block}))
        for piece in pieces:
            delta = {
                "text": {"type": "text_delta", "text": piece},
                "thinking": {"type": "thinking_delta", "thinking": piece},
                "tool_use": {"type": "input_json_delta", "partial_json": piece},
            }[kind]
            out.append(event("content_block_delta", {"index": index, "delta": delta}))
        out.append(event("content_block_stop", {"index": index}))
    out.append(
        event("message_delta", {"delta": {"stop_reason": stop}, "usage": {"output_tokens": 5}})
    )
    out.append(event("message_stop", {}))
    return out


@settings(max_examples=200, deadline=None)
@given(parts=blocks, stop=st.sampled_from(["end_turn", "tool_use", "max_tokens"]))
def test_any_pivot_stream_becomes_a_well_formed_responses_stream(
    parts: list[tuple[str, list[str]]], stop: str
) -> None:
    fixture = {"direction": "responses-to-anthropic", "kind": "stream", "request": {"stream": True}}
    events = events_of(stream_output(exchange(fixture).stream(), pivot_events(parts, stop)))
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert [name for name, _ in events[:2]] == ["response.created", "response.in_progress"]
    last = events[-1][1]
    assert last["type"] == ("response.incomplete" if stop == "max_tokens" else "response.completed")
    added = [d["item"]["id"] for n, d in events if n == "response.output_item.added"]
    done = [d["item"] for n, d in events if n == "response.output_item.done"]
    assert (
        added
        == [item["id"] for item in done]
        == [item["id"] for item in last["response"]["output"]]
    )
    assert len(set(added)) == len(parts)
    for (kind, pieces), item in zip(parts, done, strict=True):
        if kind == "text":
            assert item["content"][0]["text"] == "".join(pieces)
        elif kind == "tool_use":
            assert item["arguments"] == ("".join(pieces) or "{}")
        else:
            assert item["summary"][0]["text"] == "".join(pieces)
