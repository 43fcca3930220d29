"""The OpenAI Chat Completions protocol: codecs to and from the pivot.

`request_to_pivot` (a client's body), `request_from_pivot` (a target's body, with reasoning
asked for in the target's dialect), `answers` (non-streamed, both ways), `stream_to_pivot`
(a target's chunks as pivot events), `stream_from_pivot` (pivot events as a client's
chunks), `errors` (envelopes, both ways) and `stream` (the passthrough watcher). Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from routatic_asgi.attempt import Target
from routatic_asgi.translate.chat.answers import to_anthropic_message, to_openai_completion
from routatic_asgi.translate.chat.errors import anthropic_error_as_openai, openai_error_as_anthropic
from routatic_asgi.translate.chat.request_from_pivot import dialect_of, to_openai
from routatic_asgi.translate.chat.request_to_pivot import to_anthropic
from routatic_asgi.translate.chat.stream import OpenAIStream
from routatic_asgi.translate.chat.stream_from_pivot import AnthropicToOpenAI
from routatic_asgi.translate.chat.stream_to_pivot import OpenAIToAnthropic
from routatic_asgi.translate.codec import CacheHints, Codec, Payload, StreamCodec

__all__ = [
    "CODEC",
    "AnthropicToOpenAI",
    "OpenAIStream",
    "OpenAIToAnthropic",
    "to_anthropic",
    "to_openai",
]


def _request_from_pivot(
    pivot: Payload, target: Target, reasoning: bool, cache: CacheHints
) -> dict[str, Any]:
    dialect = dialect_of(target.model, target.base_url)
    return cache.keyed(
        to_openai(
            pivot, target.model, reasoning=reasoning, dialect=dialect, breakpoints=cache.breakpoints
        )
    )


def _answer_from_pivot(body: bytes, payload: Payload, now: int) -> bytes:
    return to_openai_completion(body, now)


def _stream_from_pivot(payload: Payload, now: int) -> StreamCodec:
    options = payload.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return AnthropicToOpenAI(created=now, include_usage=include_usage)


CODEC = Codec(
    protocol="openai",
    path="/chat/completions",
    foreign=(b"anthropic-",),
    extra_headers=(),
    request_to_pivot=to_anthropic,
    request_from_pivot=_request_from_pivot,
    answer_to_pivot=to_anthropic_message,
    answer_from_pivot=_answer_from_pivot,
    error_to_pivot=openai_error_as_anthropic,
    error_from_pivot=anthropic_error_as_openai,
    stream_to_pivot=OpenAIToAnthropic,
    stream_from_pivot=_stream_from_pivot,
    watch=OpenAIStream,
)
