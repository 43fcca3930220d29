"""End to end: the official openai SDK's `responses.create` through the gateway, failing over
from a Responses target to Anthropic and Chat Completions targets and back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway
from tests.e2e.translation_kit import (
    anthropic_text_message,
    anthropic_tool_stream,
    body_of,
    openai_text_stream,
    provider,
)
from tests.fake_clock import FakeClock
from tests.fake_upstream import openai_completion, responses_response, responses_stream

MODEL = "gpt-5"
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "read",
        "description": "Read a file",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
            "additionalProperties": False,
        },
    }
]
OVERLOADED = {"status": 503, "json": {"error": {"message": "busy", "type": "server_error"}}}
ANT_OVERLOADED = {
    "status": 529,
    "json": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
}


def three_targets(upstream: FakeUpstream) -> tuple[Any, str, str, str]:
    rsp, ant, oai = upstream.provider(), upstream.provider(), upstream.provider()
    responses = {**provider(upstream, "openai", rsp), "protocol": "responses"}
    config = gateway_config(
        {
            "rsp": responses,
            "ant": provider(upstream, "anthropic", ant),
            "oai": provider(upstream, "openai", oai),
        },
        [{"match": "*", "chain": ["rsp/{model}", "ant/claude-sonnet-4-6", "oai/deepseek-chat"]}],
        resilience={"retry": {"attempts": 0}},  # a failure moves on at once: these are about failover
    )
    return config, rsp, ant, oai


@pytest.fixture
def client_for() -> Iterator[Any]:
    made: list[openai.OpenAI] = []

    def make(url: str) -> openai.OpenAI:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_unstreamed_response_from_an_anthropic_fallback(
    upstream: FakeUpstream, client_for: Any
) -> None:
    config, rsp, ant, _ = three_targets(upstream)
    upstream.script(rsp, OVERLOADED)
    upstream.script(ant, {"status": 200, "json": anthropic_text_message("Bonjour.")})
    with gateway(config) as url:
        raw = client_for(url).responses.with_raw_response.create(
            model=MODEL, instructions="Be brief.", input="Say hello in French."
        )
    response = raw.parse()
    assert raw.headers["x-routatic-target"] == "ant/claude-sonnet-4-6"
    assert response.output_text == "Bonjour."
    assert response.status == "completed"
    assert response.usage is not None and response.usage.output_tokens > 0
    sent = body_of(upstream.calls(ant)[-1])
    # An automatic cache breakpoint: a Responses client cannot mark one itself.
    breakpoint = {"type": "ephemeral"}
    assert sent["system"] == [{"type": "text", "text": "Be brief.", "cache_control": breakpoint}]
    text = {"type": "text", "text": "Say hello in French.", "cache_control": breakpoint}
    assert sent["messages"] == [{"role": "user", "content": [text]}]


def test_streamed_response_from_a_chat_fallback(upstream: FakeUpstream, client_for: Any) -> None:
    config, rsp, ant, oai = three_targets(upstream)
    upstream.script(rsp, OVERLOADED)
    upstream.script(ant, ANT_OVERLOADED)
    upstream.script(oai, {"sse": openai_text_stream("Hallo Welt.")})
    with gateway(config) as url:
        stream = client_for(url).responses.create(model=MODEL, input="hi", stream=True)
        events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and "response.output_item.done" in kinds
    assert [event.sequence_number for event in events] == list(range(len(events)))
    item_ids = {e.item_id for e in events if hasattr(e, "item_id")}
    assert len(item_ids) == 1  # one message item, one stable id across its events
    completed = events[-1].response
    assert completed.output_text == "Hallo Welt."
    assert completed.usage is not None


def test_a_function_call_loop_fails_over_and_comes_back(
    upstream: FakeUpstream, client_for: Any
) -> None:
    """Turn 1 on Anthropic (Responses target down), turn 2 on Chat, turn 3 back on Responses."""
    config, rsp, ant, oai = three_targets(upstream)
    clock = FakeClock()
    upstream.script(rsp, OVERLOADED)
    upstream.script(ant, {"sse": anthropic_tool_stream("toolu_01A", "a.txt", thinking="Read a.")})
    conversation: list[Any] = [{"role": "user", "content": "What is in a.txt?"}]
    with gateway(config, clock=clock) as url:
        client = client_for(url)
        with client.responses.stream(
            model=MODEL, input=conversation, tools=TOOLS, reasoning={"effort": "low"}
        ) as stream:
            first = stream.get_final_response()
        calls = [item for item in first.output if item.type == "function_call"]
        assert [(c.name, json.loads(c.arguments)) for c in calls] == [("read", {"path": "a.txt"})]
        conversation += [item.model_dump(exclude_none=True) for item in first.output]
        conversation.append(
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "alpha"}
        )

        upstream.script(rsp, OVERLOADED)
        upstream.script(ant, ANT_OVERLOADED)
        upstream.script(
            oai, {"status": 200, "json": openai_completion("deepseek-chat", "It says alpha.")}
        )
        clock.now += 3600
        second = client.responses.create(model=MODEL, input=conversation, tools=TOOLS)
        assert second.output_text == "It says alpha."
        conversation += [item.model_dump(exclude_none=True) for item in second.output]
        conversation.append({"role": "user", "content": "Thanks."})

        clock.now += 3600  # every cooldown has passed: back to the Responses target
        upstream.script(rsp, {"status": 200, "json": responses_response(MODEL, "You are welcome.")})
        third = client.responses.create(model=MODEL, input=conversation, tools=TOOLS)
    assert third.output_text == "You are welcome."

    # The Chat target got the call and its result, with the thinking as reasoning_content.
    chat = body_of(upstream.calls(oai)[-1])
    assistant = next(m for m in chat["messages"] if m["role"] == "assistant")
    assert assistant["tool_calls"][0]["id"] == "toolu_01A"
    assert assistant["reasoning_content"] == "Read a."
    assert chat["messages"][-1] == {"role": "tool", "tool_call_id": "toolu_01A", "content": "alpha"}
    # Back on the Responses target: Anthropic's signed reasoning is not sent to OpenAI.
    back = body_of(upstream.calls(rsp)[-1])
    kinds = [item.get("type", "message") for item in back["input"]]
    assert "reasoning" not in kinds
    assert kinds == ["message", "function_call", "function_call_output", "message", "message"]


def test_responses_passthrough_is_byte_for_byte(upstream: FakeUpstream) -> None:
    config, rsp, _, _ = three_targets(upstream)
    body = b'{"model": "gpt-5",  "input": "hi", "store": false}'
    answer = responses_response(MODEL, "exact")
    upstream.script(rsp, {"status": 200, "body": json.dumps(answer, indent=1)})
    with gateway(config) as url:
        response = httpx.post(
            f"{url}/v1/responses", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 200
    assert response.content == json.dumps(answer, indent=1).encode()
    call = upstream.calls(rsp)[-1]
    assert call["path"] == "/v1/responses" and call["body"] == body.decode()
    assert dict(call["headers"])["authorization"] == f"Bearer sk-{rsp.strip('/')}-key0001"


def test_responses_stream_passthrough_and_a_break_after_commit(
    upstream: FakeUpstream, client_for: Any
) -> None:
    config, rsp, _, _ = three_targets(upstream)
    events = responses_stream(MODEL)
    upstream.script(rsp, {"sse": events[:-3], "then": "break"})
    with gateway(config) as url:
        seen = list(client_for(url).responses.create(model=MODEL, input="hi", stream=True))
    assert seen[-1].type == "response.failed"
    assert seen[-1].sequence_number == len(seen) - 1
    assert seen[-1].response.error is not None


def test_previous_response_id_is_refused_with_advice(
    upstream: FakeUpstream, client_for: Any
) -> None:
    config, _, _, _ = three_targets(upstream)
    with gateway(config) as url, pytest.raises(openai.BadRequestError) as caught:
        client_for(url).responses.create(model=MODEL, input="again", previous_response_id="resp_1")
    assert "send the whole conversation in input" in str(caught.value)


def test_openai_clients_get_openai_errors_on_unknown_and_wrong_paths(
    upstream: FakeUpstream,
) -> None:
    config, _, _, _ = three_targets(upstream)
    with gateway(config) as url:
        unknown = httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": "x"})
        wrong = httpx.get(f"{url}/v1/responses")
        anthropic_client = httpx.post(
            f"{url}/v1/embeddings", json={}, headers={"anthropic-version": "2023-06-01"}
        )
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
    assert wrong.status_code == 405 and "error" in wrong.json() and "type" not in wrong.json()
    assert anthropic_client.status_code == 404 and anthropic_client.json()["type"] == "error"


def test_every_listed_model_answers_on_its_own(upstream: FakeUpstream, client_for: Any) -> None:
    import anthropic

    rsp = upstream.provider()
    config = gateway_config(
        {
            "rsp": {
                **provider(upstream, "openai", rsp),
                "protocol": "responses",
                "models": {"gpt-5": {"max_output": 100}, "o4-mini": {}},
            }
        },
        [{"match": "gpt-*", "chain": ["rsp/{model}"]}, {"match": "*", "chain": ["rsp/gpt-5"]}],
    )
    with gateway(config) as url:
        client = client_for(url)
        listed = [model.id for model in client.models.list()]
        assert listed and all(client.models.retrieve(model).id == model for model in listed)
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("no-such-model")
        claude = anthropic.Anthropic(base_url=url, api_key="sk-client", max_retries=0)
        try:
            assert claude.models.retrieve(listed[0]).id == listed[0]
            with pytest.raises(anthropic.NotFoundError):
                claude.models.retrieve("no-such-model")
        finally:
            claude.close()


def test_output_limits_above_a_models_max_output_are_lowered(upstream: FakeUpstream) -> None:
    rsp, ant = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "rsp": {
                **provider(upstream, "openai", rsp),
                "protocol": "responses",
                "models": {"gpt-5": {"max_output": 100}},
            },
            "ant": {
                **provider(upstream, "anthropic", ant),
                "models": {"claude-x": {"max_output": 200}},
            },
        },
        [{"match": "gpt-*", "chain": ["rsp/{model}"]}, {"match": "*", "chain": ["ant/claude-x"]}],
    )
    with gateway(config) as url:
        httpx.post(
            f"{url}/v1/responses", json={"model": MODEL, "input": "hi", "max_output_tokens": 5000}
        )
        httpx.post(
            f"{url}/v1/responses", json={"model": MODEL, "input": "hi", "max_output_tokens": 50}
        )
        httpx.post(
            f"{url}/v1/messages",
            json={
                "model": "claude-x",
                "max_tokens": 9000,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    lowered, kept = (body_of(call) for call in upstream.calls(rsp))
    assert lowered["max_output_tokens"] == 100 and kept["max_output_tokens"] == 50
    assert body_of(upstream.calls(ant)[-1])["max_tokens"] == 200


def test_a_bad_responses_body_is_a_400_naming_the_field(upstream: FakeUpstream) -> None:
    config, rsp, _, _ = three_targets(upstream)
    with gateway(config) as url:
        bad = httpx.post(f"{url}/v1/responses", json={"model": MODEL, "input": [{"role": "bot"}]})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "input.0.role"
    assert upstream.calls(rsp) == []
