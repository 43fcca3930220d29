"""End to end: failing over between protocols: a conversation that moves from Anthropic to an
OpenAI-protocol provider and back, and translated answers that cannot be read or fail."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway
from tests.e2e.translation_kit import (
    READ_TOOL,
    SDK,
    anthropic_tool_stream,
    body_of,
    chunk,
    openai_text_stream,
    openai_tool_stream,
    provider,
)
from tests.fake_clock import FakeClock


def test_a_conversation_fails_over_to_openai_and_back(upstream: FakeUpstream, sdk: SDK) -> None:
    """Anthropic → (529) DeepSeek-like → Anthropic again → (529) the OpenAI target once more."""
    ant, oai = upstream.provider(), upstream.provider()
    config = gateway_config(
        {"ant": provider(upstream, "anthropic", ant), "oai": provider(upstream, "openai", oai)},
        [{"match": "claude-*", "chain": ["ant/{model}", "oai/deepseek-v4-flash"]}],
        resilience={"retry": {"attempts": 0}, "breaker": {"failures": 1}},
    )
    overloaded = {
        "status": 529,
        "json": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    }
    upstream.script(ant, overloaded)
    upstream.script(oai, {"sse": openai_tool_stream("call_00_a", "a.txt", reasoning="Need a.")})
    clock = FakeClock()  # moved by hand so breaker cooldowns pass without sleeping
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    messages: list[Any] = [{"role": "user", "content": "Compare a.txt and b.txt"}]

    def turn(client: anthropic.Anthropic) -> Any:
        with client.messages.stream(
            model="claude-sonnet-4-6",
            max_tokens=8000,
            thinking=thinking,
            tools=[READ_TOOL],
            messages=messages,
        ) as stream:
            message = stream.get_final_message()
            headers = stream.response.headers
        tool_use = next(b for b in message.content if b.type == "tool_use")
        messages.append(
            {
                "role": "assistant",
                "content": [b.model_dump(exclude_none=True) for b in message.content],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_use.id,
                        "content": f"contents of {tool_use.input['path']}",
                    }
                ],
            }
        )
        return message, headers

    with gateway(config, clock=clock) as url:
        client = sdk.anthropic(url)
        first, headers = turn(client)
        assert headers["x-routatic-target"] == "oai/deepseek-v4-flash"
        assert [b.type for b in first.content] == ["thinking", "text", "tool_use"]
        assert first.content[0].signature == ""

        clock.now += 3600  # Anthropic's cooldown has passed: the next turn goes back to it
        upstream.script(
            ant, {"sse": anthropic_tool_stream("toolu_01B", "b.txt", thinking="Now b.")}
        )
        second, headers = turn(client)
        assert headers["x-routatic-target"] == "ant/claude-sonnet-4-6"
        assert [b.type for b in second.content] == ["thinking", "tool_use"]

        clock.now += 3600
        upstream.script(ant, overloaded)
        upstream.script(oai, {"sse": openai_text_stream("a says a, b says b.")})
        with client.messages.stream(
            model="claude-sonnet-4-6",
            max_tokens=8000,
            thinking=thinking,
            tools=[READ_TOOL],
            messages=messages,
        ) as stream:
            third = stream.get_final_message()
    assert third.content[-1].type == "text" and third.content[-1].text == "a says a, b says b."

    # Back on Anthropic: the unsigned thinking was dropped, ids kept, thinking off for the loop.
    back = body_of(upstream.calls(ant)[1])
    assert back["messages"][1]["content"] == [
        {"type": "text", "text": "Let me read it."},
        {"type": "tool_use", "id": "call_00_a", "name": "read", "input": {"path": "a.txt"}},
    ]
    assert back["messages"][2]["content"][0]["tool_use_id"] == "call_00_a"
    assert "thinking" not in back
    # On the OpenAI target again: reasoning of both tool-call turns comes back, ids unchanged.
    again = body_of(upstream.calls(oai)[1])
    assistants = [m for m in again["messages"] if m["role"] == "assistant"]
    assert [a["tool_calls"][0]["id"] for a in assistants] == ["call_00_a", "toolu_01B"]
    assert [a["reasoning_content"] for a in assistants] == ["Need a.", "Now b."]
    assert [m["tool_call_id"] for m in again["messages"] if m["role"] == "tool"] == [
        "call_00_a",
        "toolu_01B",
    ]


def test_unreadable_or_failing_translated_answers_fall_back(
    upstream: FakeUpstream, sdk: SDK
) -> None:
    first, second = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "first": provider(upstream, "openai", first),
            "second": provider(upstream, "openai", second),
        },
        [{"match": "*", "chain": ["first/a", "second/b"]}],
        resilience={"retry": {"attempts": 0}},
    )
    html = {"status": 200, "headers": {"content-type": "text/html"}, "body": "<html>login</html>"}
    error = json.dumps({"error": {"message": "overloaded", "type": "server_error"}})
    broken_stream = {"sse": [chunk({"role": "assistant", "content": ""}), f"data: {error}\n\n"]}
    upstream.script(first, html, broken_stream)
    clock = FakeClock()  # moved by hand so breaker cooldowns pass without sleeping
    with gateway(config, clock=clock) as url:
        client = sdk.anthropic(url)
        unstreamed = client.messages.with_raw_response.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        clock.now += 3600  # past the first target's cooldown
        with client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            streamed = stream.get_final_message()
            headers = stream.response.headers
    assert unstreamed.headers["x-routatic-fallback"] == "first/a=unreadable_answer"
    assert unstreamed.parse().content[0].type == "text"
    assert headers["x-routatic-target"] == "second/b"
    assert headers["x-routatic-fallback"] == "first/a=status_500"  # the error chunk, classified
    assert len(upstream.calls(first)) == 2
    assert [b.type for b in streamed.content] == ["text"]


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/responses"])
def test_a_completion_without_a_message_is_a_bad_gateway_not_an_empty_answer(
    upstream: FakeUpstream, path: str
) -> None:
    first, second = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "first": provider(upstream, "openai", first),
            "second": provider(upstream, "openai", second),
        },
        [{"match": "lone", "chain": ["first/a"]}, {"match": "*", "chain": ["first/a", "second/b"]}],
        resilience={"retry": {"attempts": 0}},
    )
    if path == "/v1/messages":
        ask: dict[str, Any] = {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    else:
        ask = {"input": "hi"}
    empty = {"status": 200, "json": {"id": "c1", "choices": [{"finish_reason": "stop"}]}}
    upstream.script(first, empty, empty)
    clock = FakeClock()
    with gateway(config, clock=clock) as url:
        served = httpx.post(url + path, json={"model": "m", **ask}, timeout=30)
        clock.now += 3600  # past the first target's cooldown
        alone = httpx.post(url + path, json={"model": "lone", **ask}, timeout=30)
    assert served.status_code == 200
    assert served.headers["x-routatic-fallback"] == "first/a=unreadable_answer"
    assert served.headers["x-routatic-target"] == "second/b"
    assert alone.status_code == 502
    error = alone.json()
    if path == "/v1/messages":
        assert error["type"] == "error" and "unreadable" in error["error"]["message"]
    else:
        assert "unreadable" in error["error"]["message"]
