"""The Anthropic Messages protocol. It is the pivot's own shape, so its codecs change nothing
but the model name and the history a target would refuse (`continuity`); `stream` watches an
Anthropic stream as it passes. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from routatic_asgi.attempt import Target
from routatic_asgi.translate.anthropic.breakpoints import with_breakpoints
from routatic_asgi.translate.anthropic.continuity import (
    anthropic_history,
    has_foreign_thinking,
    without_thinking,
)
from routatic_asgi.translate.anthropic.stream import AnthropicStream
from routatic_asgi.translate.codec import CacheHints, Codec, Payload

__all__ = [
    "ANTHROPIC_VERSION",
    "CODEC",
    "AnthropicStream",
    "anthropic_history",
    "has_foreign_thinking",
]

# The version every translated body is written in, sent to Anthropic targets of translations.
ANTHROPIC_VERSION = b"2023-06-01"


def _request_to_pivot(payload: Payload, model: str, reasoning: bool) -> dict[str, Any]:
    return {**payload, "model": model}


def _request_from_pivot(
    pivot: Payload, target: Target, reasoning: bool, cache: CacheHints
) -> dict[str, Any]:
    body = anthropic_history({**pivot, "model": target.model})
    if isinstance(body.get("tools"), list):
        # `strict` on a tool is tied to a beta header a translated request does not send.
        body["tools"] = [_without_strict(tool) for tool in body["tools"]]
    if cache.auto_breakpoints:
        body = with_breakpoints(body)
    return body if reasoning else without_thinking(body)


def _without_strict(tool: Any) -> Any:
    if isinstance(tool, dict) and "strict" in tool:
        return {key: value for key, value in tool.items() if key != "strict"}
    return tool


def _same(body: bytes) -> bytes:
    return body


def _same_answer(body: bytes, payload: Payload, now: int) -> bytes:
    return body


def _same_error(status: int, body: bytes) -> bytes:
    return body


CODEC = Codec(
    protocol="anthropic",
    path="/v1/messages",
    foreign=(b"openai-",),
    extra_headers=((b"anthropic-version", ANTHROPIC_VERSION),),
    request_to_pivot=_request_to_pivot,
    request_from_pivot=_request_from_pivot,
    answer_to_pivot=_same,
    answer_from_pivot=_same_answer,
    error_to_pivot=_same_error,
    error_from_pivot=_same_error,
    stream_to_pivot=None,
    stream_from_pivot=None,
    watch=AnthropicStream,
)
