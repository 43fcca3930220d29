"""The dispatcher's answers to a path it does not serve: the caller's error envelope and a
hint at the usual mistake (a /v1 too many, a prefix the gateway does not have)."""

from __future__ import annotations

from starlette.types import Scope

from routatic_asgi.app.discovery import speaks_openai
from routatic_asgi.attempt import Protocol, endpoint_for

__all__ = ["WITHOUT_V1", "envelope", "hint"]

WITHOUT_V1 = frozenset(
    {"/messages", "/messages/count_tokens", "/chat/completions", "/responses", "/models"}
)
_SERVED = "/v1/messages, /v1/chat/completions, /v1/responses, /v1/models"


def hint(path: str) -> str:
    """What the caller probably meant: most 404s are a base URL with a /v1 too many or a
    prefix the gateway does not have."""
    if path.startswith("/v1/v1/"):
        return "the client added /v1 to a base URL that already ends in /v1: drop one"
    for served in (*_SERVED.split(", "), *WITHOUT_V1):
        if path.endswith(served):
            return f"this gateway serves {served} at its root: point the base URL at it"
    return f"this gateway serves {_SERVED}, /status and /ui"


def envelope(scope: Scope, path: str) -> Protocol:
    """The error envelope for a path: its protocol's, or for an unknown path under /v1/ (no
    protocol owns it), the one the client's headers point to; Anthropic's elsewhere."""
    protocol, endpoint = endpoint_for(path)
    unknown = endpoint == "messages" and not path.endswith("/messages")
    if unknown and path.startswith("/v1/"):
        return "openai" if speaks_openai(scope) else "anthropic"
    return protocol
