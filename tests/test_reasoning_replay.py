"""Reasoning replay: a target that wants its reasoning back on tool-call turns gets it, even
from a client that dropped it.

The store half (keep and recall, bounded, with a TTL) runs on memory and on Redis where
ROUTATIC_TEST_REDIS_URL is set; the rest drives the gateway end to end with clients that
drop reasoning, against a DeepSeek-style fake that refuses a tool-call turn without it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis

from routatic_asgi.attempt import ACTOR, InboundRequest
from routatic_asgi.exchange import Replaying, exchange_for
from routatic_asgi.replay import ReasoningMemory
from routatic_asgi.state import MemoryStore, RedisStore, StateStore
from routatic_asgi.translate.chat.replay import REASONING_LIMIT, ReasoningLog
from tests.conftest import REDIS_URL, FakeUpstream, gateway_config, redis_url
from tests.e2e.serving import gateway
from tests.e2e.translation_kit import chunk, openai_text_stream, openai_tool_stream
from tests.fake_clock import FakeClock
from tests.fake_upstream import openai_completion
from tests.test_translate import request, target

MODEL = "deepseek-v4-flash"
THOUGHT = "The user wants a.txt; I should read it first."
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "read",
            "description": "Read a file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]


# --- the store: keep and recall ---------------------------------------------------------------


@pytest.mark.anyio
async def test_kept_values_come_back_by_key(store: tuple[StateStore, FakeClock]) -> None:
    state, _ = store
    await state.keep("reasoning:a", "thought é".encode(), ttl=60)
    await state.keep("reasoning:b", b"other", ttl=60)
    assert await state.recall(["reasoning:a", "reasoning:c"]) == {
        "reasoning:a": "thought é".encode()
    }
    assert await state.recall([]) == {}
    assert await state.records() == {}  # kept values are not breaker or credential records


@pytest.mark.anyio
async def test_kept_values_are_forgotten_at_their_ttl(store: tuple[StateStore, FakeClock]) -> None:
    state, clock = store
    await state.keep("reasoning:a", b"thought", ttl=60)
    if isinstance(state, RedisStore):  # Redis keeps time itself: it holds the TTL it was given
        millis = await state._redis().pttl(state._key("kept", "reasoning:a"))
        assert 59_000 < millis <= 60_000
        return
    clock.now += 59
    assert await state.recall(["reasoning:a"]) == {"reasoning:a": b"thought"}
    clock.now += 1
    assert await state.recall(["reasoning:a"]) == {}


@pytest.mark.anyio
async def test_memory_keeps_a_bounded_number_of_values_and_bytes() -> None:
    state = MemoryStore(clock=FakeClock(), kept_values=3, kept_bytes=100)
    for n in range(5):
        await state.keep(f"k{n}", b"x", ttl=60)
    assert set(await state.recall([f"k{n}" for n in range(5)])) == {"k2", "k3", "k4"}
    await state.keep("big", b"y" * 99, ttl=60)  # the oldest go until the bytes fit
    assert set(await state.recall(["k2", "k3", "k4", "big"])) == {"k4", "big"}


@pytest.mark.anyio
async def test_two_redis_replicas_share_kept_reasoning() -> None:
    url = redis_url()
    one, two = RedisStore(url), RedisStore(url)
    try:
        await one.keep("reasoning:x", b"shared", ttl=60)
        assert await two.recall(["reasoning:x"]) == {"reasoning:x": b"shared"}
    finally:
        await one._redis().delete(one._key("kept", "reasoning:x"))
        await one.aclose()
        await two.aclose()


# --- reading and restoring reasoning ------------------------------------------------------------


def test_the_log_reads_reasoning_and_calls_from_a_stream_and_bounds_it() -> None:
    from routatic_asgi.sse import parse_event

    log = ReasoningLog()
    for raw in openai_tool_stream("call_00_abc", "a.txt", reasoning=THOUGHT):
        log.event(parse_event(raw.encode()))
    assert log.kept() == {"call_00_abc": THOUGHT}
    huge = ReasoningLog()
    for _ in range(3):
        huge.event(parse_event(chunk({"reasoning_content": "x" * REASONING_LIMIT}).encode()))
    huge.event(parse_event(chunk({"tool_calls": [{"index": 0, "id": "c1"}]}).encode()))
    assert len(huge.kept()["c1"]) == REASONING_LIMIT
    plain = ReasoningLog()  # reasoning without a tool call: nothing to keep
    plain.event(parse_event(chunk({"reasoning_content": THOUGHT}).encode()))
    assert plain.kept() == {}


def tool_turn(call_id: str) -> list[dict[str, Any]]:
    call = {"id": call_id, "type": "function", "function": {"name": "read", "arguments": "{}"}}
    return [
        {"role": "user", "content": "What is in a.txt?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": "alpha"},
    ]


def chat_exchange(call_id: str) -> Replaying:
    ask = {"model": MODEL, "messages": tool_turn(call_id)}
    chosen = exchange_for(request("openai", ask), target("openai", MODEL))
    assert isinstance(chosen, Replaying)
    return chosen


@pytest.mark.anyio
async def test_reasoning_is_kept_apart_for_each_proxy_key() -> None:
    memory = ReasoningMemory(MemoryStore(clock=FakeClock()))
    first = chat_exchange("call_1")
    first.log.answer(json.dumps(completion_with_call("call_1")).encode())

    async def sent(message: Any) -> None:
        return None

    send = memory.sending(first, {ACTOR: "alice"}, sent)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})
    mine, theirs = chat_exchange("call_1"), chat_exchange("call_1")
    await memory.recall(mine, {ACTOR: "alice"})
    await memory.recall(theirs, {ACTOR: "bob"})
    assert json.loads(mine.request_body())["messages"][1]["reasoning_content"] == THOUGHT
    note = json.loads(theirs.request_body())["messages"][1]["reasoning_content"]
    assert THOUGHT not in note and "No reasoning was recorded" in note


def completion_with_call(call_id: str) -> dict[str, Any]:
    call = {"id": call_id, "type": "function", "function": {"name": "read", "arguments": "{}"}}
    message = {"role": "assistant", "content": None, "reasoning_content": THOUGHT}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {**message, "tool_calls": [call]},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


# --- end to end: clients that drop reasoning, a target that refuses a turn without it ----------


@pytest.fixture
def deepseek(upstream: FakeUpstream) -> Iterator[tuple[Any, str]]:
    prefix = upstream.provider()
    settings = {"protocol": "openai", "base_url": upstream.url(prefix) + "/v1", "keys": ["sk-ds"]}
    config = gateway_config(
        {"ds": settings},
        [{"match": "*", "chain": [f"ds/{MODEL}"]}],
        resilience={"retry": {"attempts": 0}},
    )
    yield config, prefix


def sent_reasoning(upstream: FakeUpstream, prefix: str) -> list[Any]:
    body = json.loads(upstream.calls(prefix)[-1]["body"])
    return [m.get("reasoning_content") for m in body["messages"] if m.get("tool_calls")]


@pytest.mark.parametrize("streamed", [True, False])
def test_a_chat_client_that_drops_reasoning_continues_its_tool_loop_on_deepseek(
    upstream: FakeUpstream, deepseek: tuple[Any, str], streamed: bool
) -> None:
    config, prefix = deepseek
    first: dict[str, Any] = (
        {"sse": openai_tool_stream("call_00_abc", "a.txt", reasoning=THOUGHT)}
        if streamed
        else {"status": 200, "json": completion_with_call("call_00_abc")}
    )
    then = {"sse": openai_text_stream("It says alpha."), "deepseek_thinking": True}
    upstream.script(prefix, first, then)
    with gateway(config, clock=FakeClock()) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0)
        messages: list[Any] = [{"role": "user", "content": "What is in a.txt?"}]
        if streamed:
            calls: dict[int, Any] = {}
            for part in client.chat.completions.create(
                model=MODEL, messages=messages, tools=TOOLS, stream=True
            ):
                for call in (part.choices[0].delta.tool_calls or []) if part.choices else []:
                    calls.setdefault(call.index, {"id": call.id, "type": "function"})
                    calls[call.index]["function"] = {"name": "read", "arguments": "{}"}
            assistant = {"role": "assistant", "content": None, "tool_calls": list(calls.values())}
        else:
            answer = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
            # What an SDK user writes back: the message without the provider's extra field.
            assistant = answer.choices[0].message.model_dump(
                exclude_none=True, exclude={"reasoning_content"}
            )
        assert "reasoning_content" not in assistant
        messages += [assistant, {"role": "tool", "tool_call_id": "call_00_abc", "content": "alpha"}]
        text = "".join(
            part.choices[0].delta.content or ""
            for part in client.chat.completions.create(
                model=MODEL, messages=messages, tools=TOOLS, stream=True
            )
            if part.choices
        )
        client.close()
    assert text == "It says alpha."
    assert sent_reasoning(upstream, prefix) == [THOUGHT]


def test_an_anthropic_client_that_drops_thinking_continues_on_deepseek(
    upstream: FakeUpstream, deepseek: tuple[Any, str]
) -> None:
    config, prefix = deepseek
    then = {
        "status": 200,
        "json": openai_completion(MODEL, "It says alpha."),
        "deepseek_thinking": True,
    }
    upstream.script(prefix, {"sse": openai_tool_stream("call_00_abc", "a.txt", THOUGHT)}, then)
    tool = {"name": "read", "input_schema": {"type": "object", "properties": {}}}
    ask: list[Any] = [{"role": "user", "content": "What is in a.txt?"}]
    with gateway(config, clock=FakeClock()) as url:
        client = anthropic.Anthropic(base_url=url, api_key="sk-client", max_retries=0)
        with client.messages.stream(
            model=MODEL,
            max_tokens=100,
            messages=ask,
            tools=[tool],  # type: ignore[list-item]
        ) as stream:
            first = stream.get_final_message()
        use = next(block for block in first.content if block.type == "tool_use")
        kept = [b.model_dump() for b in first.content if b.type != "thinking"]  # thinking dropped
        ask += [
            {"role": "assistant", "content": kept},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "alpha"}],
            },
        ]
        second = client.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=ask,
            tools=[tool],  # type: ignore[list-item]
        )
        client.close()
    assert second.content[0].type == "text" and second.content[0].text == "It says alpha."
    assert sent_reasoning(upstream, prefix) == [THOUGHT]


def test_a_model_marked_reasoning_replay_gets_its_reasoning_back(upstream: FakeUpstream) -> None:
    prefix = upstream.provider()
    settings = {
        "protocol": "openai",
        "base_url": upstream.url(prefix) + "/v1",
        "keys": ["sk-q"],
        "models": {"qwen3-thinking": {"reasoning_replay": True}},
    }
    config = gateway_config({"q": settings}, [{"match": "*", "chain": ["q/qwen3-thinking"]}])
    upstream.script(
        prefix,
        {"status": 200, "json": completion_with_call("call_9")},
        {"status": 200, "json": completion_with_call("call_10"), "deepseek_thinking": True},
    )
    ask = {"model": "qwen3-thinking", "messages": [{"role": "user", "content": "hi"}]}
    with gateway(config, clock=FakeClock()) as url:
        httpx.post(f"{url}/v1/chat/completions", json=ask).raise_for_status()
        again = {**ask, "messages": tool_turn("call_9")}
        second = httpx.post(f"{url}/v1/chat/completions", json=again)
    assert second.status_code == 200
    assert sent_reasoning(upstream, prefix) == [THOUGHT]


def test_a_second_replica_finds_the_reasoning_the_first_kept(
    upstream: FakeUpstream, deepseek: tuple[Any, str]
) -> None:
    key_prefix = f"routatic-test-{uuid.uuid4().hex}:"
    url = redis_url(key_prefix)
    config, prefix = deepseek
    upstream.script(
        prefix,
        {"status": 200, "json": completion_with_call("call_00_xyz")},
        {"status": 200, "json": openai_completion(MODEL, "alpha"), "deepseek_thinking": True},
    )
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "What is in a.txt?"}]}
    with gateway(config, state=RedisStore(url)) as one:
        httpx.post(f"{one}/v1/chat/completions", json=ask).raise_for_status()
    again = {**ask, "messages": tool_turn("call_00_xyz")}
    with gateway(config, state=RedisStore(url)) as two:  # another replica, the same Redis
        second = httpx.post(f"{two}/v1/chat/completions", json=again)
    shared = redis.Redis.from_url(REDIS_URL)
    for key in shared.scan_iter(match=f"{key_prefix}*"):
        shared.delete(key)
    shared.close()
    assert second.status_code == 200
    assert sent_reasoning(upstream, prefix) == [THOUGHT]


def test_a_chat_body_that_keeps_its_reasoning_goes_byte_for_byte() -> None:
    turns = tool_turn("call_1")
    turns[1]["reasoning_content"] = THOUGHT
    payload = {"model": MODEL, "messages": turns}
    raw = json.dumps(payload, indent=1).encode()  # spacing no re-encoding would keep
    ask = InboundRequest("openai", "chat_completions", raw, payload, MODEL, False)
    chosen = exchange_for(ask, target("openai", MODEL))
    assert isinstance(chosen, Replaying) and chosen.wanted() == []
    assert chosen.request_body() == raw
