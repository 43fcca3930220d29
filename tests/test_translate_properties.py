"""Properties of the translation: SSE chunking does not matter; a round trip keeps the talk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routatic_asgi.translate import to_anthropic, to_openai
from tests.translation_cases import all_fixtures, exchange, load, stream_output

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
