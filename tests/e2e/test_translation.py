"""End to end: the official SDKs through the gateway to a target of the other protocol: tool
loops each way, and errors in the caller's own envelope (what fails over between protocols:
test_translated_fallback.py; what a request's shape decides: test_request_routing.py)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway
from tests.e2e.translation_kit import (
    READ_TOOL,
    SDK,
    anthropic_text_message,
    anthropic_tool_stream,
    body_of,
    header_names,
    openai_text_stream,
    openai_tool_stream,
    provider,
)


def test_anthropic_sdk_tool_loop_on_an_openai_target(upstream: FakeUpstream, sdk: SDK) -> None:
    oai = upstream.provider()
    config = gateway_config(
        {"oai": provider(upstream, "openai", oai)},
        [{"match": "claude-*", "chain": ["oai/deepseek-v4-flash"]}],
    )
    upstream.script(
        oai,
        {"sse": openai_tool_stream("call_00_x1", "a.txt")},
        {"sse": openai_text_stream("It says hello.")},
    )
    messages: list[Any] = [{"role": "user", "content": "What is in a.txt?"}]
    with gateway(config) as url:
        client = sdk.anthropic(url)
        with client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=1000, tools=[READ_TOOL], messages=messages
        ) as stream:
            first = stream.get_final_message()
        assert [b.type for b in first.content] == ["text", "tool_use"]
        tool_use = first.content[1]
        assert tool_use.type == "tool_use"
        assert (tool_use.id, tool_use.name, tool_use.input) == (
            "call_00_x1",
            "read",
            {"path": "a.txt"},
        )
        assert first.stop_reason == "tool_use"
        assert (first.usage.input_tokens, first.usage.cache_read_input_tokens) == (44, 256)
        messages += [
            {
                "role": "assistant",
                "content": [b.model_dump(exclude_none=True) for b in first.content],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tool_use.id, "content": "hello"}
                ],
            },
        ]
        with client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=1000, tools=[READ_TOOL], messages=messages
        ) as stream:
            second = stream.get_final_message()
    assert second.content[0].type == "text" and second.content[0].text == "It says hello."
    calls = upstream.calls(oai)
    assert [c["path"] for c in calls] == ["/v1/chat/completions"] * 2
    sent = body_of(calls[1])
    assert sent["model"] == "deepseek-v4-flash"
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"][1]["tool_calls"][0]["id"] == "call_00_x1"
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_00_x1", "content": "hello"}
    names = header_names(calls[1])
    assert not any(name.startswith("anthropic-") for name in names)
    assert ("authorization", f"Bearer sk-{oai}-key0001") in [tuple(h) for h in calls[1]["headers"]]
    assert "x-api-key" not in names  # the client's own key never leaves for this provider


def test_anthropic_sdk_unstreamed_answer_from_an_openai_target(
    upstream: FakeUpstream, sdk: SDK
) -> None:
    oai = upstream.provider()
    config = gateway_config(
        {"oai": provider(upstream, "openai", oai)}, [{"match": "*", "chain": ["oai/qwen3"]}]
    )
    with gateway(config) as url:
        response = sdk.anthropic(url).messages.with_raw_response.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
    message = response.parse()
    assert response.headers["content-type"] == "application/json"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the fake upstream."
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 7


def test_openai_errors_reach_anthropic_clients_in_their_envelope(
    upstream: FakeUpstream, sdk: SDK
) -> None:
    oai = upstream.provider()
    config = gateway_config(
        {"oai": provider(upstream, "openai", oai)}, [{"match": "*", "chain": ["oai/qwen3"]}]
    )
    error = {
        "error": {"message": "Invalid tool schema", "type": "invalid_request_error", "code": None}
    }
    upstream.script(oai, {"status": 400, "json": error})
    with gateway(config) as url, pytest.raises(anthropic.BadRequestError) as raised:
        sdk.anthropic(url).messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "Invalid tool schema"},
    }


def test_openai_sdk_tool_loop_on_an_anthropic_target(upstream: FakeUpstream, sdk: SDK) -> None:
    ant = upstream.provider()
    config = gateway_config(
        {"ant": provider(upstream, "anthropic", ant)},
        [{"match": "*", "chain": ["ant/claude-sonnet-4-6"]}],
    )
    upstream.script(
        ant,
        {"sse": anthropic_tool_stream("toolu_01OAI", "b.txt", thinking="Read b.")},
        {"status": 200, "json": anthropic_text_message("It says bye.")},
    )
    tools: Any = [
        {"type": "function", "function": {"name": "read", "parameters": READ_TOOL["input_schema"]}}
    ]
    messages: list[Any] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is in b.txt?"},
    ]
    with gateway(config) as url:
        client = sdk.openai(url)
        with client.chat.completions.stream(
            model="gpt-5", messages=messages, tools=tools, stream_options={"include_usage": True}
        ) as stream:
            first = stream.get_final_completion()
        reply = first.choices[0].message
        assert first.choices[0].finish_reason == "tool_calls"
        [call] = reply.tool_calls or []
        assert call.type == "function"
        assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
            "toolu_01OAI",
            "read",
            {"path": "b.txt"},
        )
        assert first.usage is not None and first.usage.prompt_tokens == 40
        messages += [
            reply.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "bye"},
        ]
        second = client.chat.completions.create(model="gpt-5", messages=messages, tools=tools)
    assert second.choices[0].message.content == "It says bye."
    assert second.choices[0].finish_reason == "stop"
    assert second.usage is not None and second.usage.prompt_tokens_details is not None
    assert (second.usage.prompt_tokens, second.usage.prompt_tokens_details.cached_tokens) == (
        100,
        90,
    )
    calls = upstream.calls(ant)
    assert [c["path"] for c in calls] == ["/v1/messages"] * 2
    headers = dict(tuple(h) for h in calls[1]["headers"])
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["x-api-key"] == f"sk-{ant}-key0001"
    sent = body_of(calls[1])
    breakpoint = {"type": "ephemeral"}  # automatic: an OpenAI client cannot mark its own
    assert sent["system"] == [{"type": "text", "text": "Be brief.", "cache_control": breakpoint}]
    assert sent["max_tokens"] == 8192
    assert sent["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_01OAI", "name": "read", "input": {"path": "b.txt"}}
    ]
    assert sent["messages"][2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_01OAI",
            "content": "bye",
            "cache_control": breakpoint,
        }
    ]


def test_an_openai_clients_anthropic_key_reaches_a_passthrough_provider_as_x_api_key(
    upstream: FakeUpstream,
) -> None:
    ant = upstream.provider()
    config = gateway_config(
        {"ant": {"protocol": "anthropic", "base_url": upstream.url(ant), "auth": "passthrough"}},
        [{"match": "*", "chain": ["ant/claude-sonnet-4-6"]}],
    )
    upstream.script(ant, {"status": 200, "json": anthropic_text_message("hi")})
    upstream.script(ant, {"status": 200, "json": anthropic_text_message("hi")})
    with gateway(config) as url:
        for key in ("sk-ant-api03-client-key", "sk-ant-oat01-oauth-token"):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
            reply = client.chat.completions.create(
                model="gpt-5", messages=[{"role": "user", "content": "hi"}]
            )
            client.close()
            assert reply.choices[0].message.content == "hi"
    api_key, oauth = (dict(tuple(h) for h in call["headers"]) for call in upstream.calls(ant))
    assert api_key["x-api-key"] == "sk-ant-api03-client-key"
    assert "authorization" not in api_key
    assert oauth["authorization"] == "Bearer sk-ant-oat01-oauth-token"
    assert "x-api-key" not in oauth


def test_anthropic_errors_reach_openai_clients_in_their_envelope(
    upstream: FakeUpstream, sdk: SDK
) -> None:
    ant = upstream.provider()
    config = gateway_config(
        {"ant": provider(upstream, "anthropic", ant)},
        [{"match": "*", "chain": ["ant/claude-sonnet-4-6"]}],
    )
    error = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "messages: empty"},
    }
    upstream.script(ant, {"status": 400, "json": error})
    with gateway(config) as url, pytest.raises(openai.BadRequestError) as raised:
        sdk.openai(url).chat.completions.create(
            model="gpt-5", messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.body == {
        "message": "messages: empty",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request_error",
    }
