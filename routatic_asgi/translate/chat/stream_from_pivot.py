"""Chat Completions streams from the pivot: pivot events, re-encoded as chunks for a client.

`AnthropicToOpenAI` reads the target's events (as the SSE framer cut them): `kind()` tells
the relay hold-back, content (the commit point), error and end apart, and `translate()`
returns the chunks to send, possibly none. Its state is one small object per stream; memory
does not grow with the stream's length, and nothing is held back for later.
"""

from __future__ import annotations

from typing import Any

import orjson

from routatic_asgi.sse import Event, encode_event
from routatic_asgi.translate.chat.answers import finish_reason, openai_usage
from routatic_asgi.translate.chat.errors import anthropic_error_event_as_openai
from routatic_asgi.translate.codec import PivotEvents, stream_error_event
from routatic_asgi.translate.pivot import as_dict, keepalive, load

__all__ = ["AnthropicToOpenAI"]


class AnthropicToOpenAI(PivotEvents):
    """An Anthropic target's events, as the chunks an OpenAI client expects, `[DONE]` last.

    Thinking becomes `reasoning_content`; each tool_use block becomes a tool call with its own
    index; with `stream_options.include_usage` a usage chunk precedes `[DONE]`.
    """

    def __init__(self, *, created: int, include_usage: bool) -> None:
        super().__init__()
        self.created = created
        self.include_usage = include_usage
        self._id = ""
        self._model = ""
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # Anthropic block index → OpenAI tool index

    def translate(self, event: Event) -> bytes:
        name = event.name
        if name == "ping":
            return b": ping\n\n"
        if name == "error":
            return anthropic_error_event_as_openai(event.data)
        if name == "message_stop":
            tail = self._usage_chunk() if self.include_usage else b""
            return tail + b"data: [DONE]\n\n"
        payload = load(event.data)
        if payload is None:
            return keepalive(event)
        if name == "message_start":
            return self._message_start(payload)
        if name == "content_block_start":
            return self._block_start(payload)
        if name == "content_block_delta":
            return self._block_delta(payload)
        if name == "message_delta":
            return self._message_delta(payload)
        return b""

    def finish(self) -> bytes:
        return b""

    def error_event(self, message: str) -> bytes:
        return stream_error_event("openai", message)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return encode_event(None, orjson.dumps(chunk))

    def _message_start(self, payload: dict[str, Any]) -> bytes:
        message = as_dict(payload.get("message"))
        self._id = str(message.get("id", ""))
        self._model = str(message.get("model", ""))
        self._usage.update(as_dict(message.get("usage")))
        return self._chunk({"role": "assistant", "content": ""})

    def _block_start(self, payload: dict[str, Any]) -> bytes:
        block = payload.get("content_block")
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            return b""
        position = len(self._tools)
        self._tools[int(payload.get("index", -1))] = position
        call = {
            "index": position,
            "id": str(block.get("id", "")),
            "type": "function",
            "function": {"name": str(block.get("name", "")), "arguments": ""},
        }
        return self._chunk({"tool_calls": [call]})

    def _block_delta(self, payload: dict[str, Any]) -> bytes:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return b""
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._chunk({"content": str(delta["text"])})
        if kind == "thinking_delta" and delta.get("thinking"):
            return self._chunk({"reasoning_content": str(delta["thinking"])})
        position = self._tools.get(int(payload.get("index", -1)))
        if kind == "input_json_delta" and position is not None and delta.get("partial_json"):
            call = {"index": position, "function": {"arguments": str(delta["partial_json"])}}
            return self._chunk({"tool_calls": [call]})
        return b""

    def _message_delta(self, payload: dict[str, Any]) -> bytes:
        usage = as_dict(payload.get("usage"))
        self._usage.update({k: v for k, v in usage.items() if v is not None})
        delta = as_dict(payload.get("delta"))
        return self._chunk({}, finish_reason(delta.get("stop_reason")))

    def _usage_chunk(self) -> bytes:
        chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self._model,
            "choices": [],
            "usage": openai_usage(self._usage),
        }
        return encode_event(None, orjson.dumps(chunk))
