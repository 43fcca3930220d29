"""Translation units: continuity, fitness, estimates, codecs, and the SDKs reading the result."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import orjson
import pytest

from routatic_asgi.attempt import InboundRequest, Target
from routatic_asgi.config import ModelCaps
from routatic_asgi.errors import UnanswerableEndpoint
from routatic_asgi.exchange import EventKind, Passthrough, Repaired, answers, exchange_for
from routatic_asgi.sse import Event, SSEFramer, parse_event
from routatic_asgi.translate import (
    OpenAIToAnthropic,
    Translation,
    TranslationError,
    anthropic_history,
    to_anthropic,
    to_anthropic_message,
    to_openai,
)
from routatic_asgi.translate.chat.errors import openai_error_as_anthropic
from routatic_asgi.translate.chat.stream import OpenAIStream
from tests.translation_cases import all_fixtures, exchange, load, stream_output

SIGNATURE = "EqQBCkgIARABGAIiQL4e3W2hN0bJ0h0m8Jq9kVbZ3o1m2Yy0oQw2yqz+Ue3V7xk2c9T1b5Xy6Lz3pQ=="


def request(protocol: Any, payload: dict[str, Any], endpoint: Any = None) -> InboundRequest:
    endpoint = endpoint or ("messages" if protocol == "anthropic" else "chat_completions")
    body = orjson.dumps(payload)
    return InboundRequest(
        protocol, endpoint, body, payload, payload["model"], payload.get("stream") is True
    )


def target(protocol: Any, model: str = "m") -> Target:
    return Target("p", protocol, model, "http://127.0.0.1:1")


def tool_loop(thinking_signature: str) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 8000,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
        "messages": [
            {"role": "user", "content": "read a"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "t", "signature": thinking_signature},
                    {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"p": "a"}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "x"}],
            },
        ],
    }


# --- continuity ------------------------------------------------------------------------


def test_unsigned_thinking_is_dropped_and_thinking_turned_off_mid_tool_loop() -> None:
    repaired = anthropic_history(tool_loop(""))
    assert repaired["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"p": "a"}}
    ]
    assert "thinking" not in repaired
    assert "context_management" not in repaired


def test_signed_thinking_is_kept_untouched() -> None:
    payload = tool_loop(SIGNATURE)
    assert anthropic_history(payload) == payload
    assert isinstance(exchange_for(request("anthropic", payload), target("anthropic")), Passthrough)
    assert not isinstance(
        exchange_for(request("anthropic", payload), target("anthropic")), Repaired
    )


def test_anthropic_target_gets_repaired_history_only_when_needed() -> None:
    payload = tool_loop("not-a-signature")
    chosen = exchange_for(request("anthropic", payload), target("anthropic", "claude-x"))
    assert isinstance(chosen, Repaired)
    sent = orjson.loads(chosen.request_body())
    assert sent["model"] == "claude-x"
    assert all(b["type"] != "thinking" for b in sent["messages"][1]["content"])


def test_thinking_outside_an_open_tool_loop_stays_on() -> None:
    payload = tool_loop("")
    payload["messages"] = [*payload["messages"], {"role": "assistant", "content": "done"}]
    payload["messages"].append({"role": "user", "content": "next"})
    assert anthropic_history(payload)["thinking"] == payload["thinking"]


def test_openai_history_gets_reasoning_back_only_on_tool_call_turns() -> None:
    payload = tool_loop(SIGNATURE)
    payload["messages"].insert(
        1,
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": ""}]},
    )
    payload["messages"].insert(2, {"role": "user", "content": "go on"})
    sent = to_openai(payload, "deepseek-chat")
    assistants = [m for m in sent["messages"] if m["role"] == "assistant"]
    assert "reasoning_content" not in assistants[0]
    assert assistants[1]["reasoning_content"] == "t"
    assert assistants[1]["tool_calls"][0]["id"] == "call_1"


def test_openai_client_reasoning_is_not_enabled_in_the_middle_of_a_tool_loop() -> None:
    payload = {
        "model": "claude-opus-4-6",
        "reasoning_effort": "high",
        "max_tokens": 30000,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
    }
    assert "thinking" not in to_anthropic(payload, "claude-opus-4-6")
    payload["messages"] = payload["messages"][:1]
    assert to_anthropic(payload, "claude-opus-4-6")["thinking"]["budget_tokens"] == 16384


def test_a_model_without_thinking_gets_no_reasoning_option() -> None:
    payload = {**tool_loop(SIGNATURE), "messages": [{"role": "user", "content": "hi"}]}
    assert "reasoning_effort" in to_openai(payload, "m")
    assert "reasoning_effort" not in to_openai(payload, "m", reasoning=False)


# --- codecs ------------------------------------------------------------------------------


def chunk(delta: dict[str, Any], finish: str | None = None) -> Event:
    body = {
        "id": "c1",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return parse_event(b"data: " + orjson.dumps(body) + b"\n\n")


def test_openai_stream_commits_at_content_and_errors_before_it_fall_back() -> None:
    codec = OpenAIToAnthropic()
    assert codec.kind(chunk({"role": "assistant"})) is EventKind.HOLD
    error = parse_event(b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n')
    assert codec.kind(error) is EventKind.ERROR
    assert codec.kind(chunk({"content": "x"})) is EventKind.CONTENT
    assert codec.kind(error) is EventKind.END  # after the commit: it ends the stream


@pytest.mark.parametrize(
    "delta",
    [
        {"content": "x"},
        {"tool_calls": [{"index": 0, "function": {"name": "read"}}]},
        {"reasoning_content": "thinking"},
        {"reasoning": "thinking"},  # OpenRouter's name for it
        {"refusal": "I can't help with that"},
    ],
)
def test_a_chat_stream_commits_at_the_same_chunk_passed_through_or_translated(
    delta: dict[str, Any],
) -> None:
    for codec in (OpenAIStream(), OpenAIToAnthropic()):
        assert codec.kind(chunk({"role": "assistant"})) is EventKind.HOLD
        assert codec.kind(chunk(delta)) is EventKind.CONTENT, type(codec).__name__


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 8192 tokens",
        "Please reduce the length of the messages",
        "prompt is too long: 250000 tokens > 200000 maximum",
    ],
)
def test_a_translated_context_error_says_prompt_is_too_long_once(message: str) -> None:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})
    error = orjson.loads(openai_error_as_anthropic(400, body))["error"]
    assert error["message"].startswith("prompt is too long")
    assert error["message"].count("prompt is too long") == 1


def test_tool_ids_are_made_acceptable_and_stable() -> None:
    body = {
        "id": "chatcmpl-9",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "tool_calls": [
                        {"id": "functions.read:0", "function": {"name": "read", "arguments": "{}"}},
                        {"function": {"name": "read", "arguments": "{}"}},
                    ]
                },
                "finish_reason": "tool_calls",
            }
        ],
    }
    first = orjson.loads(to_anthropic_message(orjson.dumps(body)))["content"]
    again = orjson.loads(to_anthropic_message(orjson.dumps(body)))["content"]
    assert first[0]["id"] == "functions_read_0"
    assert first[1]["id"].startswith("toolu_")
    assert first == again


def test_an_unreadable_answer_is_a_translation_error() -> None:
    with pytest.raises(TranslationError):
        to_anthropic_message(b"<html>oops</html>")
    with pytest.raises(TranslationError):
        to_anthropic_message(b'{"choices": []}')
    # A completion whose choices hold no message is no answer, never an empty one.
    for body in (b'{"choices": 5}', b'{"choices": [5]}', b'{"choices": [{}]}'):
        with pytest.raises(TranslationError):
            to_anthropic_message(body)
    with pytest.raises(TranslationError):
        to_anthropic_message(b'{"choices": [{"message": 5, "finish_reason": "stop"}]}')


def test_translation_headers() -> None:
    to_openai_target = Translation(request("anthropic", {"model": "m"}), target("openai"))
    assert not to_openai_target.forwards(b"anthropic-beta")
    assert to_openai_target.forwards(b"x-claude-code-session-id")
    to_anthropic_target = Translation(request("openai", {"model": "m"}), target("anthropic"))
    assert to_anthropic_target.extra_headers == [(b"anthropic-version", b"2023-06-01")]
    assert not to_anthropic_target.forwards(b"anthropic-version")


def test_count_tokens_is_never_translated() -> None:
    count = request("anthropic", {"model": "m", "messages": []}, "count_tokens")
    assert answers(count, target("anthropic"))
    assert not answers(count, target("openai"))
    with pytest.raises(UnanswerableEndpoint, match="cannot answer anthropic count_tokens"):
        exchange_for(count, target("openai"))


# --- the official SDKs read every translated stream -------------------------------------


def fixtures_of(direction: str) -> list[Path]:
    return [
        p
        for p in all_fixtures()
        if load(p)["kind"] == "stream" and load(p)["direction"] == direction
    ]


def serve(body: bytes, http: Any = httpx) -> Any:
    """A client whose every request gets `body` as an SSE answer (`http`: the SDK's httpx)."""

    def handler(_: Any) -> Any:
        return http.Response(200, content=body, headers={"content-type": "text/event-stream"})

    return http.Client(transport=http.MockTransport(handler))


@pytest.mark.parametrize("path", fixtures_of("anthropic-to-openai"), ids=lambda p: p.stem)
def test_anthropic_sdk_accumulates_every_translated_stream(path: Path) -> None:
    fixture = load(path)
    body = stream_output(exchange(fixture).stream(), fixture["input"])
    client = anthropic.Anthropic(api_key="k", http_client=serve(body, httpx2), max_retries=0)
    params: Any = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    with client.messages.stream(**params) as stream:
        if any(name == "error" for name, _ in fixture["expected"]):
            with pytest.raises(anthropic.APIStatusError):
                stream.get_final_message()
            return
        message = stream.get_final_message()
    blocks = [e[1]["content_block"] for e in fixture["expected"] if e[0] == "content_block_start"]
    assert [b.type for b in message.content] == [b["type"] for b in blocks]
    assert message.stop_reason is not None
    for block in message.content:
        if block.type == "tool_use":
            assert isinstance(block.input, dict) and block.input


@pytest.mark.parametrize("path", fixtures_of("openai-to-anthropic"), ids=lambda p: p.stem)
def test_openai_sdk_reads_every_translated_stream(path: Path) -> None:
    fixture = load(path)
    body = stream_output(exchange(fixture).stream(), fixture["input"])
    client = openai.OpenAI(api_key="k", http_client=serve(body), max_retries=0)
    stream = client.chat.completions.create(model="m", messages=[], stream=True)
    if any(isinstance(data, dict) and "error" in data for _, data in fixture["expected"]):
        with pytest.raises(openai.APIError):
            list(stream)
        return
    chunks = list(stream)
    arguments: dict[int, str] = {}
    for part in chunks:
        for choice in part.choices:
            for call in choice.delta.tool_calls or ():
                arguments[call.index] = arguments.get(call.index, "") + (
                    call.function.arguments if call.function and call.function.arguments else ""
                )
    assert all(json.loads(text) for text in arguments.values())
    assert any(part.choices and part.choices[0].finish_reason for part in chunks)


def test_max_output_caps_a_translated_requests_max_tokens() -> None:
    claude_code = {"model": "claude-opus-4-6", "max_tokens": 32000, "messages": []}
    capped = Translation(
        request("anthropic", claude_code),
        replace(target("openai"), caps=ModelCaps(max_output=8192)),
    )
    assert orjson.loads(capped.request_body())["max_tokens"] == 8192
    uncapped = Translation(request("anthropic", claude_code), target("openai"))
    assert orjson.loads(uncapped.request_body())["max_tokens"] == 32000
    effort = {"model": "gpt-5", "reasoning_effort": "high", "max_tokens": 30000, "messages": []}
    small = Translation(
        request("openai", effort), replace(target("anthropic"), caps=ModelCaps(max_output=4096))
    )
    sent = orjson.loads(small.request_body())
    assert sent["max_tokens"] == 4096 and "thinking" not in sent


def test_deepseek_is_told_whether_to_think_and_gets_reasoning_for_every_tool_call_turn() -> None:
    plain = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert to_openai(plain, "deepseek-v4-flash", dialect="deepseek")["thinking"] == {
        "type": "disabled"
    }
    assert "thinking" not in to_openai(plain, "qwen3")
    thinking = {**plain, "thinking": {"type": "adaptive"}}
    sent = to_openai(thinking, "deepseek-v4-flash", dialect="deepseek")
    assert sent["thinking"] == {"type": "enabled"} and sent["reasoning_effort"] == "medium"
    turns = []
    for call in ("call_1", "call_2"):
        use = {"type": "tool_use", "id": call, "name": "Read", "input": {}}
        result = {"type": "tool_result", "tool_use_id": call, "content": "x"}
        turns += [{"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]
    history = {**plain, "messages": [plain["messages"][0], *turns]}

    def sent_to(model: str, caps: ModelCaps | None = None) -> list[dict[str, Any]]:
        to = replace(target("openai", model), caps=caps)
        chosen = exchange_for(request("anthropic", history), to)
        assert chosen is not None
        return list(orjson.loads(chosen.request_body())["messages"])

    # Nothing kept for these turns: a DeepSeek target gets a note per turn, as a last resort.
    notes = [
        m["reasoning_content"] for m in sent_to("deepseek-v4-flash") if m["role"] == "assistant"
    ]
    assert len(notes) == len(set(notes)) == 2 and "call_1" in notes[0]
    assert all("reasoning_content" not in m for m in sent_to("qwen3"))
    # The configuration decides before the name does.
    replay = ModelCaps(reasoning_replay=True)
    assert all(
        "reasoning_content" in m for m in sent_to("qwen3", replay) if m["role"] == "assistant"
    )
    no_replay = ModelCaps(reasoning_replay=False)
    assert all("reasoning_content" not in m for m in sent_to("deepseek-v4-flash", no_replay))


def test_stop_reason_follows_the_calls_actually_made() -> None:
    def answer(finish: str, calls: list[Any]) -> str:
        message = {"content": "x", "tool_calls": calls}
        body = {"id": "c", "model": "m", "choices": [{"message": message, "finish_reason": finish}]}
        return str(orjson.loads(to_anthropic_message(orjson.dumps(body)))["stop_reason"])

    call = {"id": "c1", "function": {"name": "f", "arguments": "{}"}}
    assert answer("stop", [call]) == "tool_use"
    assert answer("tool_calls", []) == "end_turn"
    assert answer("length", []) == "max_tokens"


def test_openais_own_api_gets_max_completion_tokens() -> None:
    payload = {"model": "claude-sonnet-4-6", "max_tokens": 50000, "messages": []}
    official = Translation(
        request("anthropic", payload),
        Target(
            "oai", "openai", "gpt-5", "https://api.openai.com/v1", caps=ModelCaps(max_output=32000)
        ),
    )
    sent = orjson.loads(official.request_body())
    assert sent["max_completion_tokens"] == 32000 and "max_tokens" not in sent
    assert "max_tokens" in to_openai(payload, "qwen3")


def test_the_codecs_do_not_import_the_exchange() -> None:
    """The translate package stands below exchange.py: no import circle between them."""
    import ast

    package = Path(__file__).parent.parent / "routatic_asgi" / "translate"
    for module in package.rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "routatic_asgi.exchange", f"{module} imports the exchange"


def test_claude_codes_user_id_reaches_openai_targets_only_as_a_hash() -> None:
    user_id = json.dumps({"device_id": "dev-1", "account_uuid": "acc-1", "session_id": "ses-1"})
    ask = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    sent = []
    for protocol in ("openai", "responses"):
        translation = Translation(
            request("anthropic", {**ask, "metadata": {"user_id": user_id}}), target(protocol)
        )
        body = orjson.loads(translation.request_body())
        assert "dev-1" not in json.dumps(body) and "acc-1" not in json.dumps(body)
        sent.append(body["user"])
    assert sent[0] == sent[1] and len(sent[0]) <= 64  # one stable id, within OpenAI's limit
    other = Translation(
        request("anthropic", {**ask, "metadata": {"user_id": "u2"}}), target("openai")
    )
    assert orjson.loads(other.request_body())["user"] != sent[0]
    without = Translation(request("anthropic", ask), target("openai"))
    assert "user" not in orjson.loads(without.request_body())


def test_a_responses_stream_keeps_its_output_bounded_and_whole_below_the_bound() -> None:
    from routatic_asgi.translate.responses.stream_from_pivot import (
        KEPT_LIMIT,
        AnthropicToResponses,
    )

    def pivot(name: str, data: dict[str, Any]) -> Any:
        return parse_event(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    def run(chunks: int, size: int) -> tuple[list[dict[str, Any]], int]:
        codec = AnthropicToResponses({"model": "m"}, 0)
        start = {"id": "msg_1", "model": "m", "usage": {"input_tokens": 1}}
        events = [pivot("message_start", {"type": "message_start", "message": start})]
        block = {"type": "text", "text": ""}
        events.append(pivot("content_block_start", {"index": 0, "content_block": block}))
        delta = {"index": 0, "delta": {"type": "text_delta", "text": "x" * size}}
        events += [pivot("content_block_delta", delta)] * chunks
        events.append(pivot("content_block_stop", {"index": 0}))
        events.append(pivot("message_stop", {"type": "message_stop"}))
        out, deltas = [], 0
        for event in events:
            codec.kind(event)
            for sent in SSEFramer().feed(codec.translate(event)):
                body = json.loads(sent.data)
                deltas += len(body.get("delta", "")) if sent.name.endswith(".delta") else 0
                out.append(body)
        return out, deltas

    small, _ = run(10, 1000)
    assert small[-1]["type"] == "response.completed"
    assert small[-1]["response"]["output"][0]["content"][0]["text"] == "x" * 10_000
    huge, deltas = run(3 * KEPT_LIMIT // 65536, 65536)  # three times what is kept
    assert deltas == 3 * KEPT_LIMIT  # every delta goes through whole
    done = next(e for e in huge if e["type"] == "response.output_text.done")
    assert len(done["text"]) == KEPT_LIMIT  # what the events repeat is cut at the bound
    completed = huge[-1]["response"]["output"]
    assert sum(len(part["text"]) for item in completed for part in item["content"]) <= KEPT_LIMIT
