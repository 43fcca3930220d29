"""End to end: the official SDKs through the gateway to targets of the other protocol.

Tool loops each way, a conversation that fails over from Anthropic to an OpenAI-protocol
provider and back, count_tokens without an Anthropic target, capability skips, trait routes
and /v1/models in OpenAI shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway
from tests.fake_clock import FakeClock
from tests.fake_upstream import Block, anthropic_blocks

SIGNATURE = "EqQBCkgIARABGAIiQL4e3W2hN0bJ0h0m8Jq9kVbZ3o1m2Yy0oQw2yqz+Ue3V7xk2c9T1b5Xy6Lz3pQ=="
READ_TOOL = {
    "name": "read",
    "description": "Read a file",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
}


def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> str:
    body: dict[str, Any] = {
        "id": "chatcmpl-e2e",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "deepseek-v4-flash",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n"


def openai_tool_stream(call_id: str, path: str, reasoning: str = "") -> list[str]:
    events = [chunk({"role": "assistant", "content": None})]
    if reasoning:
        events.append(chunk({"reasoning_content": reasoning}))
    events += [
        chunk({"content": "Let me read it."}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "read", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"path": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": json.dumps(path) + "}"}}]}),
        chunk({}, "tool_calls"),
        chunk(
            None,
            usage={
                "prompt_tokens": 300,
                "completion_tokens": 20,
                "total_tokens": 320,
                "prompt_tokens_details": {"cached_tokens": 256},
            },
        ),
        "data: [DONE]\n\n",
    ]
    return events


def openai_text_stream(text: str) -> list[str]:
    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": text}),
        chunk({}, "stop"),
        chunk(None, usage={"prompt_tokens": 400, "completion_tokens": 5, "total_tokens": 405}),
        "data: [DONE]\n\n",
    ]


def anthropic_tool_stream(tool_id: str, path: str, thinking: str = "") -> list[str]:
    """An Anthropic answer that calls `read` on `path`, after signed `thinking` if given."""
    blocks: list[Block] = []
    if thinking:
        deltas = [{"type": "thinking_delta", "thinking": thinking},
                  {"type": "signature_delta", "signature": SIGNATURE}]  # fmt: skip
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
    tool = {"type": "tool_use", "id": tool_id, "name": "read", "input": {}}
    arguments = {"type": "input_json_delta", "partial_json": json.dumps({"path": path})}
    blocks.append((tool, [arguments]))
    return anthropic_blocks("claude-sonnet-4-6", blocks, stop="tool_use", tokens=(40, 30),
                            message_id="msg_e2e")  # fmt: skip


def anthropic_text_message(text: str) -> dict[str, Any]:
    return {
        "id": "msg_text",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 90},
    }


def body_of(call: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(call["body"])
    return parsed


def header_names(call: dict[str, Any]) -> set[str]:
    return {name for name, _ in call["headers"]}


def provider(upstream: FakeUpstream, protocol: str, prefix: str, **extra: Any) -> dict[str, Any]:
    url = upstream.url(prefix) + ("/v1" if protocol == "openai" else "")
    settings: dict[str, Any] = {
        "protocol": protocol,
        "base_url": url,
        "keys": [f"sk-{prefix}-key0001"],
    }
    return {**settings, **extra}


class SDK:
    """The official clients, closed when the test ends (max_retries=0: the gateway retries)."""

    def __init__(self) -> None:
        self.made: list[Any] = []

    def anthropic(self, url: str) -> anthropic.Anthropic:
        client = anthropic.Anthropic(base_url=url, api_key="sk-client", max_retries=0)
        self.made.append(client)
        return client

    def openai(self, url: str) -> openai.OpenAI:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0)
        self.made.append(client)
        return client


@pytest.fixture
def sdk() -> Iterator[SDK]:
    clients = SDK()
    yield clients
    for client in clients.made:
        client.close()


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


def test_count_tokens_without_an_anthropic_target_is_estimated(
    upstream: FakeUpstream, sdk: SDK
) -> None:
    oai = upstream.provider()
    config = gateway_config(
        {"oai": provider(upstream, "openai", oai)}, [{"match": "*", "chain": ["oai/qwen3"]}]
    )
    with gateway(config) as url:
        count = sdk.anthropic(url).messages.count_tokens(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": "word " * 400}]
        )
    assert 450 <= count.input_tokens <= 550
    assert upstream.calls(oai) == []


def test_a_model_that_cannot_serve_the_request_is_skipped_without_a_call(
    upstream: FakeUpstream,
) -> None:
    small, vision = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "small": provider(
                upstream, "openai", small, models={"tiny": {"context": 1000, "vision": False}}
            ),
            "vision": provider(upstream, "openai", vision),
        },
        [{"match": "*", "chain": ["small/tiny", "vision/big"]}],
    )
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}}
    with gateway(config) as url:
        short = httpx.post(
            f"{url}/v1/messages",
            json={"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
        )
        pictured = httpx.post(
            f"{url}/v1/messages",
            json={
                "model": "m",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": [image]}],
            },
        )
        long = httpx.post(
            f"{url}/v1/messages",
            json={
                "model": "m",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "x " * 3000}],
            },
        )
    assert short.headers["x-routatic-target"] == "small/tiny"
    assert pictured.headers["x-routatic-target"] == "vision/big"
    assert pictured.headers["x-routatic-fallback"] == "small/tiny=unfit_vision"
    assert pictured.headers["x-routatic-attempts"] == "1"
    assert long.headers["x-routatic-fallback"] == "small/tiny=unfit_context"
    assert len(upstream.calls(small)) == 1


def test_routes_on_request_traits(upstream: FakeUpstream) -> None:
    names = ["thinking", "images", "long", "background", "default"]
    prefixes = {name: upstream.provider() for name in names}
    config = gateway_config(
        {name: provider(upstream, "openai", prefix) for name, prefix in prefixes.items()},
        [
            {"match": "*", "when": {"background": True}, "chain": ["background/small"]},
            {"match": "*", "when": {"tokens_over": 2000}, "chain": ["long/big"]},
            {"match": "*", "when": {"images": True}, "chain": ["images/vl"]},
            {"match": "*", "when": {"thinking": True}, "chain": ["thinking/reasoner"]},
            {"match": "*", "chain": ["default/chat"]},
        ],
    )
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "A" * 100_000},
    }
    cases = {
        "background": {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "t"}]},
        "long": {
            "model": "claude-sonnet-4-6",
            "messages": [{"role": "user", "content": "w " * 5000}],
        },
        "images": {
            "model": "claude-sonnet-4-6",
            "messages": [{"role": "user", "content": [image]}],
        },
        "thinking": {
            "model": "claude-sonnet-4-6",
            "thinking": {"type": "adaptive"},
            "messages": [{"role": "user", "content": "t"}],
        },
        "default": {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "t"}]},
    }
    with gateway(config) as url:
        for expected, body in cases.items():
            response = httpx.post(f"{url}/v1/messages", json={"max_tokens": 5, **body})
            assert response.status_code == 200, expected
            assert response.headers["x-routatic-target"].partition("/")[0] == expected
        for effort, target in (("high", "thinking/reasoner"), ("none", "default/chat")):
            chat = {"model": "gpt-5", "reasoning_effort": effort, "messages": [{"role": "user", "content": "t"}]}
            response = httpx.post(f"{url}/v1/chat/completions", json=chat)
            assert response.headers["x-routatic-target"] == target, effort


def test_models_answer_in_the_callers_shape(upstream: FakeUpstream, sdk: SDK) -> None:
    oai = upstream.provider()
    config = gateway_config(
        {"oai": provider(upstream, "openai", oai, models={"qwen3": {}})},
        # /v1/models lists what a client can ask for: a model a route matches.
        [
            {"match": "claude-sonnet-4-6", "chain": ["oai/qwen3"]},
            {"match": "qwen3", "chain": ["oai/qwen3"]},
        ],
    )
    with gateway(config) as url:
        listed = sdk.openai(url).models.list()
        page = sdk.anthropic(url).models.list()
    assert [m.id for m in listed.data] == ["claude-sonnet-4-6", "qwen3"]
    assert all(m.object == "model" for m in listed.data)
    assert [m.id for m in page.data] == ["claude-sonnet-4-6", "qwen3"]
    assert all(m.type == "model" for m in page.data)


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
