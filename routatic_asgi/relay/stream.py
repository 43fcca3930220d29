"""Relaying a stream, event by event, with the commit at its first content event.

Events before the content are passed on for the router to hold back; an error event before
it settles the attempt as that error, so the router falls back. After the commit a failure is
never a quiet end: the client gets the protocol's error event, or, when the router can rescue
the stream, the stream is left open for it. Memory is bounded: one event, and what is held
before the commit, at most `EVENT_LIMIT` bytes.
"""

from __future__ import annotations

import httpx

from routatic_asgi.classify import SUCCESS, Kind, Outcome, Reason, classify_stream_error
from routatic_asgi.exchange import EventKind, StreamCodec
from routatic_asgi.relay.call import MALFORMED, RelayCall, last, raw
from routatic_asgi.relay.headers import response_headers
from routatic_asgi.sse import EVENT_LIMIT, Event, EventTooLarge, SSEFramer, parse_event
from routatic_asgi.telemetry import UsageReader

__all__ = ["relay_stream"]

# Events that may carry an upstream's error text, which may quote its key: an error, and an
# end (a translated stream's error after its commit is its end).
_MAY_QUOTE = frozenset({EventKind.ERROR, EventKind.END})


async def relay_stream(call: RelayCall, response: httpx.Response) -> None:
    headers = response_headers(response, call.settings.max_wait)
    await call.send(
        {"type": "http.response.start", "status": response.status_code, "headers": headers}
    )
    await _Stream(call).relay(response)


class _Stream:
    """One stream's reading state: the framer, the codec, whether it ended, what is held."""

    def __init__(self, call: RelayCall) -> None:
        self.call, self.attempt = call, call.attempt
        self.framer = SSEFramer()
        self.codec: StreamCodec = call.exchange.stream()
        self.usage = UsageReader(call.attempt, call.attempt.target.protocol)
        self.ended = False
        self.held = 0  # bytes the router holds back until the commit
        self.errored = False  # an error event before the commit settled the attempt
        self.last = b""  # the body of the last chunk: it goes out with the stream's end

    async def relay(self, response: httpx.Response) -> None:
        attempt, send = self.attempt, self.call.send
        failure: Outcome | None = None
        body = b""
        try:
            async for chunk in raw(response):
                body, failure = await self._feed(chunk)
                if self.errored:
                    return
                if failure is not None:
                    break
                if body and _drained(response):  # nothing more will come: one message less
                    self.last = body
                elif body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
        except httpx.HTTPError as exc:
            failure, body = self.call.failure(exc), b""
        if failure is not None:
            await self._failed(failure, body)
        elif not attempt.succeeded:
            reason = Reason.STREAM_ENDED_EARLY if self.codec.seen else Reason.EMPTY_STREAM
            attempt.settle(Outcome(Kind.TRANSIENT, reason))
        elif not self.ended and attempt.rescue:  # cut short: its unfinished event is dropped
            self.call.broke(Reason.STREAM_ENDED_EARLY)
            if self.last:
                await send({"type": "http.response.body", "body": self.last, "more_body": True})
        else:
            await send(last(self.last + self._end()))

    async def _feed(self, chunk: bytes) -> tuple[bytes, Outcome | None]:
        """The client's bytes for one chunk of the upstream's still to send, and the failure
        it showed."""
        out: list[bytes] = []
        failure: Outcome | None = None
        try:
            for event in self.framer.events(chunk):
                committed = self._event(event, out)
                if self.errored:
                    return b"", None
                if committed:
                    # The client's first bytes leave now, not once the rest of the chunk (a
                    # whole answer, from a fast upstream) has been read.
                    body, out = b"".join(out), []
                    await self.call.send(
                        {"type": "http.response.body", "body": body, "more_body": True}
                    )
        except EventTooLarge:
            failure = Outcome(Kind.TRANSIENT, Reason.EVENT_TOO_LARGE)
        except MALFORMED:
            failure = Outcome(Kind.TRANSIENT, Reason.MALFORMED_EVENT)
        body = b"".join(out)
        if not self.attempt.succeeded:
            self.held += len(body)
            if self.held > EVENT_LIMIT:  # pings and holds without end: no content
                failure = Outcome(Kind.TRANSIENT, Reason.EVENT_TOO_LARGE)
        return body, failure

    def _event(self, event: Event, out: list[bytes]) -> bool:
        """Translate one event into `out`; whether it committed the attempt. An error before
        the commit settles the attempt instead (`errored`)."""
        attempt, codec, settings = self.attempt, self.codec, self.call.settings
        self.usage.observe(event)
        kind = codec.kind(event)
        if kind is EventKind.ERROR and not attempt.succeeded:
            attempt.settle(
                classify_stream_error(
                    event.data,
                    fallback_on=settings.fallback_on,
                    first=attempt.first,
                    now=settings.clock(),
                )
            )
            self.errored = True
            return False
        translated = codec.translate(event)
        if kind in _MAY_QUOTE:
            translated = settings.redactor.body(translated)
        out.append(translated)
        # Committed only once the client's bytes exist: an event the translation cannot read
        # fails the attempt, before or after.
        committed = kind is EventKind.CONTENT and not attempt.succeeded
        if committed:
            attempt.settle(SUCCESS)
            self.call.first_byte.stop()
        self.ended = self.ended or kind is EventKind.END
        return committed

    async def _failed(self, failure: Outcome, body: bytes) -> None:
        attempt, send = self.attempt, self.call.send
        if not attempt.succeeded or failure.kind is Kind.CANCELLED:
            attempt.settle(failure)
            return
        self.call.broke(failure.reason)
        if attempt.rescue:  # the router continues the answer on the next target
            if body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
            return
        error = self.codec.error_event(f"the upstream stream broke: {failure.reason}")
        await send(last(body + error))

    def _end(self) -> bytes:
        """The last bytes of a committed stream: its unterminated last event, the codec's
        closing events, and an error event when the upstream never said it was complete."""
        codec, ended = self.codec, self.ended
        rest = self.framer.tail()
        try:
            if rest.strip() and not self.call.exchange.passthrough:
                # An unterminated last event is the target's protocol: it too is translated.
                event = parse_event(rest + b"\n\n")
                ended = ended or codec.kind(event) is EventKind.END
                rest = codec.translate(event)
            tail = rest + codec.finish()
        except MALFORMED:
            self.call.broke(Reason.MALFORMED_EVENT)
            return codec.error_event("the upstream stream broke: malformed_event")
        if not ended:
            self.call.broke(Reason.STREAM_ENDED_EARLY)
            tail += codec.error_event("the upstream stream ended before it was complete")
        return tail


def _drained(response: httpx.Response) -> bool:
    """Whether the transport says the whole body has arrived and been read (Http11Transport
    does; another transport is never taken to have finished early)."""
    return getattr(response.stream, "drained", False) is True
