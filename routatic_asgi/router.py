"""`FallbackRouter`: try a request's targets in order until one commits.

It reads and checks the request body (intake.py), resolves the targets, and runs the inner
chain once per attempt with `scope["routatic.attempt"]` set, replaying the body each time
(flight.py). Nothing reaches the client before an attempt commits: until then its messages
are held, and a failed attempt's are dropped or kept as the answer (commit_point.py). It
owns the deadline, the client's disconnect and the answer when every target fails. It never
speaks to an upstream itself.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from routatic_asgi.answer import proxy_error, send_answer
from routatic_asgi.attempt import (
    PROXY_KEY_HEADER,
    REQUEST,
    InboundRequest,
    Target,
    endpoint_of,
)
from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.commit_point import header_value
from routatic_asgi.config import ResilienceConfig
from routatic_asgi.exchange import answers
from routatic_asgi.flight import Flight
from routatic_asgi.intake import ClientGone, Rejected, read_request, token_estimate
from routatic_asgi.memory_budget import BODY_MEMORY, MemoryBudget
from routatic_asgi.payload import request_traits
from routatic_asgi.retry import blip_pause
from routatic_asgi.routing import Routing
from routatic_asgi.telemetry import RECORD, Telemetry, route_label

__all__ = ["FallbackRouter", "header_value"]

Pause = Callable[[], float]


class FallbackRouter:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routing: Routing,
        resilience: ResilienceConfig | None = None,
        max_body: int = 32 * 1024**2,
        body_memory: MemoryBudget | None = None,
        clock: Clock = SYSTEM_CLOCK,
        telemetry: Telemetry | None = None,
        pause: Pause = blip_pause,
    ) -> None:
        self.app = app
        self.routing = routing
        self.resilience = resilience or ResilienceConfig()
        self.max_body = max_body
        # Shared by every request of the process (build_app hands one to each generation).
        self.body_memory = body_memory or MemoryBudget(BODY_MEMORY, clock=clock)
        self.clock = clock
        self.telemetry = telemetry or Telemetry()
        # The jitter of a retry's pause; the pause itself is the clock's (`clock.sleep`).
        self.pause = pause

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.telemetry.recorded(
                scope, send, lambda send: self._serve(scope, receive, send)
            )
        finally:
            _unlink(scope)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        protocol, endpoint = endpoint_of(scope)
        hold = self.body_memory.hold()  # a large body's share, held until the request ends
        try:
            try:
                request = await read_request(
                    scope, receive, protocol, endpoint, self.max_body, hold
                )
                scope[REQUEST] = request
                targets = self._targets(scope, request)
            except Rejected as rejected:
                await send_answer(send, rejected.answer)
                return
            except ClientGone:
                return
            await Flight(self, scope, receive, send, request, targets).run()
        finally:
            hold.release()

    def _targets(self, scope: Scope, request: InboundRequest) -> list[Target]:
        traits = request_traits(request.payload) if self.routing.uses_traits else {}
        route = self.routing.route_for(request.model, traits)
        if route is None:
            raise Rejected(
                proxy_error(
                    request.protocol,
                    404,
                    f"no route matches model {request.model!r}; add a route with match: '*'",
                    "not_found_error",
                )
            )
        request.route = route_label(route)
        targets = self.routing.targets(route, request.model, request.session)
        if request.endpoint == "count_tokens":
            targets = [target for target in targets if answers(request, target)]
            if not targets:  # no Anthropic target to count: answered here, by a local estimate
                raise Rejected(token_estimate(request))
        header = scope.get(PROXY_KEY_HEADER)
        if header in _CLIENT_CREDENTIALS and targets and targets[0].passthrough:
            # That header is the client's own credential for a passthrough provider.
            raise Rejected(
                proxy_error(
                    request.protocol,
                    401,
                    f"this route forwards your {_CLIENT_CREDENTIALS[header]} header to "
                    f"'{targets[0].provider}'; send the proxy key as x-routatic-key instead",
                    "authentication_error",
                )
            )
        return targets


_CLIENT_CREDENTIALS = {b"authorization": "Authorization", b"x-api-key": "x-api-key"}


def _unlink(scope: Scope) -> None:
    """Break the request's reference cycles (scope and record, attempts and listeners).

    Without this a finished request, its body included, lives until the next full garbage
    collection, and those collections were a tenth of the server's CPU and its worst pauses.
    """
    scope.pop(RECORD, None)
    request: InboundRequest | None = scope.get(REQUEST)
    if request is not None:
        for attempt in request.attempts:
            attempt.listeners.clear()
