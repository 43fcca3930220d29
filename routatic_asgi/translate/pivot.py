"""The pivot: the one shape every protocol is translated to and from.

The pivot is the Anthropic Messages shape — a request body (`system`, `messages` of blocks,
`tools`, `tool_choice`, `thinking`, `max_tokens`), an answer (a `message` with content
blocks, `stop_reason` and `usage`) and a stream of events (`message_start`,
`content_block_*`, `message_delta`, `message_stop`, `error`). It was chosen because the
Anthropic shape is the richest of the three (typed blocks, signed thinking, cache usage) and
an Anthropic target then needs no translation at all. Each protocol package holds codecs to
and from it; this module holds what they share: reading bodies and events, tool ids and
arguments, texts of blocks, and `Blocks`, which numbers a translated stream's content blocks.
Pure: nothing here performs I/O, and only a `Blocks` keeps state (one stream's).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import orjson

from routatic_asgi.errors import RoutaticError
from routatic_asgi.sse import Event, encode_event

__all__ = [
    "Blocks",
    "TranslationError",
    "as_dict",
    "keepalive",
    "load",
    "message",
    "message_start",
    "parse",
    "sse",
    "texts",
    "thinking_on",
    "tool_arguments",
    "tool_id",
]

_TOOL_ID = re.compile(r"[^A-Za-z0-9_-]")


class TranslationError(RoutaticError):
    """An upstream answer that cannot be read as its protocol's response."""


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse(body: bytes) -> dict[str, Any]:
    """A whole answer body as a JSON object, or `TranslationError`."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise TranslationError(f"the upstream's answer is not JSON: {exc.msg}") from exc
    if not isinstance(payload, dict):
        raise TranslationError("the upstream's answer is not a JSON object")
    return payload


def load(data: bytes) -> dict[str, Any] | None:
    """An event's data as a JSON object, or None (a stream goes on past a strange event)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def sse(name: str, payload: dict[str, Any]) -> bytes:
    return encode_event(name, orjson.dumps(payload))


def message(
    message_id: str,
    model: str,
    content: list[dict[str, Any]],
    stop_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A pivot Message: a whole answer, or (no content, no stop reason) a stream's opening."""
    return {
        "id": message_id or "msg_translated",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 0, "output_tokens": 0},
    }


def message_start(message_id: str, model: str) -> bytes:
    """The `message_start` event that opens a translated stream."""
    return sse(
        "message_start", {"type": "message_start", "message": message(message_id, model, [])}
    )


class Blocks:
    """The content blocks of one translated stream, as pivot events: dense indices in order,
    one block open at a time, each opened block stopped before the next and at the end."""

    __slots__ = ("index", "open")

    def __init__(self) -> None:
        self.index = -1
        self.open: str | None = None  # the open block's key, as its stream names it

    def start(self, key: str, block: dict[str, Any]) -> bytes:
        """Open `block` under `key`, stopping the one open."""
        stop = self.stop()
        self.index += 1
        self.open = key
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        return stop + sse("content_block_start", start)

    def delta(self, delta: dict[str, Any]) -> bytes:
        body = {"type": "content_block_delta", "index": self.index, "delta": delta}
        return sse("content_block_delta", body)

    def stop(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return sse("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def end(self, stop_reason: str, usage: dict[str, int]) -> bytes:
        """The stream's last events: the open block's stop, `message_delta`, `message_stop`."""
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": usage,
        }
        return (
            self.stop()
            + sse("message_delta", delta)
            + sse("message_stop", {"type": "message_stop"})
        )


def keepalive(event: Event) -> bytes:
    """A comment line keeps an idle client's timer from firing; anything else is dropped."""
    return b": keep-alive\n\n" if event.raw.lstrip().startswith(b":") else b""


def tool_id(raw: Any, seed: str, position: int) -> str:
    """A tool id Anthropic accepts (`[A-Za-z0-9_-]+`), the same each time for the same input.

    Servers that send no id get one derived from the response id and the call's position.
    """
    if isinstance(raw, str) and raw:
        return _TOOL_ID.sub("_", raw)[:64]
    digest = hashlib.sha256(f"{seed}:{position}".encode()).hexdigest()[:24]
    return f"toolu_{digest}"


def tool_arguments(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments (a JSON string) as the object Anthropic wants; `{}` if unreadable."""
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def texts(content: Any) -> list[str]:
    """The texts of a string or of a list of blocks (text, and plain-text documents)."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    out = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text":
            out.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") == "document":
            out.extend(_document_text(block))
    return out


def _document_text(block: Mapping[str, Any]) -> list[str]:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "text":
        return [str(source.get("data", ""))]
    return ["[a document was omitted: this provider cannot read it]"]


def thinking_on(payload: Mapping[str, Any]) -> bool:
    thinking = payload.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
