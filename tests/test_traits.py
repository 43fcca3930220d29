"""Request traits that routes can ask for with `when:`, read from either protocol's body."""

from __future__ import annotations

from typing import Any

import pytest

from routatic_asgi.routing import request_traits

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("payload", "thinking"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, True),
        ({"thinking": {"type": "adaptive"}}, True),
        ({"thinking": {"type": "disabled"}}, False),
        ({"reasoning_effort": "high"}, True),
        ({"reasoning_effort": "none"}, False),
        ({"reasoning": {"effort": "low"}}, True),
        ({}, False),
    ],
)
def test_thinking(payload: dict[str, Any], thinking: bool) -> None:
    assert request_traits({"model": "m", "messages": HI, **payload})["thinking"] is thinking


@pytest.mark.parametrize(
    ("model", "background"),
    [
        ("claude-haiku-4-5", True),
        ("claude-3-5-haiku-20241022", True),
        ("Claude-Haiku", True),
        ("claude-sonnet-4-6", False),
        ("gpt-5", False),
    ],
)
def test_background_is_the_small_fast_model(model: str, background: bool) -> None:
    assert request_traits({"model": model, "messages": HI})["background"] is background


def test_images_in_messages_and_tool_results_of_both_protocols() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://e/x.png"}}
    result = {"type": "tool_result", "tool_use_id": "t", "content": [image]}
    part = {"type": "image_url", "image_url": {"url": "https://e/x.png"}}
    for content in ([image], [result], [part]):
        messages = [{"role": "user", "content": content}]
        assert request_traits({"model": "m", "messages": messages})["images"] is True
    assert request_traits({"model": "m", "messages": HI})["images"] is False


def test_tokens_count_text_not_the_bytes_of_an_image() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "A" * 400_000},
    }
    pictured = request_traits({"model": "m", "messages": [{"role": "user", "content": [image]}]})
    assert pictured["tokens"] < 2000
    long = request_traits({"model": "m", "messages": [{"role": "user", "content": "word " * 8000}]})
    assert 9000 < long["tokens"] < 11000
