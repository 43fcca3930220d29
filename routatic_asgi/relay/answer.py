"""Relaying an answer that is not a stream: an error, a passthrough body, a translated body.

An error is classified and settles the attempt before its bytes go on (redacted: an upstream
may quote the key it was sent). A passthrough answer up to `READ_AHEAD` is read whole before
it commits, so one cut short falls back like any failure; a larger one is relayed as it
comes. A translated answer is read whole to translate it.
"""

from __future__ import annotations

import httpx

from routatic_asgi.classify import SUCCESS, Kind, Outcome, Reason, classify_response
from routatic_asgi.relay.call import MALFORMED, RelayCall, raw, read_ahead
from routatic_asgi.relay.headers import response_headers, translated_headers
from routatic_asgi.telemetry import usage_from_body

__all__ = ["relay_error", "relay_passthrough", "relay_translated"]

_ERROR_BODY_LIMIT = 1024 * 1024
# A non-streamed answer up to this size is read whole before it commits, so one cut short
# falls back like any failure; a larger one is relayed as it comes, without reading its usage.
READ_AHEAD = 4 * 1024 * 1024
# A translated answer is read whole to translate it: one larger than this is a failure.
_TRANSLATED_LIMIT = 32 * 1024 * 1024


async def relay_passthrough(call: RelayCall, response: httpx.Response) -> None:
    attempt, send, status = call.attempt, call.send, response.status_code
    try:
        body = raw(response)
        head, whole = await read_ahead(body, READ_AHEAD)
    except httpx.HTTPError as exc:
        attempt.settle(call.failure(exc))
        return
    attempt.settle(SUCCESS)
    headers = response_headers(response, call.settings.max_wait)
    if whole:
        head = call.exchange.response_body(head)  # a passthrough's is the body itself
        headers.append((b"content-length", str(len(head)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": head})
        attempt.usage = usage_from_body(attempt.target.protocol, head)
        return
    length = response.headers.get("content-length", "").encode()
    headers.extend([(b"content-length", length)] if length else [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": head, "more_body": True})
    try:
        async for chunk in body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except httpx.HTTPError as exc:
        # Its length promised, the body cannot end well: returning without its end makes
        # the server drop the connection, which is how the client learns it was cut.
        if not call.gone:
            call.broke(call.failure(exc).reason)


async def relay_translated(call: RelayCall, response: httpx.Response) -> None:
    """Read and translate the whole answer first: one the client cannot read is a failure."""
    attempt, status = call.attempt, response.status_code
    try:
        body, whole = await read_ahead(response.aiter_bytes(), _TRANSLATED_LIMIT)
        if not whole:
            attempt.settle(Outcome(Kind.TRANSIENT, Reason.ANSWER_TOO_LARGE, status))
            return
        translated = call.exchange.response_body(body)
    except httpx.HTTPError as exc:
        attempt.settle(call.failure(exc))
        return
    except MALFORMED:
        attempt.settle(Outcome(Kind.TRANSIENT, Reason.UNREADABLE_ANSWER, status))
        return
    attempt.settle(SUCCESS)
    attempt.usage = usage_from_body(attempt.target.protocol, body)
    headers = translated_headers(response, translated, call.settings.max_wait)
    await call.send({"type": "http.response.start", "status": status, "headers": headers})
    await call.send({"type": "http.response.body", "body": translated})


async def relay_error(call: RelayCall, response: httpx.Response) -> None:
    """An error answer: classified, settled, then relayed in the client's protocol."""
    attempt, settings, status = call.attempt, call.settings, response.status_code
    try:
        body = await _read_limited(response, _ERROR_BODY_LIMIT)
    except httpx.HTTPError as exc:
        attempt.settle(call.failure(exc))
        return
    attempt.settle(
        classify_response(
            status,
            response.headers,
            body,
            fallback_on=settings.fallback_on,
            first=attempt.first,
            now=settings.clock(),
            max_wait=settings.max_wait,
        )
    )
    # An upstream may quote the key it was sent: no error body or header shows a key we
    # hold. The body was read decoded (compressed or not), so it goes out unencoded.
    body = settings.redactor.body(body)
    if call.exchange.passthrough:
        headers = response_headers(response, settings.max_wait)
        headers = [(k, v) for k, v in headers if k != b"content-encoding"]
        headers.append((b"content-length", str(len(body)).encode()))
    else:
        body = call.exchange.error_body(status, body)
        headers = translated_headers(response, body, settings.max_wait)
    headers = [(k, settings.redactor.body(v)) for k, v in headers]
    await call.send({"type": "http.response.start", "status": status, "headers": headers})
    await call.send({"type": "http.response.body", "body": body})


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
