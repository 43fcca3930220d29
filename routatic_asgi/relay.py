"""`UpstreamRelay`: the innermost app. One attempt, one upstream call, relayed.

It speaks the target's protocol (through an `Exchange`: passthrough or a translation),
calls the upstream, classifies the answer and settles the attempt, then relays the response,
streaming SSE event by event. For a stream it settles success at the first content event,
which is the commit point the router waits for. It never retries and never picks a target.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import httpx
from starlette.types import Receive, Scope, Send

from routatic_asgi.attempt import (
    ATTEMPT,
    HANG_UP,
    REQUEST,
    Attempt,
    InboundRequest,
    Target,
    proxy_key_in_authorization,
)
from routatic_asgi.classify import (
    SUCCESS,
    Kind,
    Outcome,
    Reason,
    bounded_wait,
    classify_exception,
    classify_response,
    classify_stream_error,
)
from routatic_asgi.clock import SYSTEM_CLOCK, Clock, Deadline
from routatic_asgi.config import ResilienceConfig
from routatic_asgi.exchange import EventKind, Exchange, StreamCodec, exchange_for
from routatic_asgi.payload import unfit_reason
from routatic_asgi.redaction import Redactor
from routatic_asgi.replay import ReasoningMemory
from routatic_asgi.sse import EVENT_LIMIT, EventTooLarge, SSEFramer, parse_event
from routatic_asgi.state import MemoryStore
from routatic_asgi.telemetry import Telemetry, UsageReader, usage_from_body
from routatic_asgi.translate.pivot import TranslationError
from routatic_asgi.upstream import Upstreams

__all__ = ["UpstreamRelay"]

Headers = list[tuple[bytes, bytes]]

# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection and are never forwarded.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Beside those, what the relay or the server sets itself.
_REQUEST_DROP = _HOP_BY_HOP | {b"host", b"content-length", b"accept-encoding", b"x-routatic-key"}
_CREDENTIALS = frozenset({b"authorization", b"x-api-key"})
_RESPONSE_DROP = _HOP_BY_HOP | {b"content-length", b"date", b"server"}
# A translated body is ours: its encoding, type and length too.
_WAITS = frozenset({b"retry-after", b"retry-after-ms"})
_TRANSLATED_DROP = frozenset({b"content-encoding", b"content-type"})
_ERROR_BODY_LIMIT = 1024 * 1024
# Events that may carry an upstream's error text, which may quote its key: an error, and an
# end (a translated stream's error after its commit is its end).
_MAY_QUOTE = frozenset({EventKind.ERROR, EventKind.END})
# A non-streamed answer up to this size is read whole before it commits, so one cut short
# falls back like any failure; a larger one is relayed as it comes, without reading its usage.
_READ_AHEAD = 4 * 1024 * 1024
# A translated answer is read whole to translate it: one larger than this is a failure.
_TRANSLATED_LIMIT = 32 * 1024 * 1024
# What a translation raises on an event or body of a shape it cannot read: the upstream's
# fault, handled like a broken stream, never a traceback.
_MALFORMED = (TranslationError, TypeError, ValueError, KeyError, AttributeError, IndexError)

logger = logging.getLogger("routatic_asgi")

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
        self.fallback_on = frozenset(self.resilience.fallback_on)
        self.clock = clock
        self.redactor = redactor or Redactor()
        self.extra_headers = {
            name: [(k.lower().encode(), v.encode()) for k, v in provider.headers.items()]
            for name, provider in upstreams.config.providers.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request: InboundRequest = scope[REQUEST]
        attempt: Attempt = scope[ATTEMPT]
        target = attempt.target
        provider = self.upstreams.config.providers[target.provider]
        caps = provider.models.get(target.model)
        unfit = unfit_reason(request.payload, caps)
        if unfit is not None:
            attempt.settle(Outcome(Kind.SKIPPED, unfit))
            return
        exchange = exchange_for(request, target, now=self.clock(), caps=caps, provider=provider)
        if exchange is None:
            attempt.settle(Outcome(Kind.SKIPPED, Reason.NO_TRANSLATION))
            return
        url = target.base_url + exchange.path + _query(request, target)
        headers = self._headers(scope, target, exchange)
        await self.memory.recall(exchange, scope)
        send = self.memory.sending(exchange, scope, send)
        body = exchange.request_body()
        timeout = self.resilience.first_byte_timeout if request.stream else self.resilience.deadline
        watch = self.telemetry.upstream(scope, attempt)
        with watch, self.clock.deadline(timeout) as first_byte:
            try:
                response = await self.upstreams.post(target.provider, url, headers, body)
            except httpx.HTTPError as exc:
                attempt.settle(classify_exception(exc))
                return
            hang_up = _hang_up(response, attempt)
            if hang_up is not None:
                scope.setdefault(HANG_UP, []).append(hang_up)
            try:
                await self._relay(response, attempt, exchange, send, first_byte)
            finally:
                if hang_up is not None:
                    scope[HANG_UP].remove(hang_up)
                await response.aclose()
        if first_byte.expired:
            attempt.settle(Outcome(Kind.TRANSIENT, Reason.FIRST_BYTE_TIMEOUT))

    def _headers(self, scope: Scope, target: Target, exchange: Exchange) -> Headers:
        drop = _REQUEST_DROP if target.passthrough else _REQUEST_DROP | _CREDENTIALS
        if proxy_key_in_authorization(scope):
            drop = drop | {b"authorization"}
        drop = drop | _connection_named(scope["headers"])
        headers = [(k, v) for k, v in scope["headers"] if k not in drop and exchange.forwards(k)]
        if target.passthrough and not exchange.passthrough and target.protocol == "anthropic":
            headers = _bearer_as_api_key(headers)
        headers.append((b"accept-encoding", b"identity"))
        headers.extend(exchange.extra_headers)
        headers.extend(self.extra_headers[target.provider])
        credential = target.credential
        if credential is not None:
            if target.protocol == "anthropic":
                headers.append((b"x-api-key", credential.secret.encode()))
            else:
                headers.append((b"authorization", b"Bearer " + credential.secret.encode()))
        return headers

    async def _relay(
        self,
        response: httpx.Response,
        attempt: Attempt,
        exchange: Exchange,
        send: Send,
        first_byte: Deadline,
    ) -> None:
        status = response.status_code
        attempt.upstream_headers = upstream = _header_map(response)
        if not 200 <= status < 300:
            await self._relay_error(response, attempt, exchange, send)
            return
        content_type = upstream.get("content-type", "")
        if content_type.startswith("text/event-stream"):
            await self._relay_stream(response, attempt, exchange, send, first_byte)
            return
        first_byte.stop()
        if not exchange.passthrough:
            await self._relay_translated(response, attempt, exchange, send)
            return
        try:
            body = _raw(response)
            raw, whole = await _read_ahead(body, _READ_AHEAD)
        except httpx.HTTPError as exc:
            attempt.settle(_failure(attempt, exc))
            return
        attempt.settle(SUCCESS)
        headers = _response_headers(response, self.resilience.max_wait)
        if whole:
            raw = exchange.response_body(raw)  # a passthrough's is the body itself
            headers.append((b"content-length", str(len(raw)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": raw})
            attempt.usage = usage_from_body(attempt.target.protocol, raw)
            return
        length = response.headers.get("content-length", "").encode()
        headers.extend([(b"content-length", length)] if length else [])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": raw, "more_body": True})
        try:
            await _relay_raw(body, send)
        except httpx.HTTPError as exc:
            # Its length promised, the body cannot end well: returning without its end makes
            # the server drop the connection, which is how the client learns it was cut.
            if not _gone(attempt):
                _broke(attempt, classify_exception(exc).reason)

    async def _relay_translated(
        self, response: httpx.Response, attempt: Attempt, exchange: Exchange, send: Send
    ) -> None:
        """Read and translate the whole answer first: one the client cannot read is a failure."""
        try:
            raw, whole = await _read_ahead(response.aiter_bytes(), _TRANSLATED_LIMIT)
            if not whole:
                attempt.settle(
                    Outcome(Kind.TRANSIENT, Reason.ANSWER_TOO_LARGE, response.status_code)
                )
                return
            body = exchange.response_body(raw)
        except httpx.HTTPError as exc:
            attempt.settle(_failure(attempt, exc))
            return
        except _MALFORMED:
            attempt.settle(Outcome(Kind.TRANSIENT, Reason.UNREADABLE_ANSWER, response.status_code))
            return
        attempt.settle(SUCCESS)
        attempt.usage = usage_from_body(attempt.target.protocol, raw)
        headers = _translated_headers(response, body, self.resilience.max_wait)
        status = response.status_code
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _relay_error(
        self, response: httpx.Response, attempt: Attempt, exchange: Exchange, send: Send
    ) -> None:
        try:
            body = await _read_limited(response, _ERROR_BODY_LIMIT)
        except httpx.HTTPError as exc:
            attempt.settle(_failure(attempt, exc))
            return
        attempt.settle(
            classify_response(
                response.status_code,
                response.headers,
                body,
                fallback_on=self.fallback_on,
                first=attempt.first,
                now=self.clock(),
                max_wait=self.resilience.max_wait,
            )
        )
        # An upstream may quote the key it was sent: no error body or header shows a key we
        # hold. The body was read decoded (compressed or not), so it goes out unencoded.
        body = self.redactor.body(body)
        if exchange.passthrough:
            headers = _response_headers(response, self.resilience.max_wait)
            headers = [(k, v) for k, v in headers if k != b"content-encoding"]
            headers.append((b"content-length", str(len(body)).encode()))
        else:
            body = exchange.error_body(response.status_code, body)
            headers = _translated_headers(response, body, self.resilience.max_wait)
        headers = [(k, self.redactor.body(v)) for k, v in headers]
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        await send({"type": "http.response.body", "body": body})

    async def _relay_stream(
        self,
        response: httpx.Response,
        attempt: Attempt,
        exchange: Exchange,
        send: Send,
        first_byte: Deadline,
    ) -> None:
        headers = _response_headers(response, self.resilience.max_wait)
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        framer = SSEFramer()
        codec = exchange.stream()
        usage = UsageReader(attempt, attempt.target.protocol)
        ended = False
        held = 0  # bytes the router holds back until the commit
        failure: Outcome | None = None
        last = b""  # the body of the last chunk: it goes out with the stream's end
        try:
            async for chunk in _raw(response):
                out: list[bytes] = []
                try:
                    for event in framer.feed(chunk):
                        usage.observe(event)
                        kind = codec.kind(event)
                        if kind is EventKind.ERROR and not attempt.succeeded:
                            attempt.settle(self._stream_error(event.data, attempt))
                            return
                        translated = codec.translate(event)
                        if kind in _MAY_QUOTE:
                            translated = self.redactor.body(translated)
                        out.append(translated)
                        # Committed only once the client's bytes exist: an event the
                        # translation cannot read fails the attempt, before or after.
                        if kind is EventKind.CONTENT and not attempt.succeeded:
                            attempt.settle(SUCCESS)
                            first_byte.stop()
                            # The client's first bytes leave now, not once the rest of the
                            # chunk (a whole answer, from a fast upstream) has been read.
                            body, out = b"".join(out), []
                            await send(
                                {"type": "http.response.body", "body": body, "more_body": True}
                            )
                        ended = ended or kind is EventKind.END
                except EventTooLarge:
                    failure = Outcome(Kind.TRANSIENT, Reason.EVENT_TOO_LARGE)
                except _MALFORMED:
                    failure = Outcome(Kind.TRANSIENT, Reason.MALFORMED_EVENT)
                body = b"".join(out)
                if not attempt.succeeded:
                    held += len(body)
                    if held > EVENT_LIMIT:  # pings and holds without end: no content
                        failure = Outcome(Kind.TRANSIENT, Reason.EVENT_TOO_LARGE)
                if failure is not None:
                    break
                if body and _drained(response):  # nothing more will come: one message less
                    last = body
                elif body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
        except httpx.HTTPError as exc:
            failure = _failure(attempt, exc)
            body = b""
        if failure is not None:
            if not attempt.succeeded or failure.kind is Kind.CANCELLED:
                attempt.settle(failure)
                return
            _broke(attempt, failure.reason)
            if attempt.rescue:  # the router continues the answer on the next target
                if body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                return
            error = codec.error_event(f"the upstream stream broke: {failure.reason}")
            await send(_last(body + error))
            return
        if not attempt.succeeded:
            reason = Reason.STREAM_ENDED_EARLY if codec.seen else Reason.EMPTY_STREAM
            attempt.settle(Outcome(Kind.TRANSIENT, reason))
            return
        if not ended and attempt.rescue:  # cut short: its unfinished last event is dropped
            _broke(attempt, Reason.STREAM_ENDED_EARLY)
            if last:
                await send({"type": "http.response.body", "body": last, "more_body": True})
            return
        await send(_last(last + self._stream_end(framer, codec, exchange, attempt, ended)))

    def _stream_end(
        self,
        framer: SSEFramer,
        codec: StreamCodec,
        exchange: Exchange,
        attempt: Attempt,
        ended: bool,
    ) -> bytes:
        """The last bytes of a committed stream: its unterminated last event, the codec's
        closing events, and an error event when the upstream never said it was complete."""
        rest = framer.tail()
        try:
            if rest.strip() and not exchange.passthrough:
                # An unterminated last event is the target's protocol: it too is translated.
                event = parse_event(rest + b"\n\n")
                ended = ended or codec.kind(event) is EventKind.END
                rest = codec.translate(event)
            tail = rest + codec.finish()
        except _MALFORMED:
            _broke(attempt, Reason.MALFORMED_EVENT)
            return codec.error_event("the upstream stream broke: malformed_event")
        if not ended:
            _broke(attempt, Reason.STREAM_ENDED_EARLY)
            tail += codec.error_event("the upstream stream ended before it was complete")
        return tail

    def _stream_error(self, data: bytes, attempt: Attempt) -> Outcome:
        return classify_stream_error(
            data, fallback_on=self.fallback_on, first=attempt.first, now=self.clock()
        )


def _bearer_as_api_key(headers: Headers) -> Headers:
    """An OpenAI client's `Authorization: Bearer <Anthropic API key>`, as Anthropic wants it.

    OpenAI clients can only send their key as a bearer token; Anthropic takes API keys in
    `x-api-key` and bearer tokens only for OAuth (`sk-ant-oat…`), which stay as they are.
    """
    moved: Headers = []
    for name, value in headers:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            token = value[7:].strip()
            if token.startswith(b"sk-ant-") and not token.startswith(b"sk-ant-oat"):
                moved.append((b"x-api-key", token))
                continue
        moved.append((name, value))
    return moved


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


def _drained(response: httpx.Response) -> bool:
    """Whether the transport says the whole body has arrived and been read (Http11Transport
    does; another transport is never taken to have finished early)."""
    return getattr(response.stream, "drained", False) is True


def _gone(attempt: Attempt) -> bool:
    return attempt.broken == Reason.CLIENT_DISCONNECTED


def _failure(attempt: Attempt, exc: httpx.HTTPError) -> Outcome:
    """A transport failure's outcome: nobody's failure when the client hung up first."""
    if _gone(attempt):
        return Outcome(Kind.CANCELLED, Reason.CLIENT_DISCONNECTED)
    return classify_exception(exc)


def _broke(attempt: Attempt, reason: str) -> None:
    """A committed answer broke off upstream: one warning line, no traceback."""
    attempt.broken = reason
    logger.warning(
        "the answer from %s broke off after it had begun: %s", attempt.target.name, reason
    )


def _last(body: bytes) -> dict[str, object]:
    return {"type": "http.response.body", "body": body, "more_body": False}


def _query(request: InboundRequest, target: Target) -> str:
    if request.query and target.protocol == request.protocol:
        return "?" + request.query.decode("latin-1")
    return ""


def _connection_named(headers: Headers) -> frozenset[bytes]:
    """Headers a `Connection` header names: hop-by-hop for this one connection (RFC 9110
    7.6.1), whatever they are called, so never forwarded."""
    named = [v for k, v in headers if k == b"connection"]
    if not named:
        return frozenset()
    return frozenset(
        name.strip().lower() for value in named for name in value.split(b",") if name.strip()
    )


def _response_headers(response: httpx.Response, max_wait: float) -> Headers:
    """The upstream's headers a client gets: no hop-by-hop ones, and a wait it asks for
    bounded by `max_wait` (never `1e300`, a negative number or `nan`)."""
    headers = [(k.lower(), v) for k, v in response.headers.raw]
    drop = _RESPONSE_DROP | _connection_named(headers)
    kept: Headers = []
    for name, value in headers:
        if name in drop:
            continue
        if name in _WAITS:
            bounded = bounded_wait(name, value, max_wait)
            if bounded is None:
                continue
            value = bounded
        kept.append((name, value))
    return kept


def _translated_headers(response: httpx.Response, body: bytes, max_wait: float) -> Headers:
    """The upstream's headers for a body re-encoded as JSON: its type and length are ours."""
    headers = [
        (k, v) for k, v in _response_headers(response, max_wait) if k not in _TRANSLATED_DROP
    ]
    headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    return headers


def _raw(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as the transport hands it over: `aiter_raw` without the bookkeeping it adds to
    every response (a context manager, a chunker, a generator), which the relay never reads."""
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    return aiter(stream)


async def _read_ahead(body: AsyncIterator[bytes], limit: int) -> tuple[bytes, bool]:
    """The body's first bytes, up to just past `limit`, and whether that was all of it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in body:
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
    return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), True


async def _relay_raw(body: AsyncIterator[bytes], send: Send) -> None:
    """Relay the rest of the body as it comes."""
    async for chunk in body:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    """The body decoded (an upstream may compress it though asked not to), up to `limit`."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]
