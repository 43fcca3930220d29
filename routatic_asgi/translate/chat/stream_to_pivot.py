"""Chat Completions streams to the pivot: a target's chunks, as pivot (Anthropic) events.

`OpenAIToAnthropic` reads the TARGET's chunks (as the SSE framer cut them) and writes the
CLIENT's events: `kind()` tells the relay hold-back, content (the commit point), error and
end apart, and `translate()` returns the bytes to send, possibly none. State is one small
object per stream (open block, tool calls seen, usage so far); memory does not grow with the
stream's length, and nothing is buffered for later: what can be written is written at once.
"""

from __future__ import annotations

from typing import Any

from routatic_asgi.sse import Event
from routatic_asgi.translate.chat.answers import anthropic_usage, reasoning_of, stop_reason
from routatic_asgi.translate.chat.errors import openai_error_chunk_as_anthropic
from routatic_asgi.translate.chat.stream import has_content
from routatic_asgi.translate.codec import EventKind, stream_error_event
from routatic_asgi.translate.pivot import Blocks, as_dict, keepalive, load, message_start, tool_id

__all__ = ["OpenAIToAnthropic"]

_DONE = b"[DONE]"


def _choice(chunk: dict[str, Any]) -> dict[str, Any]:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def _delta(choice: dict[str, Any]) -> dict[str, Any]:
    delta = choice.get("delta")
    return delta if isinstance(delta, dict) else {}


class OpenAIToAnthropic:
    """An OpenAI-protocol target's chunks, as the Anthropic events an Anthropic client expects.

    Block indices are dense and in order; `message_start` comes first and `message_stop`
    last, after the usage chunk. Parallel tool calls are told apart by id when a server reuses
    index 0 for all of them.
    """

    def __init__(self) -> None:
        self.seen = False
        self.committed = False
        self._parsed: tuple[Event, dict[str, Any] | None] | None = None
        self._started = self._closed = self._failed = False
        self._id = ""
        self._blocks = Blocks()  # keyed "text", "thinking" or "tool:<openai index>"
        self._calls: dict[int, str] = {}  # OpenAI tool index → the id of its current call
        self._tools = 0
        self._finish: Any = None
        self._usage: dict[str, int] = {}

    # -- the relay's questions ----------------------------------------------------------

    def kind(self, event: Event) -> EventKind:
        self.seen = True
        if event.data == _DONE:
            return EventKind.END
        chunk = self._chunk(event)
        if chunk is None:
            return EventKind.CONTENT if self.committed else EventKind.HOLD
        if "error" in chunk:
            return EventKind.END if self.committed else EventKind.ERROR
        choice = _choice(chunk)
        if self.committed:
            return EventKind.END if choice.get("finish_reason") else EventKind.CONTENT
        if has_content(choice):
            self.committed = True
            return EventKind.CONTENT
        return EventKind.HOLD

    def translate(self, event: Event) -> bytes:
        if event.data == _DONE:
            return self._close()
        chunk = self._chunk(event)
        if chunk is None:
            return keepalive(event)
        if "error" in chunk:
            self._failed = True
            return openai_error_chunk_as_anthropic(event.data)
        out = [self._start(chunk)]
        if isinstance(chunk.get("usage"), dict):
            self._usage = anthropic_usage(chunk["usage"])
        choice = _choice(chunk)
        delta = _delta(choice)
        reasoning = reasoning_of(delta)
        if reasoning:
            out.append(self._text_delta("thinking", reasoning))
        if isinstance(delta.get("content"), str) and delta["content"]:
            out.append(self._text_delta("text", delta["content"]))
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                out.append(self._tool_fragment(call))
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
            out.append(self._blocks.stop())
        return b"".join(out)

    def finish(self) -> bytes:
        # A server that ends after finish_reason without `[DONE]` still ends cleanly.
        return self._close() if self._finish is not None else b""

    def error_event(self, message: str) -> bytes:
        self._failed = True
        return stream_error_event("anthropic", message)

    # -- writing events -------------------------------------------------------------------

    def _chunk(self, event: Event) -> dict[str, Any] | None:
        if self._parsed is None or self._parsed[0] is not event:
            self._parsed = (event, load(event.data) if event.data else None)
        return self._parsed[1]

    def _start(self, chunk: dict[str, Any]) -> bytes:
        if self._started:
            return b""
        self._started = True
        self._id = str(chunk.get("id") or "msg_translated")
        return message_start(self._id, str(chunk.get("model", "")))

    def _text_delta(self, kind: str, text: str) -> bytes:
        opened = b""
        if self._blocks.open != kind:
            block = (
                {"type": "text", "text": ""}
                if kind == "text"
                else {"type": "thinking", "thinking": "", "signature": ""}
            )
            opened = self._blocks.start(kind, block)
        delta = {"type": "text_delta", "text": text}
        if kind == "thinking":
            delta = {"type": "thinking_delta", "thinking": text}
        return opened + self._blocks.delta(delta)

    def _tool_fragment(self, call: dict[str, Any]) -> bytes:
        index = call["index"] if isinstance(call.get("index"), int) else 0
        raw_id = call.get("id")
        function = as_dict(call.get("function"))
        key = f"tool:{index}"
        out = b""
        is_new = index not in self._calls or (bool(raw_id) and raw_id != self._calls[index])
        if is_new:
            self._calls[index] = str(raw_id or "")
            block = {
                "type": "tool_use",
                "id": tool_id(raw_id, self._id, self._tools),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            self._tools += 1
            out = self._blocks.start(key, block)
        elif self._blocks.open != key:
            return b""  # a fragment of a call already closed: servers send calls in order
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out += self._blocks.delta({"type": "input_json_delta", "partial_json": arguments})
        return out

    def _close(self) -> bytes:
        if self._closed or self._failed or not self._started:
            return b""
        self._closed = True
        usage = self._usage or {"output_tokens": 0}
        return self._blocks.end(stop_reason(self._finish, self._tools > 0), usage)
