"""A long list is checked column by column before it is walked element by element: the
answer is the same as for a short list, bad field for bad field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routatic_asgi.shapes import check_request
from tests.test_hostile_input import (
    ANTHROPIC_BODY,
    ANTHROPIC_CASES,
    ANTHROPIC_FIELDS,
    JSON,
    OPENAI_BODY,
    OPENAI_CASES,
    OPENAI_FIELDS,
    put,
)

# Beside the hostile-input cases: a wrong string where a few are allowed, an unknown block
# type among known ones, a known-type block missing its required field.
MORE_CASES = [
    {"messages": [{"role": "robot", "content": "hi"}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "x"}]}]},
    {
        "messages": [
            {"role": "user", "content": [{"type": "web_search_tool_result"}, {"type": "text"}]}
        ]
    },
    {"tool_choice": {"type": "tool"}},
]


def lengthened(body: dict[str, Any]) -> dict[str, Any]:
    """Every top-level list ten times over: a bad element stays at the index it had."""
    return {name: value * 10 if type(value) is list else value for name, value in body.items()}


@pytest.mark.parametrize(
    ("endpoint", "body", "change"),
    [("messages", ANTHROPIC_BODY, change) for change, _ in ANTHROPIC_CASES]
    + [("messages", ANTHROPIC_BODY, change) for change in MORE_CASES]
    + [("chat_completions", OPENAI_BODY, MORE_CASES[0])]
    + [("chat_completions", OPENAI_BODY, change) for change, _ in OPENAI_CASES],
)
def test_a_bad_field_in_a_long_list_is_named_as_in_a_short_one(
    endpoint: str, body: dict[str, Any], change: dict[str, Any]
) -> None:
    short = {**body, **change}
    problem = check_request(endpoint, short)
    assert problem is not None
    assert check_request(endpoint, lengthened(short)) == problem


@settings(max_examples=300, deadline=None)
@given(openai=st.booleans(), data=st.data())
def test_a_long_list_is_checked_as_strictly_as_a_short_one(
    openai: bool, data: st.DataObject
) -> None:
    body = copy.deepcopy(OPENAI_BODY if openai else ANTHROPIC_BODY)
    for _ in range(data.draw(st.integers(1, 3))):
        put(
            body,
            data.draw(st.sampled_from(OPENAI_FIELDS if openai else ANTHROPIC_FIELDS)),
            data.draw(JSON),
        )
    endpoint = "chat_completions" if openai else "messages"
    assert check_request(endpoint, lengthened(body)) == check_request(endpoint, body)
