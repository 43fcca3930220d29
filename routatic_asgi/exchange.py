"""How one attempt speaks to its target: what to send, and how to read what comes back.

An `Exchange` gives the relay the upstream path and body, which client headers to forward,
how to turn the response and error bodies into the caller's protocol, and a `StreamCodec`
that tells hold-back, content, error and end apart in the target's stream and re-encodes each
event for the caller. `Passthrough` (the same protocol on both sides) changes nothing but the
model name and never goes through the pivot; `Repaired` is a passthrough (Anthropic or Responses)
whose history carries thinking or reasoning the target would refuse; every other pair is a
`routatic_asgi.translate.Translation`. Nothing here performs I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from typing import Protocol as TypingProtocol

import orjson

from routatic_asgi.attempt import InboundRequest, Target
from routatic_asgi.config import ModelCaps
from routatic_asgi.errors import UnanswerableEndpoint
from routatic_asgi.sse import Event
from routatic_asgi.translate import (
    CODECS,
    EventKind,
    StreamCodec,
    Translation,
    anthropic_history,
    cap_output,
    has_foreign_thinking,
    stream_error_event,
)
from routatic_asgi.translate.chat.replay import (
    ReasoningLog,
    missing_reasoning,
    restore_reasoning,
)
from routatic_asgi.translate.chat.request_from_pivot import dialect_of
from routatic_asgi.translate.responses import has_foreign_reasoning, without_foreign_reasoning

__all__ = [
    "EventKind",
    "Exchange",
    "Passthrough",
    "Repaired",
    "Replaying",
    "StreamCodec",
    "answers",
    "exchange_for",
    "replays_reasoning",
    "stream_error_event",
]


class Exchange(TypingProtocol):
    path: str
    passthrough: bool
    extra_headers: list[tuple[bytes, bytes]]

    def forwards(self, header: bytes) -> bool: ...

    def request_body(self) -> bytes: ...

    def response_body(self, body: bytes) -> bytes: ...

    def error_body(self, status: int, body: bytes) -> bytes: ...

    def stream(self) -> StreamCodec: ...


_PATHS = {
    ("anthropic", "messages"): "/v1/messages",
    ("anthropic", "count_tokens"): "/v1/messages/count_tokens",
    ("openai", "chat_completions"): "/chat/completions",
    ("responses", "responses"): "/responses",
}


class Passthrough:
    """Same protocol on both sides: the body goes as sent unless the model name changes."""

    passthrough = True
    extra_headers: list[tuple[bytes, bytes]] = []

    def __init__(
        self, request: InboundRequest, target: Target, max_output: int | None = None
    ) -> None:
        self.request, self.target = request, target
        self.path = _PATHS[(target.protocol, request.endpoint)]
        self.max_output = max_output

    def forwards(self, header: bytes) -> bool:
        return True

    def request_body(self) -> bytes:
        """As sent, unless the model is renamed or asks for more output than it can give."""
        body = self._capped(self.request.payload)
        if body is None and self.target.model == self.request.model:
            return self.request.body
        return orjson.dumps({**(body or self.request.payload), "model": self.target.model})

    def _capped(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        if self.max_output is None:
            return None
        body = dict(payload)
        return body if cap_output(body, self.max_output) else None

    def response_body(self, body: bytes) -> bytes:
        return body

    def error_body(self, status: int, body: bytes) -> bytes:
        return body

    def stream(self) -> StreamCodec:
        return CODECS[self.target.protocol].watch()


class Repaired(Passthrough):
    """The same protocol on both sides, with history the target would refuse taken out first:
    thinking Anthropic did not sign (Anthropic), reasoning items another protocol wrote
    (Responses)."""

    def __init__(
        self, request: InboundRequest, target: Target, max_output: int | None = None
    ) -> None:
        super().__init__(request, target, max_output)
        self.repair = _REPAIRS[target.protocol]

    def request_body(self) -> bytes:
        body = self.repair(self.request.payload)
        body = self._capped(body) or body
        body["model"] = self.target.model
        return orjson.dumps(body)


_REPAIRS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "anthropic": anthropic_history,
    "responses": without_foreign_reasoning,
}
# Whether a same-protocol request carries history its target would refuse.
_REPAIRS_NEEDED: dict[str, Callable[[dict[str, Any]], bool]] = {
    "anthropic": has_foreign_thinking,
    "responses": has_foreign_reasoning,
}


class Replaying:
    """An exchange whose Chat Completions target wants its reasoning back on tool-call turns.

    Wraps the exchange the pair would have (passthrough or translation). Before the body is
    sent, `wanted()` names the tool calls whose turn lacks reasoning and the caller hands back
    in `kept` what it holds for them; `request_body()` puts that back, or a short note as the
    last resort. The target's answer or stream is read on its way through (`log`): what it
    reasoned before its tool calls, for the caller to keep. The body goes unchanged (byte for
    byte, for a passthrough) when no turn lacks reasoning.
    """

    def __init__(self, inner: Exchange) -> None:
        self.inner = inner
        self.path, self.passthrough = inner.path, inner.passthrough
        self.extra_headers = inner.extra_headers
        self.kept: Mapping[str, str] = {}
        self.log = ReasoningLog()
        self._body = inner.request_body()
        self._parsed: dict[str, Any] | None = None

    def wanted(self) -> list[str]:
        if b'"tool_calls"' not in self._body:  # no tool-call turn: nothing to read
            return []
        if self._parsed is None:
            self._parsed = orjson.loads(self._body)
        return missing_reasoning(self._parsed)

    def forwards(self, header: bytes) -> bool:
        return self.inner.forwards(header)

    def request_body(self) -> bytes:
        if not self.wanted():
            return self._body
        assert self._parsed is not None
        restore_reasoning(self._parsed, self.kept)
        return orjson.dumps(self._parsed)

    def response_body(self, body: bytes) -> bytes:
        self.log.answer(body)
        return self.inner.response_body(body)

    def error_body(self, status: int, body: bytes) -> bytes:
        return self.inner.error_body(status, body)

    def stream(self) -> StreamCodec:
        return _Logged(self.inner.stream(), self.log)


class _Logged:
    """A target's stream codec, its events read into a `ReasoningLog` on the way."""

    def __init__(self, codec: StreamCodec, log: ReasoningLog) -> None:
        self.codec, self.log = codec, log

    @property
    def seen(self) -> bool:
        return self.codec.seen

    @seen.setter
    def seen(self, value: bool) -> None:
        self.codec.seen = value

    def kind(self, event: Event) -> EventKind:
        self.log.event(event)
        return self.codec.kind(event)

    def translate(self, event: Event) -> bytes:
        return self.codec.translate(event)

    def finish(self) -> bytes:
        return self.codec.finish()

    def error_event(self, message: str) -> bytes:
        return self.codec.error_event(message)


