"""What the translation tests share: the official SDK clients, providers of either protocol
on the fake upstream, and the streams and answers a provider of each protocol sends."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai

from tests.conftest import FakeUpstream
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
