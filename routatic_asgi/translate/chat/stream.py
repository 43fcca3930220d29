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

__all__ = ["OpenAIStream"]

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
        if _has_content(chunk):
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


def _has_content(chunk: dict[str, object]) -> bool:
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(
            delta.get(field) for field in ("content", "tool_calls", "reasoning_content", "refusal")
        ):
            return True
    return False
