"""`Translation`: the `Exchange` for a client and a target that speak different protocols,
and `Repaired`, the passthrough for Anthropic history that carries foreign thinking.

It tells the relay where to post, which client headers may go (never `anthropic-*` to an
OpenAI target; Anthropic targets always get `anthropic-version: 2023-06-01`, the version the
translated body is written in), and turns bodies, errors and streams around. It performs no
I/O and keeps nothing between requests.
"""

from __future__ import annotations

from typing import Any

import orjson

from routatic_asgi.attempt import InboundRequest, Target
from routatic_asgi.config import ModelCaps
from routatic_asgi.exchange import Passthrough, StreamCodec
from routatic_asgi.translate.chat_requests import to_anthropic
from routatic_asgi.translate.chat_streams import AnthropicToOpenAI
from routatic_asgi.translate.continuity import anthropic_history
from routatic_asgi.translate.errors import anthropic_error_as_openai, openai_error_as_anthropic
from routatic_asgi.translate.requests import dialect_of, to_openai
from routatic_asgi.translate.responses import to_anthropic_message, to_openai_completion
from routatic_asgi.translate.streams import OpenAIToAnthropic

__all__ = ["ANTHROPIC_VERSION", "Repaired", "Translation"]

ANTHROPIC_VERSION = b"2023-06-01"


class Translation:
    """Anthropic client ⇄ OpenAI-protocol target, or OpenAI client ⇄ Anthropic target."""

    passthrough = False

    def __init__(
        self,
        request: InboundRequest,
        target: Target,
        *,
        caps: ModelCaps | None = None,
        now: float = 0.0,
    ) -> None:
        self.request, self.target = request, target
        self.reasoning = caps is None or caps.thinking
        self.max_output = caps.max_output if caps is not None else None
        self.created = int(now)
        if target.protocol == "openai":
            self.path = "/chat/completions"
            self.extra_headers: list[tuple[bytes, bytes]] = []
            self._foreign = b"anthropic-"
        else:
            self.path = "/v1/messages"
            self.extra_headers = [(b"anthropic-version", ANTHROPIC_VERSION)]
            self._foreign = b"openai-"

    def forwards(self, header: bytes) -> bool:
        return not (header.startswith(self._foreign) or header == b"anthropic-version")

    def request_body(self) -> bytes:
        payload, model = self.request.payload, self.target.model
        if self.target.protocol == "openai":
            dialect = dialect_of(model, self.target.base_url)
            body = to_openai(payload, model, reasoning=self.reasoning, dialect=dialect)
        else:
            body = anthropic_history(to_anthropic(payload, model, reasoning=self.reasoning))
        limit = self.max_output
        if limit is not None:
            _cap(body, limit)
        return orjson.dumps(body)

    def response_body(self, body: bytes) -> bytes:
        if self.target.protocol == "openai":
            return to_anthropic_message(body)
        return to_openai_completion(body, self.created)

    def error_body(self, status: int, body: bytes) -> bytes:
        if self.target.protocol == "openai":
            return openai_error_as_anthropic(status, body)
        return anthropic_error_as_openai(status, body)

    def stream(self) -> StreamCodec:
        if self.target.protocol == "openai":
            return OpenAIToAnthropic()
        options = self.request.payload.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return AnthropicToOpenAI(created=self.created, include_usage=include_usage)


def _cap(body: dict[str, Any], limit: int) -> None:
    """Lower the body's output limit to the model's; drop a thinking budget that no longer fits."""
    for field in ("max_tokens", "max_completion_tokens"):
        if isinstance(body.get(field), int):
            body[field] = min(body[field], limit)
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("budget_tokens", 0) >= limit:
        body.pop("thinking")


class Repaired(Passthrough):
    """Anthropic to Anthropic, with thinking that Anthropic did not sign taken out first."""

    def request_body(self) -> bytes:
        body = anthropic_history(self.request.payload)
        body["model"] = self.target.model
        return orjson.dumps(body)
