"""The OpenAI Responses API: codecs to and from the pivot.

`request_to_pivot` (a client's body, namespace tools flattened), `request_from_pivot` (a
target's body, always stateless), `answers` (non-streamed, both ways, usage and stop
reasons), `stream_to_pivot` (a target's `response.*` events as pivot events),
`stream_from_pivot` (pivot events as a client's `response.*` events), `reasoning` (whose
encrypted reasoning goes back where), and `stream` (the passthrough watcher). Errors use the
OpenAI envelope, as Chat Completions does. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from routatic_asgi.attempt import Target
from routatic_asgi.translate.chat.errors import anthropic_error_as_openai, openai_error_as_anthropic
from routatic_asgi.translate.codec import CacheHints, Codec, Payload, StreamCodec
from routatic_asgi.translate.responses.answers import to_pivot_message, to_response
from routatic_asgi.translate.responses.reasoning import (
    has_foreign_reasoning,
    without_foreign_reasoning,
)
from routatic_asgi.translate.responses.request_from_pivot import to_responses
from routatic_asgi.translate.responses.request_to_pivot import to_pivot
from routatic_asgi.translate.responses.stream import ResponsesStream
from routatic_asgi.translate.responses.stream_from_pivot import AnthropicToResponses
from routatic_asgi.translate.responses.stream_to_pivot import ResponsesToAnthropic

__all__ = [
    "CODEC",
    "AnthropicToResponses",
    "ResponsesStream",
    "ResponsesToAnthropic",
    "has_foreign_reasoning",
    "to_pivot",
    "to_responses",
    "without_foreign_reasoning",
]


def _request_from_pivot(
    pivot: Payload, target: Target, reasoning: bool, cache: CacheHints
) -> dict[str, Any]:
    # Responses has no cache_control: breakpoints are dropped.
    return cache.keyed(to_responses(pivot, target.model, reasoning=reasoning))


def _stream_from_pivot(payload: Payload, now: int) -> StreamCodec:
    return AnthropicToResponses(payload, now)


CODEC = Codec(
    protocol="responses",
    path="/responses",
    foreign=(b"anthropic-",),
    extra_headers=(),
    request_to_pivot=to_pivot,
    request_from_pivot=_request_from_pivot,
    answer_to_pivot=to_pivot_message,
    answer_from_pivot=to_response,
    error_to_pivot=openai_error_as_anthropic,
    error_from_pivot=anthropic_error_as_openai,
    stream_to_pivot=ResponsesToAnthropic,
    stream_from_pivot=_stream_from_pivot,
    watch=ResponsesStream,
)
