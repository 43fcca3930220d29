"""What a request body asks for: the traits routes can ask for with `when:`, the token
estimate, and fitness for a model's configured capabilities, from either protocol's body."""

from __future__ import annotations

from typing import Any

import pytest

from routatic_asgi.config import ModelCaps
from routatic_asgi.payload import estimate_tokens, request_traits, unfit_reason

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


def test_unfit_reasons_follow_the_model_capabilities() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://e/x.png"}}
    with_image = {"model": "m", "messages": [{"role": "user", "content": [image]}]}
    with_tools = {"model": "m", "tools": [{"name": "t"}], "messages": []}
    long = {"model": "m", "messages": [{"role": "user", "content": "word " * 4000}]}
    assert unfit_reason(with_image, None) is None
    assert unfit_reason(with_image, ModelCaps(vision=False)) == "unfit_vision"
    assert unfit_reason(with_image, ModelCaps()) is None
    assert unfit_reason(with_tools, ModelCaps(tools=False)) == "unfit_tools"
    assert unfit_reason(long, ModelCaps(context=4000)) == "unfit_context"
    assert unfit_reason(long, ModelCaps(context=8000)) is None


def test_estimate_counts_text_images_and_tools() -> None:
    text = {"model": "m", "messages": [{"role": "user", "content": "abcd" * 1000}]}
    assert 1000 <= estimate_tokens(text) <= 1010
    huge_image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "A" * 1_000_000},
    }
    image = {"model": "m", "messages": [{"role": "user", "content": [huge_image]}]}
    assert estimate_tokens(image) < 2000
    cjk = {"model": "m", "messages": [{"role": "user", "content": "漢字" * 100}]}
    assert estimate_tokens(cjk) >= 200