def replays_reasoning(target: Target, caps: ModelCaps | None) -> bool:
    """Whether the target wants its reasoning back on tool-call turns: as configured
    (`reasoning_replay`), else guessed from a DeepSeek name; Chat Completions targets only."""
    if target.protocol != "openai":
        return False
    if caps is not None and caps.reasoning_replay is not None:
        return caps.reasoning_replay
    return dialect_of(target.model, target.base_url) == "deepseek"


def answers(request: InboundRequest, target: Target) -> bool:
    """Whether the target's protocol can answer the request's endpoint: every endpoint of its
    own protocol, and any but count_tokens (Anthropic's alone) through a translation."""
    if target.protocol == request.protocol:
        return (target.protocol, request.endpoint) in _PATHS
    return request.endpoint != "count_tokens"


def exchange_for(
    request: InboundRequest,
    target: Target,
    *,
    now: float = 0.0,
) -> Exchange:
    """The exchange for this request on this target, which must answer it (`answers`; else
    `UnanswerableEndpoint`).

    `now` stamps translated OpenAI answers. The target's model capabilities (`target.caps`)
    may turn a translated request's reasoning off, and cap the output limit of any request,
    passthrough included, to the model's `max_output`; its cache settings say how a
    translation keeps its prompt cache warm.
    """
    if not answers(request, target):
        raise UnanswerableEndpoint(
            f"{target.name} speaks {target.protocol}: it cannot answer "
            f"{request.protocol} {request.endpoint}"
        )
    exchange: Exchange
    if target.protocol == request.protocol:
        caps = target.caps
        limit = caps.max_output if caps is not None else None
        repair = _REPAIRS_NEEDED.get(target.protocol)
        if repair is not None and repair(request.payload):
            exchange = Repaired(request, target, limit)
        else:
            exchange = Passthrough(request, target, limit)
    else:
        exchange = Translation(request, target, now=now)
    return Replaying(exchange) if replays_reasoning(target, target.caps) else exchange
