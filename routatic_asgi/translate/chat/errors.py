"""Chat Completions errors to and from the pivot's (Anthropic's) envelope and error events.

Pure functions of a status and a body. A body that is not the expected envelope still yields
a well-formed one, with the upstream's text (truncated) as the message. Nothing here decides
whether an error falls back: that is `routatic_asgi.classify`'s job on the untranslated body.
"""

from __future__ import annotations

from typing import Any

import orjson

from routatic_asgi.classify import says_too_long
from routatic_asgi.errors import anthropic_error_body, anthropic_error_type, openai_error_body
from routatic_asgi.sse import encode_event

__all__ = [
    "anthropic_error_as_openai",
    "anthropic_error_event_as_openai",
    "openai_error_as_anthropic",
    "openai_error_chunk_as_anthropic",
]

_MESSAGE_LIMIT = 2000
_ANTHROPIC_TOO_LONG = "prompt is too long"

# OpenAI error types/codes that name an Anthropic error type more precisely than the status.
_OPENAI_KINDS = (
    ("context_length", "invalid_request_error"),
    ("rate_limit", "rate_limit_error"),
    ("insufficient_quota", "billing_error"),
    ("overloaded", "overloaded_error"),
    ("timeout", "timeout_error"),
    ("authentication", "authentication_error"),
    ("invalid_api_key", "authentication_error"),
    ("permission", "permission_error"),
    ("not_found", "not_found_error"),
    ("model_not_found", "not_found_error"),
)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text[:_MESSAGE_LIMIT] or "the upstream answered with an empty body"


def _openai_error(payload: Any) -> tuple[str, str]:
    """(message, type-or-code) of an OpenAI-shaped error, either may be empty."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, str):
        return error, ""
    if not isinstance(error, dict):
        return "", ""
    message = error.get("message")
    kind = " ".join(str(error.get(field) or "") for field in ("type", "code")).strip()
    return (str(message) if message else ""), kind


def _anthropic_type(status: int, kind: str) -> str:
    lowered = kind.lower()
    for needle, anthropic_type in _OPENAI_KINDS:
        if needle in lowered:
            return anthropic_type
    return anthropic_error_type(status)


def openai_error_as_anthropic(status: int, body: bytes) -> bytes:
    """An OpenAI error body (any status) as Anthropic's `{"type":"error","error":{...}}`.

    A context-length error is worded the way Anthropic words it ("prompt is too long"),
    because clients such as Claude Code match on that wording to compact the conversation.
    """
    message, kind = _openai_error(_json(body))
    message = message or _text(body)
    too_long = "context_length" in kind or says_too_long(message)
    if too_long and not message.lower().startswith(_ANTHROPIC_TOO_LONG):
        message = f"{_ANTHROPIC_TOO_LONG}: {message}"
    return anthropic_error_body(status, message, _anthropic_type(status, kind))


def anthropic_error_as_openai(status: int, body: bytes) -> bytes:
    """An Anthropic error body (any status) as OpenAI's `{"error":{message,type,param,code}}`."""
    payload = _json(body)
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and error.get("message"):
        kind = error.get("type")
        return openai_error_body(status, str(error["message"]), str(kind) if kind else None)
    return openai_error_body(status, _text(body))


def openai_error_chunk_as_anthropic(data: bytes) -> bytes:
    """A `data: {"error":{...}}` chunk as an Anthropic `event: error`."""
    message, kind = _openai_error(_json(data))
    status = 529 if "overload" in kind.lower() else 500
    body = anthropic_error_body(status, message or _text(data), _anthropic_type(status, kind))
    return encode_event("error", body)


def anthropic_error_event_as_openai(data: bytes) -> bytes:
    """An Anthropic `event: error` as an OpenAI error chunk (bare `data:`)."""
    payload = _json(data)
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and error.get("message"):
        kind = error.get("type")
        body = openai_error_body(500, str(error["message"]), str(kind) if kind else None)
    else:
        body = openai_error_body(500, _text(data), "server_error")
    return encode_event(None, body)
