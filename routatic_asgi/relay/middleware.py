"""`UpstreamRelay`: the innermost app. One attempt, one upstream call, relayed.

It serves the attempt the scope describes (`routatic.request`, `routatic.attempt`): it speaks
the target's protocol through an `Exchange` (passthrough or a translation), makes the one
call, and hands the answer to the part that relays it (answer.py, stream.py), which
classifies it and settles the attempt; a stream settles success at its first content event,
the commit point the router waits for. I/O only: it never retries, never picks a target,
never decides whether a target fits (the router does, before the attempt), and never reads
the configuration (the target carries what its provider adds). Mounted alone with a target
that cannot answer the request's endpoint, it raises `UnanswerableEndpoint` before any call.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from starlette.types import Receive, Scope, Send

from routatic_asgi.attempt import (
    ATTEMPT,
    DEADLINE,
    HANG_UP,
    REQUEST,
    Attempt,
    InboundRequest,
    Target,
    proxy_key_in_authorization,
)
from routatic_asgi.classify import Kind, Outcome, Reason, classify_exception
from routatic_asgi.clock import SYSTEM_CLOCK, Clock, Deadline
from routatic_asgi.config import ResilienceConfig
from routatic_asgi.exchange import exchange_for
from routatic_asgi.redaction import Redactor
from routatic_asgi.relay.answer import relay_error, relay_passthrough, relay_translated
from routatic_asgi.relay.call import UNARMED, RelayCall, RelaySettings, Unarmed
from routatic_asgi.relay.headers import request_headers
from routatic_asgi.relay.stream import relay_stream
from routatic_asgi.replay import ReasoningMemory
from routatic_asgi.state import MemoryStore
from routatic_asgi.telemetry import Telemetry
from routatic_asgi.upstream import Upstreams

__all__ = ["UpstreamRelay"]


class UpstreamRelay:
    def __init__(
        self,
        *,
        upstreams: Upstreams,
        resilience: ResilienceConfig | None = None,
        clock: Clock = SYSTEM_CLOCK,
        telemetry: Telemetry | None = None,
        redactor: Redactor | None = None,
        memory: ReasoningMemory | None = None,
    ) -> None:
        self.upstreams = upstreams
        self.memory = memory or ReasoningMemory(MemoryStore(clock=clock))
        self.telemetry = telemetry or Telemetry()
        self.resilience = resilience or ResilienceConfig()
        self.clock = clock
        self.settings = RelaySettings(
            frozenset(self.resilience.fallback_on),
            self.resilience.max_wait,
            clock,
            redactor or Redactor(),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # nothing to serve: no lifespan or websocket of its own
        request: InboundRequest = scope[REQUEST]
        attempt: Attempt = scope[ATTEMPT]
        target = attempt.target
        exchange = exchange_for(request, target, now=self.clock())
        url = target.base_url + exchange.path + _query(request, target)
        headers = request_headers(
            scope["headers"],
            target,
            exchange,
            proxy_key_in_authorization=proxy_key_in_authorization(scope),
        )
        await self.memory.recall(exchange, scope)
        send = self.memory.sending(exchange, scope, send)
        body = exchange.request_body()
        watch = self.telemetry.upstream(scope, attempt)
        with watch, self._timer(scope, request) as first_byte:
            try:
                response = await self.upstreams.post(target.provider, url, headers, body)
            except httpx.HTTPError as exc:
                attempt.settle(classify_exception(exc))
                return
            hang_up = _hang_up(response, attempt)
            if hang_up is not None:
                scope.setdefault(HANG_UP, []).append(hang_up)
            try:
                await _relay(
                    RelayCall(attempt, exchange, send, first_byte, self.settings), response
                )
            finally:
                if hang_up is not None:
                    scope[HANG_UP].remove(hang_up)
                await response.aclose()
        if first_byte.expired:
            attempt.settle(Outcome(Kind.TRANSIENT, Reason.FIRST_BYTE_TIMEOUT))

    def _timer(self, scope: Scope, request: InboundRequest) -> Deadline | Unarmed:
        """The call's own limit: a stream's first content within `first_byte_timeout`; an
        answer's head (or an error's whole body) within the deadline's length. Under an
        enclosing deadline (the router's, armed first) that comes no later, the latter could
        never fire first, and is left unarmed."""
        if request.stream:
            return self.clock.deadline(self.resilience.first_byte_timeout)
        enclosing: Deadline | None = scope.get(DEADLINE)
        if enclosing is not None and enclosing.remaining() <= self.resilience.deadline:
            return UNARMED
        return self.clock.deadline(self.resilience.deadline)


async def _relay(call: RelayCall, response: httpx.Response) -> None:
    """Hand the answer to the part that relays its kind: an error, a stream or a body."""
    call.attempt.upstream_headers = upstream = _header_map(response)
    if not 200 <= response.status_code < 300:
        await relay_error(call, response)
    elif upstream.get("content-type", "").startswith("text/event-stream"):
        await relay_stream(call, response)
    else:
        call.first_byte.stop()
        if call.exchange.passthrough:
            await relay_passthrough(call, response)
        else:
            await relay_translated(call, response)


def _hang_up(response: httpx.Response, attempt: Attempt) -> Callable[[], None] | None:
    """What closes `response`'s connection the moment the client goes away, marking the
    attempt so the read that fails next is not taken for the upstream's failure."""
    abort = getattr(response.stream, "abort", None)
    if abort is None:  # another transport: cancellation closes it
        return None

    def hang_up() -> None:
        attempt.broken = Reason.CLIENT_DISCONNECTED
        abort()

    return hang_up


def _header_map(response: httpx.Response) -> dict[str, str]:
    """The upstream's headers as a dict of lower-case names, a repeated one's values joined
    as httpx joins them: the layers look a dozen names up in every answer (rate limits,
    waits), and an `httpx.Headers` lookup scans every header each time."""
    found: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        found[name] = f"{found[name]}, {value}" if name in found else value
    return found


def _query(request: InboundRequest, target: Target) -> str:
    if request.query and target.protocol == request.protocol:
        return "?" + request.query.decode("latin-1")
    return ""
