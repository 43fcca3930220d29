"""Rescue of a stream that broke after its commit: what was sent, what to ask, how to splice.

Pure: no I/O. When a committed stream breaks (cut, stalled, malformed), the router reads
back what the client already received (`transcript`), asks the next target for the rest in
a plain user turn every target accepts — never an assistant prefill, which current Claude
models and many providers refuse (`continuation`) — and feeds the answer through a
`Splicer`, which turns it into the continuation of the same client stream: no second
`message_start`, text blocks continue, block indices follow on, one `[DONE]`, usage added up.

A stream that cannot be rescued — a tool call or thinking was open when it broke, a tool
call was already made, or more was sent than is kept — has no transcript: the client gets
the error event. This module never sees a credential and never decides which target to try.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from routatic_asgi.sse import Event, SSEFramer, encode_event
from routatic_asgi.translate.chat.stream import has_content

__all__ = ["KEPT_LIMIT", "PROTOCOLS", "Splicer", "Transcript", "continuation", "transcript"]

# The client protocols whose streams a rescue can read back and continue.
PROTOCOLS = frozenset({"anthropic", "openai"})

# What a stream may have sent and still be rescued: the bytes are kept to read it back.
KEPT_LIMIT = 256 * 1024

_ASK = (
    "[Your answer to the message above was cut off by a network failure. This is what had "
    "already reached the user:]\n\n{text}\n\n[Continue exactly from where it stops. Do not "
    "repeat any of it and add no preamble or comment; if it stops mid-word or mid-sentence, "
    "finish that word or sentence first.]"
)


@dataclass(slots=True)
class Transcript:
    """What a broken stream had delivered, in the client's protocol."""

    protocol: str
    text: str = ""
    blocks: int = 0  # Anthropic content blocks started
    open_text: int | None = None  # the index of a text block left open
    input_tokens: int = 0
    output_tokens: int = 0
    id: str | None = None  # OpenAI: the chunks' id, kept by the continuation's chunks
    extra: dict[str, Any] = field(default_factory=dict)


def transcript(protocol: str, sent: bytes, output_tokens: int = 0) -> Transcript | None:
    """Read back the client-bound bytes of a broken stream; None when it cannot be rescued."""
    if protocol not in PROTOCOLS:
        return None
    framer = SSEFramer()
    events = framer.feed(sent)  # an unterminated last event was never a whole event: dropped
    try:
        found = _anthropic(events) if protocol == "anthropic" else _openai(events)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
    if found is None or not found.text:
        return None
    estimate = math.ceil(len(found.text) / 4)  # the upstream had not said yet: an estimate
    found.output_tokens = max(output_tokens, estimate)
    return found


def _anthropic(events: list[Event]) -> Transcript | None:
    found = Transcript("anthropic")
    open_kind: str | None = None
    for event in events:
        if event.name in (None, "ping") or not event.data:
            continue
        data = orjson.loads(event.data)
        kind = data.get("type")
        if kind == "message_start":
            found.input_tokens = int(data["message"].get("usage", {}).get("input_tokens", 0))
        elif kind == "content_block_start":
            open_kind = data["content_block"]["type"]
            if open_kind not in ("text", "thinking", "redacted_thinking"):
                return None  # a tool call was made: no plain-text continuation holds it
            found.blocks += 1
        elif kind == "content_block_delta" and data["delta"].get("type") == "text_delta":
            found.text += data["delta"]["text"]
        elif kind == "content_block_stop":
            open_kind = None
        elif kind in ("message_delta", "message_stop", "error"):
            return None  # complete, or already ended with an error: nothing to rescue
    if open_kind not in (None, "text"):
        return None
    found.open_text = found.blocks - 1 if open_kind == "text" else None
    return found


def _openai(events: list[Event]) -> Transcript | None:
    found = Transcript("openai")
    for event in events:
        if event.data in (b"", b"[DONE]"):
            continue
        data = orjson.loads(event.data)
        found.id = found.id or data.get("id")
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("tool_calls") or choice.get("finish_reason"):
                return None
            found.text += delta.get("content") or ""
        if "error" in data:
            return None
    return found


def continuation(payload: dict[str, Any], text: str) -> dict[str, Any]:
    """The request for the rest: the conversation, plus what was sent as a user turn."""
    messages = list(payload.get("messages") or [])
    messages.append({"role": "user", "content": _ASK.format(text=text)})
    return {**payload, "messages": messages, "stream": True}


class Splicer:
    """Turns the continuation's stream (client protocol) into the rest of the broken one."""

    def __init__(self, broken: Transcript) -> None:
        self.broken = broken
        self.framer = SSEFramer()
        self.indices: dict[int, int] = {}
        self.next_index = broken.blocks
        self.open_text = broken.open_text
        self.input_tokens = 0

    def feed(self, data: bytes) -> bytes:
        out = [self._event(event) for event in self.framer.feed(data)]
        return b"".join(out)

    def _event(self, event: Event) -> bytes:
        if self.broken.protocol == "anthropic":
            return self._anthropic(event)
        return self._openai(event)

    def _anthropic(self, event: Event) -> bytes:
        if event.name in ("ping", "message_start") or event.name is None:
            if event.name == "message_start":
                usage = orjson.loads(event.data)["message"].get("usage", {})
                self.input_tokens = int(usage.get("input_tokens", 0))
            return b""
        data = orjson.loads(event.data)
        kind = data.get("type")
        out = b""
        if kind == "content_block_start":
            index = int(data["index"])
            if self.open_text is not None and data["content_block"]["type"] == "text":
                self.indices[index], self.open_text = self.open_text, None
                return b""  # the broken text block goes on
            if self.open_text is not None:  # it does not go on: close it first
                stop = {"type": "content_block_stop", "index": self.open_text}
                out = encode_event("content_block_stop", orjson.dumps(stop))
                self.open_text = None
            self.indices[index] = self.next_index
            self.next_index += 1
        if "index" in data:
            data["index"] = self.indices.get(int(data["index"]), data["index"])
        if kind == "message_delta":
            usage = data.setdefault("usage", {})
            usage["output_tokens"] = int(usage.get("output_tokens", 0)) + self.broken.output_tokens
            usage["input_tokens"] = self.broken.input_tokens + self.input_tokens
        return out + encode_event(event.name, orjson.dumps(data))

    def _openai(self, event: Event) -> bytes:
        if event.data in (b"", b"[DONE]"):
            return event.raw
        data = orjson.loads(event.data)
        if "error" in data:
            return event.raw
        if self.broken.id is not None:
            data["id"] = self.broken.id
        choices = data.get("choices") or []
        if choices and not any(has_content(c) for c in choices):
            return b""  # the continuation's opening role chunk: the client had one
        usage = data.get("usage")
        if isinstance(usage, dict):
            usage["completion_tokens"] = (
                int(usage.get("completion_tokens") or 0) + self.broken.output_tokens
            )
            usage["total_tokens"] = int(usage.get("prompt_tokens") or 0) + int(
                usage["completion_tokens"]
            )
        return encode_event(None, orjson.dumps(data))

    def finish(self) -> bytes:
        return b""
