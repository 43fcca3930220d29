"""A Chat Completions stream read as it passes through: bare `data:` chunks, `[DONE]` at the end.

The watcher of a same-protocol passthrough: it finds the commit point (the first chunk with
content or a finish reason) and an error chunk before it. Never rewrites a byte; a stream
that ends after its finish reason without `[DONE]` is complete and gets its `[DONE]`, not an
error.
"""

from __future__ import annotations

import re

import orjson

from routatic_asgi.sse import Event
from routatic_asgi.translate.codec import EventKind, stream_error_event

__all__ = ["OpenAIStream", "has_content"]

# A finish reason that is set: searched in the bytes, the chunks after the commit go unparsed.
_FINISHED = re.compile(rb'"finish_reason"\s*:\s*"')


class OpenAIStream:
    __slots__ = ("committed", "done", "finished", "seen")

    def __init__(self) -> None:
        self.seen = False
        self.committed = False
        self.finished = False  # a finish reason went by after the commit
        self.done = False  # [DONE] went by

    def kind(self, event: Event) -> EventKind:
        self.seen = True
        data = event.data
        if data == b"[DONE]":
            self.done = True
            return EventKind.END
        if self.committed:
            if _FINISHED.search(data):
                self.finished = True
                return EventKind.END
            if data:
                orjson.loads(data)  # a malformed chunk raises: the stream broke
            return EventKind.CONTENT
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return EventKind.HOLD
        if not isinstance(chunk, dict):
            return EventKind.HOLD
        if "error" in chunk:
            return EventKind.ERROR
        if any(has_content(choice) for choice in _choices(chunk)):
            self.committed = True
            self.finished = _FINISHED.search(data) is not None
            return EventKind.CONTENT
        return EventKind.HOLD

    def translate(self, event: Event) -> bytes:
        return event.raw

    def finish(self) -> bytes:
        return b"data: [DONE]\n\n" if self.finished and not self.done else b""

    def error_event(self, message: str) -> bytes:
        return stream_error_event("openai", message)


# What a delta carries that makes it the answer's content (reasoning is OpenRouter's name
# for what DeepSeek calls reasoning_content).
_CONTENT_FIELDS = ("content", "tool_calls", "reasoning_content", "reasoning", "refusal")


def has_content(choice: object) -> bool:
    """Whether a Chat Completions stream choice carries content or a finish reason: the
    commit point of a Chat stream, passed through or translated, and what a rescue keeps."""
    if not isinstance(choice, dict):
        return False
    if choice.get("finish_reason"):
        return True
    delta = choice.get("delta")
    return isinstance(delta, dict) and any(delta.get(field) for field in _CONTENT_FIELDS)


def _choices(chunk: dict[str, object]) -> list[object]:
    choices = chunk.get("choices")
    return choices if isinstance(choices, list) else []
