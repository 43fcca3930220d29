"""`Translation`: the exchange for a client and a target that speak different protocols.

Any client protocol reaches any target protocol by composing two codecs: the client's
decodes its request to the pivot and the target's encodes it; the target's answer, errors
and stream are decoded to the pivot by the target's codec and encoded for the client by the
client's. An Anthropic side is the pivot itself and costs nothing; only Chat ⇄ Responses
goes through two steps, and its stream is re-framed between them (`Composed`).

Headers: never `anthropic-*` to an OpenAI-protocol target; Anthropic targets always get
`anthropic-version: 2023-06-01`, the version the translated body is written in. It
performs no I/O and keeps nothing between requests.
"""

from __future__ import annotations

from typing import Any

import orjson

from routatic_asgi.attempt import InboundRequest, Target
from routatic_asgi.sse import Event, SSEFramer
from routatic_asgi.translate.anthropic import CODEC as ANTHROPIC
from routatic_asgi.translate.chat import CODEC as CHAT
from routatic_asgi.translate.codec import CacheHints, Codec, EventKind, StreamCodec
from routatic_asgi.translate.responses import CODEC as RESPONSES

__all__ = ["CODECS", "Composed", "Translation", "cache_hints", "cap_output"]

CODECS: dict[str, Codec] = {"anthropic": ANTHROPIC, "openai": CHAT, "responses": RESPONSES}
_OUTPUT_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


class Translation:
    """A client of one protocol served by a target of another, through the pivot."""

    passthrough = False

    def __init__(
        self,
        request: InboundRequest,
        target: Target,
        *,
        now: float = 0.0,
    ) -> None:
        self.request, self.target = request, target
        self.cache = cache_hints(request, target)
        caps = target.caps
        self.client, self.upstream = CODECS[request.protocol], CODECS[target.protocol]
        self.reasoning = caps is None or caps.thinking
        self.max_output = caps.max_output if caps is not None else None
        self.created = int(now)
        self.path = self.upstream.path
        self.extra_headers: list[tuple[bytes, bytes]] = list(self.upstream.extra_headers)
        self._foreign = self.upstream.foreign

    def forwards(self, header: bytes) -> bool:
        return not (header.startswith(self._foreign) or header == b"anthropic-version")

    def request_body(self) -> bytes:
        target, reasoning = self.target, self.reasoning
        pivot = self.client.request_to_pivot(self.request.payload, target.model, reasoning)
        body = self.upstream.request_from_pivot(pivot, target, reasoning, self.cache)
        if self.max_output is not None:
            cap_output(body, self.max_output)
        return orjson.dumps(body)

    def response_body(self, body: bytes) -> bytes:
        pivot = self.upstream.answer_to_pivot(body)
        return self.client.answer_from_pivot(pivot, self.request.payload, self.created)

    def error_body(self, status: int, body: bytes) -> bytes:
        return self.client.error_from_pivot(status, self.upstream.error_to_pivot(status, body))

    def stream(self) -> StreamCodec:
        decode = self.upstream.stream_to_pivot
        encode = self.client.stream_from_pivot
        if encode is None:
            assert decode is not None  # the same protocol on both sides is no translation
            return decode()
        encoder = encode(self.request.payload, self.created)
        if decode is None:
            return encoder
        return Composed(decode(), encoder)


def cache_hints(request: InboundRequest, target: Target) -> CacheHints:
    """How this translated request keeps its target's prompt cache warm.

    The client's own `prompt_cache_key` goes on as it is (Codex sends its session id), else
    the session's hashed key; breakpoints as the target's provider is configured."""
    own = request.payload.get("prompt_cache_key")
    key = own if isinstance(own, str) and own else None
    if key is None and request.session is not None:
        key = request.session.cache_key
    return CacheHints(
        prompt_cache_key=key,
        breakpoints=target.cache_control,
        auto_breakpoints=target.auto_cache,
    )


def cap_output(body: dict[str, Any], limit: int) -> bool:
    """Lower the body's output limit (`max_tokens`, `max_completion_tokens`,
    `max_output_tokens`) to the model's; drop a thinking budget that no longer fits. Whether
    anything changed."""
    changed = False
    for field in _OUTPUT_LIMITS:
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            body[field], changed = limit, True
    thinking = body.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if isinstance(budget, int) and budget >= limit:
        body.pop("thinking")
        changed = True
    return changed


class Composed:
    """A target's stream decoded to pivot events, re-framed, and encoded for the client.

    The commit point, errors and the end are the target's (the decoder decides); the encoder
    sees every pivot event in order, so its own state (open items, usage) stays right.
    """

    def __init__(self, decoder: StreamCodec, encoder: StreamCodec) -> None:
        self.decoder, self.encoder = decoder, encoder
        self.framer = SSEFramer()
        self.seen = False

    def kind(self, event: Event) -> EventKind:
        self.seen = True
        return self.decoder.kind(event)

    def translate(self, event: Event) -> bytes:
        return self._encode(self.decoder.translate(event))

    def finish(self) -> bytes:
        return self._encode(self.decoder.finish()) + self.encoder.finish()

    def error_event(self, message: str) -> bytes:
        self.decoder.error_event(message)
        return self.encoder.error_event(message)

    def _encode(self, pivot: bytes) -> bytes:
        if not pivot:
            return b""
        out = []
        for event in self.framer.feed(pivot):
            self.encoder.kind(event)
            out.append(self.encoder.translate(event))
        return b"".join(out)
