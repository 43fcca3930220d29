"""`FallbackRouter`: try a request's targets in order until one commits.

It buffers and validates the request body, resolves the targets, and runs the inner chain
once per attempt with `scope["routatic.attempt"]` set, replaying the body each time. Nothing
reaches the client before an attempt commits: until then its messages are held, and a failed
attempt's are dropped (or kept as the answer). It owns the deadline, the client's disconnect
and the answer when every target fails. It never speaks to an upstream itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import nullcontext

import anyio
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from routatic_asgi.answer import Answer, final_answer, proxy_error, send_answer
from routatic_asgi.attempt import (
    ATTEMPT,
    HANG_UP,
    PROXY_KEY_HEADER,
    REQUEST,
    Attempt,
    Endpoint,
    InboundRequest,
    Protocol,
    Target,
    endpoint_for,
)
from routatic_asgi.classify import Kind, Outcome, Reason
from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.config import ResilienceConfig
from routatic_asgi.hedge import Hedge
from routatic_asgi.rescue import KEPT_LIMIT, PROTOCOLS, Splicer, continuation, transcript
from routatic_asgi.retry import blip_pause, retry_pause
from routatic_asgi.routing import Routing, request_traits
from routatic_asgi.session import session_of
from routatic_asgi.shapes import check_request
from routatic_asgi.telemetry import RECORD, Telemetry, route_label
from routatic_asgi.translate.codec import stream_error_event
from routatic_asgi.translate.tokens import estimate_tokens

__all__ = ["FallbackRouter", "header_value"]

Sleep = Callable[[float], Awaitable[None]]
Pause = Callable[[], float]
logger = logging.getLogger("routatic_asgi")


def header_value(text: str) -> bytes:
    """Text for a response header: a model name comes from the client, so every byte outside
    printable ASCII (and `%` itself) is percent-escaped; nothing can end the header line."""
    raw = text.encode()
    if raw.isascii() and text.isprintable() and "%" not in text:
        return raw
    return "".join(
        chr(byte) if 0x20 <= byte < 0x7F and byte != 0x25 else f"%{byte:02X}" for byte in raw
    ).encode()


# What parsing one body may build. A body's parsed size is not its length: dense JSON
# ([{},{},...]) makes a Python object of some 64 bytes for every 3 bytes of input, so
# 32 MiB of it would take over a gigabyte. Counting separators first (a C scan) bounds it.
PARSE_BUDGET = 256 * 1024 * 1024
_VALUE_COST = 64  # bytes a parsed value costs, about: an object, its slot in its container


def parse_cost(body: bytes) -> int:
    """About how much memory parsing `body` takes: its text plus a cost per value."""
    values = body.count(b",") + body.count(b"{") + body.count(b"[")
    return len(body) + values * _VALUE_COST


def _exceeds(digits: bytes, limit: int) -> bool:
    """A declared length above `limit`; one of thousands of digits is, without reading it."""
    return len(digits) > 20 or int(digits) > limit


def _token_estimate(request: InboundRequest) -> Answer:
    body = orjson.dumps({"input_tokens": estimate_tokens(request.payload)})
    headers = [(b"content-type", b"application/json"), (b"x-routatic-target", b"estimate")]
    return Answer(200, headers, body)


class _Rejected(Exception):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer


class _ClientGone(Exception):
    pass


class FallbackRouter:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routing: Routing,
        resilience: ResilienceConfig | None = None,
        max_body: int = 32 * 1024**2,
        clock: Clock = SYSTEM_CLOCK,
        telemetry: Telemetry | None = None,
        sleep: Sleep = anyio.sleep,
        pause: Pause = blip_pause,
    ) -> None:
        self.app = app
        self.routing = routing
        self.resilience = resilience or ResilienceConfig()
        self.max_body = max_body
        self.clock = clock
        self.telemetry = telemetry or Telemetry()
        # Injected so tests see the pauses before a retry without waiting them out.
        self.sleep = sleep
        self.pause = pause

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        protocol, endpoint = endpoint_for(scope["path"])
        record = self.telemetry.request(scope, protocol, endpoint)
        try:
            await self._serve(scope, receive, record.watch(send), protocol, endpoint)
        finally:
            record.finish()
            _unlink(scope)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, protocol: Protocol, endpoint: Endpoint
    ) -> None:
        try:
            request = await self._read_request(scope, receive, protocol, endpoint)
            scope[REQUEST] = request
            targets = self._targets(scope, request)
        except _Rejected as rejected:
            await send_answer(send, rejected.answer)
            return
        except _ClientGone:
            return
        await _Flight(self, scope, receive, send, request, targets).run()

    async def _read_request(
        self, scope: Scope, receive: Receive, protocol: Protocol, endpoint: Endpoint
    ) -> InboundRequest:
        if scope["method"] != "POST":
            raise _Rejected(proxy_error(protocol, 405, f"{scope['method']} is not allowed here"))
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if not (content_type == b"application/json" or content_type.endswith(b"+json")):
            raise _Rejected(
                proxy_error(
                    protocol, 415, "send the body as JSON with content-type: application/json"
                )
            )
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and _exceeds(declared, self.max_body):
            raise _Rejected(self._too_large(protocol))
        body = await self._read_body(receive, protocol)
        cost = parse_cost(body)
        if cost > PARSE_BUDGET:
            raise _Rejected(
                proxy_error(
                    protocol,
                    413,
                    f"the body holds too many JSON values: parsed, it would take about "
                    f"{cost >> 20} MiB (at most {PARSE_BUDGET >> 20} MiB)",
                    "request_too_large",
                )
            )
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _Rejected(
                proxy_error(protocol, 400, f"the body is not valid JSON: {exc.msg}")
            ) from None
        if not isinstance(payload, dict):
            raise _Rejected(proxy_error(protocol, 400, "the body must be a JSON object"))
        problem = check_request(endpoint, payload)
        if problem is not None:
            raise _Rejected(proxy_error(protocol, 400, problem.message, param=problem.field))
        model: str = payload["model"]
        if endpoint == "responses" and payload.get("previous_response_id"):
            # Stateless by design: any target may serve the next turn, so none holds the last.
            raise _Rejected(
                proxy_error(
                    protocol,
                    400,
                    "previous_response_id is not supported by this gateway: send the whole "
                    "conversation in input (with store: false), as Codex does",
                )
            )
        stream = payload.get("stream") is True and endpoint != "count_tokens"
        request = InboundRequest(
            protocol, endpoint, body, payload, model, stream, scope["query_string"]
        )
        request.session = session_of(scope["headers"], payload)
        return request

    async def _read_body(self, receive: Receive, protocol: Protocol) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _Rejected(self._too_large(protocol))
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, protocol: Protocol) -> Answer:
        return proxy_error(
            protocol, 413, f"the body is larger than {self.max_body} bytes", "request_too_large"
        )

    def _targets(self, scope: Scope, request: InboundRequest) -> list[Target]:
        traits = request_traits(request.payload) if self.routing.uses_traits else {}
        route = self.routing.route_for(request.model, traits)
        if route is None:
            raise _Rejected(
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
            targets = [target for target in targets if target.protocol == "anthropic"]
            if not targets:  # no Anthropic target to count: answered here, by a local estimate
                raise _Rejected(_token_estimate(request))
        header = scope.get(PROXY_KEY_HEADER)
        if header in _CLIENT_CREDENTIALS and targets and targets[0].passthrough:
            # That header is the client's own credential for a passthrough provider.
            raise _Rejected(
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


class _Flight:
    """One request's journey over its targets. Lives for one request only."""

    def __init__(
        self,
        router: FallbackRouter,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: InboundRequest,
        targets: list[Target],
    ) -> None:
        self.router, self.scope, self.receive, self.send = router, scope, receive, send
        self.request, self.targets = request, targets
        self.committed = False
        self.tried = 0  # upstream calls made, retries included
        # What the client got of a committed stream, kept (bounded) to rescue it if it breaks.
        rescue = router.resilience.rescue and request.stream and request.protocol in PROTOCOLS
        self.sent: list[bytes] | None = [] if rescue else None
        self.sent_size = 0
        self.finished = False  # the client's answer has ended
        self.splicer: Splicer | None = None  # set while a rescue's continuation is relayed
        self.hedge: Hedge | None = None  # set while a slow stream races its hedge
        self.gone = asyncio.Event()
        self.body_message: Message = {"type": "http.request", "body": request.body}
        # One scope for both: the deadline ends it, and so does the client leaving.
        self.deadline = router.clock.deadline(router.resilience.deadline)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # A bare asyncio task, not an anyio task group: that cost a tenth of a short request.
        watcher = loop.create_task(self._watch_disconnect())
        try:
            with self.deadline:
                await self._attempts()
            self.router.routing.settled(self.request.session, self.request.attempts)
            if self.committed or self.gone.is_set():
                return
            answer = final_answer(
                self.request.protocol,
                self.request.attempts,
                self.router.clock(),
                deadline_passed=self.deadline.expired,
            )
            answer.headers.append(self._attempts_header())
            await send_answer(self.send, answer)
        finally:
            watcher.cancel()

    async def _watch_disconnect(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                # Upstream connections close now, not once cancellation has unwound every
                # layer: with hundreds of clients gone at once that took a third of a second.
                for hang_up in list(self.scope.get(HANG_UP, ())):
                    hang_up()
                self.deadline.cancel()
                return

    async def _attempts(self) -> None:
        # Provider/models that failed in a way another key of the pool cannot mend (down,
        # overloaded, unfit): their other keys are not tried in this request. A rate limit is
        # per key, so there the next key is tried.
        spent: set[str] = set()
        for index, target in enumerate(self.targets):
            if self.tried >= self.router.resilience.max_attempts:
                return
            if target.name in spent:
                continue
            backup = self._hedge_target(index, spent)
            if backup is not None:
                attempt, hedged = await self._race(target, backup)
                if hedged is not None:
                    spent.add(backup.name)
                    if self.committed and hedged.succeeded:
                        attempt, index = hedged, self.targets.index(backup)
            else:
                attempt, hedged = await self._try(target), None
            # A retry never takes the place of a target still to try within max_attempts.
            ahead = {t.name for t in self.targets[index + 1 :]} - spent - {target.name}
            retried = 0
            while (
                hedged is None
                and (pause := self._retry_pause(attempt, retried, len(ahead))) is not None
            ):
                await self.router.sleep(pause)
                retried += 1
                attempt = await self._try(target, via=Reason.RETRIED)
            outcome = attempt.outcome
            assert outcome is not None
            if self.committed:
                await self._rescue(index, attempt)  # nothing to do when the answer ended well
                return
            if outcome.kind is Kind.CANCELLED:
                return
            if outcome.kind in _SPENT and outcome.reason != Reason.RATE_LIMITED:
                spent.add(target.name)
            if outcome.reason == Reason.CONTEXT_TOO_LONG and self._longer_ahead(index):
                continue
            if outcome.kind is Kind.CLIENT or (outcome.kind is Kind.AUTH and target.passthrough):
                return
        await self._panic()

    def _hedge_target(self, index: int, spent: set[str]) -> Target | None:
        """The target a slow stream's hedge would go to: the next one not yet spent."""
        resilience = self.router.resilience
        if resilience.hedge_after is None or not self.request.stream:
            return None
        if self.tried + 2 > resilience.max_attempts:
            return None
        name = self.targets[index].name
        for target in self.targets[index + 1 :]:
            if target.name not in spent and target.name != name:
                return target
        return None

    async def _race(self, target: Target, backup: Target) -> tuple[Attempt, Attempt | None]:
        """`target`, with `backup` started beside it if its first content is slow (hedge.py)."""
        hedge = self.hedge = Hedge()
        found: dict[str, Attempt] = {}

        async def first() -> None:
            found["first"] = await self._try(target)

        async def second() -> None:
            # Its own copy of the scope: the first attempt's layers still read theirs.
            found["second"] = await self._try(backup, via=Reason.HEDGED, scope=dict(self.scope))

        after = self.router.resilience.hedge_after
        assert after is not None
        try:
            await hedge.race(first, second, after=after, clock=self.router.clock)
        finally:
            self.hedge = None
        return found["first"], found.get("second")

    def _longer_ahead(self, index: int) -> bool:
        """A later target is known (`models:` capabilities) to hold a longer context than the
        one that found the prompt too long (than the prompt's estimate, if its own is unknown).
        Otherwise the error goes back as it came, so the client compacts."""
        config = self.router.routing.config

        def context(target: Target) -> int | None:
            caps = config.providers[target.provider].models.get(target.model)
            return caps.context if caps is not None else None

        own = context(self.targets[index]) or estimate_tokens(self.request.payload)
        return any((context(t) or 0) > own for t in self.targets[index + 1 :])

    async def _try(
        self,
        target: Target,
        *,
        via: Reason | None = None,
        panic: bool = False,
        scope: Scope | None = None,
    ) -> Attempt:
        first = bool(self.targets) and target.name == self.targets[0].name
        attempt = Attempt(target, len(self.request.attempts) + 1, first)
        attempt.via, attempt.panic = via, panic
        attempt.rescue = self.sent is not None and self.splicer is None
        self.request.attempts.append(attempt)
        self.scope[RECORD].attempt_started(attempt)
        await self._attempt(attempt, self.scope if scope is None else scope)
        assert attempt.outcome is not None
        if attempt.outcome.kind is not Kind.SKIPPED:
            self.tried += 1
        return attempt

    def _retry_pause(self, attempt: Attempt, retried: int, ahead: int) -> float | None:
        if self.committed or self.tried + ahead >= self.router.resilience.max_attempts:
            return None
        remaining = self.deadline.remaining()
        return retry_pause(
            attempt,
            retried=retried,
            policy=self.router.resilience.retry,
            remaining=remaining,
            jitter=self.router.pause(),
        )

    async def _panic(self) -> None:
        """Every target is open on failures alone: call the one that recovers soonest.

        As Envoy's panic threshold: refusing every request would lock a lone target out for
        its whole cooldown, while it may well be able to serve. A target the upstream told to
        wait, a cooling credential or a probe in flight is no case for panic.
        """
        if self.committed or self.tried or not self.request.attempts:
            return
        candidates = []
        for attempt in self.request.attempts:
            outcome = attempt.outcome
            assert outcome is not None
            if attempt.may_panic:
                candidates.append(attempt)
            elif not (outcome.kind is Kind.SKIPPED and outcome.reason in _UNFIT):
                return
        if candidates:
            soonest = min(candidates, key=lambda a: (a.outcome and a.outcome.retry_after) or 0.0)
            await self._try(soonest.target, panic=True)

    async def _attempt(self, attempt: Attempt, scope: Scope) -> None:
        held: list[Message] = []
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return self.body_message
            await self.gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if self.splicer is not None:  # a rescue's continuation: spliced once it commits
                held.append(message)
                if attempt.succeeded:
                    await self._splice(held)
            elif self.committed:
                if self.hedge is None or self.hedge.may_send(attempt):
                    await self._deliver(message)
            elif attempt.succeeded:
                await self._commit(attempt, [*held, message])
            else:
                held.append(message)

        scope[ATTEMPT] = attempt
        hedge = self.hedge
        with hedge.running(attempt) if hedge is not None else nullcontext():
            await self._call(attempt, scope, receive, send)
        if hedge is not None and attempt in hedge.outraced:
            return
        if attempt.outcome is None:
            attempt.settle(Outcome(Kind.TRANSIENT, Reason.NO_ANSWER))
        elif self.splicer is not None:
            if attempt.succeeded:
                await self._splice(held)
        elif attempt.succeeded and not self.committed and held:
            await self._commit(attempt, held)
        elif not self.committed:
            _keep_answer(attempt, held)

    async def _call(self, attempt: Attempt, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the inner chain for one attempt, settling what it ended by, if it did not."""
        try:
            await self.router.app(scope, receive, send)
        except anyio.get_cancelled_exc_class():
            if self.hedge is not None and attempt in self.hedge.outraced:
                # The other attempt committed first: this one is dropped, not failed.
                attempt.settle(Outcome(Kind.CANCELLED, Reason.HEDGED))
            elif self.gone.is_set():
                if attempt.succeeded:  # gone mid-answer: the answer, not the attempt, was cut
                    attempt.broken = Reason.CLIENT_DISCONNECTED
                attempt.settle(Outcome(Kind.CANCELLED, Reason.CLIENT_DISCONNECTED))
            else:
                attempt.settle(Outcome(Kind.TRANSIENT, Reason.DEADLINE))
            raise
        except Exception:
            logger.exception("attempt on %s failed inside the proxy", attempt.target.name)
            attempt.settle(Outcome(Kind.TRANSIENT, Reason.INTERNAL_ERROR))
            if self.committed:
                raise

    async def _commit(self, attempt: Attempt, messages: list[Message]) -> None:
        self.committed = True
        self.deadline.stop()
        if self.hedge is not None:
            self.hedge.committed(attempt)
        start, *rest = messages
        start = {**start, "headers": [*start.get("headers", ()), *self._routing_headers(attempt)]}
        await self.send(start)
        for message in rest:
            await self._deliver(message)

    async def _deliver(self, message: Message) -> None:
        """Send a committed answer's message, keeping what a rescue would need to read back."""
        if message["type"] == "http.response.body":
            self.finished = not message.get("more_body", False)
            if self.sent is not None:
                body = message.get("body", b"")
                self.sent_size += len(body)
                if self.sent_size > KEPT_LIMIT:
                    self.sent = None  # too much to read back: this stream cannot be rescued
                else:
                    self.sent.append(body)
        await self.send(message)

    async def _splice(self, held: list[Message]) -> None:
        assert self.splicer is not None
        for message in held:
            if message["type"] != "http.response.body":
                continue  # the continuation's own response start: the client has one
            more = message.get("more_body", False)
            body = self.splicer.feed(message.get("body", b""))
            if body or not more:
                await self._deliver({"type": "http.response.body", "body": body, "more_body": more})
        held.clear()

    async def _rescue(self, index: int, broken: Attempt) -> None:
        """A committed stream broke: ask the next targets for the rest and splice it in (see
        rescue.py); when none can give it, the client gets the error event, never a quiet end."""
        if self.finished or self.gone.is_set() or not broken.rescue:
            return
        request = self.request
        used = broken.usage.output if broken.usage is not None else 0
        found = transcript(request.protocol, b"".join(self.sent), used) if self.sent else None
        if found is not None:
            payload = continuation(request.payload, found.text)
            body = orjson.dumps(payload)
            self.scope[REQUEST] = InboundRequest(
                request.protocol, request.endpoint, body, payload, request.model, True,
                request.query, request.attempts, request.route,
            )  # fmt: skip
            self.body_message = {"type": "http.request", "body": body}
            self.splicer = Splicer(found)
            try:
                for target in self.targets[index + 1 :]:
                    if self.tried >= self.router.resilience.max_attempts:
                        break
                    attempt = await self._try(target, via=Reason.RESCUED)
                    if attempt.succeeded or self.gone.is_set():
                        break
            finally:
                self.scope[REQUEST] = request
        if not self.finished and not self.gone.is_set():
            message = f"the upstream stream broke: {broken.broken or 'unknown'}"
            error = stream_error_event(request.protocol, message)
            await self._deliver({"type": "http.response.body", "body": error, "more_body": False})

    def _routing_headers(self, attempt: Attempt) -> list[tuple[bytes, bytes]]:
        target = header_value(attempt.target.name)
        headers = [(b"x-routatic-target", target), self._attempts_header()]
        outraced = self.hedge.outraced if self.hedge is not None else set()
        earlier = [
            f"{a.target.name}={a.outcome.reason if a.outcome else Reason.HEDGED}"
            for a in self.request.attempts
            if a is not attempt and (a.outcome is not None or a in outraced)
        ]
        if earlier:
            fallback = ", ".join(earlier)
            headers.append((b"x-routatic-fallback", header_value(fallback)))
        return headers

    def _attempts_header(self) -> tuple[bytes, bytes]:
        count = sum(
            1
            for a in self.request.attempts
            if a.outcome is None or a.outcome.kind is not Kind.SKIPPED
        )
        return (b"x-routatic-attempts", str(count).encode())


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


_ANSWER_LIMIT = 1024 * 1024
_SPENT = frozenset({Kind.TRANSIENT, Kind.UNFIT})
_UNFIT = frozenset({Reason.UNFIT_VISION, Reason.UNFIT_TOOLS, Reason.UNFIT_CONTEXT})


def _keep_answer(attempt: Attempt, held: list[Message]) -> None:
    """Keep a failed attempt's error response (status, headers, body) to return it as is.

    A 2xx that failed (a stream that broke before its content) is no answer to give: the
    client must never get a 200 for a request no target served."""
    if not held or held[0]["type"] != "http.response.start" or held[0]["status"] < 300:
        return
    start = held[0]
    attempt.status = start["status"]
    attempt.headers = [
        (name, value) for name, value in start.get("headers", ()) if name != b"content-length"
    ]
    attempt.body = b"".join(m.get("body", b"") for m in held[1:])[:_ANSWER_LIMIT]
