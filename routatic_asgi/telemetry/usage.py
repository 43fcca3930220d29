"""Read token usage and the stop reason of a successful attempt, cheaply.

A non-streamed body is parsed once. In a stream only the few events that carry usage are
parsed: Anthropic's `message_start` and `message_delta` and the Responses API's
`response.completed`/`response.incomplete` (picked by event name), and Chat Completions
chunks whose bytes show a non-null `finish_reason` or `usage`. Every other event costs a name
compare or one regex scan. Nothing here performs I/O or ever fails a request: an unreadable
event is ignored.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from routatic_asgi.attempt import Attempt, Protocol, Usage
from routatic_asgi.sse import Event

__all__ = ["UsageReader", "usage_from_body"]

_OPENAI_INTERESTING = re.compile(rb'"(?:finish_reason|usage)"\s*:\s*[{"]')
_ANTHROPIC_EVENTS = frozenset({"message_start", "message_delta"})
_RESPONSES_EVENTS = frozenset({"response.completed", "response.incomplete"})


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _anthropic_usage(usage: Any, into: Usage) -> None:
    """Anthropic usage is cumulative: a present field replaces the one before it."""
    if not isinstance(usage, dict):
        return
    for field, name in (
        ("input", "input_tokens"),
        ("output", "output_tokens"),
        ("cache_read", "cache_read_input_tokens"),
        ("cache_write", "cache_creation_input_tokens"),
    ):
        value = _int(usage.get(name))
        if value is not None:
            setattr(into, field, value)


def _openai_usage(usage: Any, into: Usage) -> None:
    """OpenAI's prompt_tokens include the cached ones; Usage.input counts only the uncached."""
    if not isinstance(usage, dict):
        return
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached = _int(details.get("cached_tokens")) or 0
    written = _int(details.get("cache_write_tokens")) or 0
    prompt = _int(usage.get("prompt_tokens"))
    if prompt is not None:
        into.input = max(prompt - cached - written, 0)
    completion = _int(usage.get("completion_tokens"))
    if completion is not None:
        into.output = completion
    into.cache_read, into.cache_write = cached, written


def _responses(payload: dict[str, Any], into: Usage) -> None:
    """A Response: input_tokens include the cached ones; the stop reason is its status."""
    _model(payload, into)
    usage = payload.get("usage")
    if isinstance(usage, dict):
        details = usage.get("input_tokens_details")
        cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else None
        into.cache_read = cached or 0
        prompt = _int(usage.get("input_tokens"))
        if prompt is not None:
            into.input = max(prompt - into.cache_read, 0)
        output = _int(usage.get("output_tokens"))
        if output is not None:
            into.output = output
    status = payload.get("status")
    incomplete = payload.get("incomplete_details")
    reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
    into.stop_reason = str(reason) if isinstance(reason, str) else str(status) if status else None


def _openai_choice(payload: dict[str, Any], into: Usage) -> None:
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        if isinstance(reason, str):
            into.stop_reason = reason


def _model(payload: dict[str, Any], into: Usage) -> None:
    model = payload.get("model")
    if isinstance(model, str) and model:
        into.model = model


def usage_from_body(protocol: Protocol, body: bytes) -> Usage | None:
    """Usage of a non-streamed answer in `protocol`, or None when the body says nothing."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or "usage" not in payload:
        return None
    usage = Usage()
    _model(payload, usage)
    if protocol == "responses":
        _responses(payload, usage)
    elif protocol == "anthropic":
        _anthropic_usage(payload.get("usage"), usage)
        reason = payload.get("stop_reason")
        usage.stop_reason = reason if isinstance(reason, str) else None
    else:
        _openai_usage(payload.get("usage"), usage)
        _openai_choice(payload, usage)
    return usage


class UsageReader:
    """Watches a stream's events (in the target's protocol) and fills `attempt.usage`."""

    __slots__ = ("attempt", "protocol")

    def __init__(self, attempt: Attempt, protocol: Protocol) -> None:
        self.attempt, self.protocol = attempt, protocol

    def observe(self, event: Event) -> None:
        if self.protocol == "anthropic":
            if event.name in _ANTHROPIC_EVENTS:
                self._anthropic(event.data)
        elif self.protocol == "responses":
            if event.name in _RESPONSES_EVENTS:
                payload = self._payload(event.data)
                response = payload.get("response") if payload else None
                if isinstance(response, dict):
                    _responses(response, self._usage())
        elif _OPENAI_INTERESTING.search(event.data):
            self._openai(event.data)

    def _payload(self, data: bytes) -> dict[str, Any] | None:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return payload if isinstance(payload, dict) else None

    def _usage(self) -> Usage:
        if self.attempt.usage is None:
            self.attempt.usage = Usage()
        return self.attempt.usage

    def _anthropic(self, data: bytes) -> None:
        payload = self._payload(data)
        if payload is None:
            return
        usage = self._usage()
        message = payload.get("message")
        if isinstance(message, dict):  # message_start
            _model(message, usage)
            _anthropic_usage(message.get("usage"), usage)
            return
        delta = payload.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
            usage.stop_reason = delta["stop_reason"]
        _anthropic_usage(payload.get("usage"), usage)

    def _openai(self, data: bytes) -> None:
        payload = self._payload(data)
        if payload is None:
            return
        usage = self._usage()
        _model(payload, usage)
        _openai_choice(payload, usage)
        _openai_usage(payload.get("usage"), usage)
