"""Debug capture: write each request and response, and every upstream exchange, to files.

Off unless a directory is given (`ROUTATIC_DEBUG_CAPTURE` or `serve --debug-capture DIR`).
`DebugCapture` is the outermost middleware: it keeps the client's request and the answer it
got; `CaptureTransport` wraps the upstream transport and adds each attempt's upstream request
and response to the same capture, found through a context variable set for the request. One
JSON file per request. Bounded: every body is cut at `body_limit` bytes, and only the newest
`max_files` files are kept. Credentials are redacted: credential headers, key-like query
parameters, every configured or `key_command` key wherever it appears (a shared `Redactor`,
whatever the key's length), and the client's own credentials. It never changes a byte of traffic.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
import re
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import httpx
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from routatic_asgi.redaction import REDACTED, Redactor, secrets_of

__all__ = ["CAPTURE_VARIABLE", "CaptureTransport", "DebugCapture", "redact_headers", "secrets_of"]

CAPTURE_VARIABLE = "ROUTATIC_DEBUG_CAPTURE"

_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "x-routatic-key", "api-key"}
)
_KEYLIKE = re.compile(r"(^|[-_])(key|token|secret|password|signature)$|cookie|authorization")
_current: contextvars.ContextVar[_Capture | None] = contextvars.ContextVar(
    "routatic_debug_capture", default=None
)


def _is_credential(name: str) -> bool:
    name = name.lower()
    return name in _CREDENTIAL_HEADERS or bool(_KEYLIKE.search(name))


def redact_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, REDACTED if _is_credential(name) else value) for name, value in headers]


def _redact_query(query: str) -> str:
    pairs = [(k, REDACTED if _is_credential(k) else v) for k, v in parse_qsl(query, True)]
    return urlencode(pairs, safe="[]")


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    # Userinfo may hold a password: keep only host and port.
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(query=_redact_query(parts.query), netloc=netloc))


@dataclass
class _Body:
    limit: int
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0

    def add(self, chunk: bytes) -> None:
        room = self.limit - min(self.size, self.limit)
        if room > 0:
            self.chunks.append(chunk[:room])
        self.size += len(chunk)

    def dump(self) -> dict[str, Any]:
        text = b"".join(self.chunks).decode("utf-8", "replace")
        return {"body": text, "bytes": self.size, "truncated": self.size > self.limit}


@dataclass
class _Capture:
    """One request's capture. Lives for one request only."""

    body_limit: int
    redactor: Redactor  # every configured and key_command key, whatever its length
    secrets: set[str]  # the client's credential headers, seen in this request
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)
    upstream: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> _Body:
        return _Body(self.body_limit)

    def document(self) -> bytes:
        text = orjson.dumps(
            {"request": self.request, "response": self.response, "upstream": self.upstream},
            default=lambda value: value.dump() if isinstance(value, _Body) else str(value),
            option=orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATACLASS,
        ).decode()
        text = self.redactor.text(text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text.encode()


def _header_secrets(headers: Iterable[tuple[str, str]]) -> set[str]:
    """The values of credential headers (and the token of a `Bearer`), to redact anywhere."""
    found: set[str] = set()
    for name, value in headers:
        if _is_credential(name) and len(value) >= 8:
            found.add(value)
            token = value.partition(" ")[2].strip()
            if len(token) >= 8:
                found.add(token)
    return found


class DebugCapture:
    """ASGI middleware: one JSON file per HTTP request in `directory`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        directory: str | os.PathLike[str],
        secrets: Iterable[str] | Redactor = (),
        body_limit: int = 256 * 1024,
        max_files: int = 500,
    ) -> None:
        self.app = app
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.redactor = secrets if isinstance(secrets, Redactor) else Redactor(secrets)
        self.body_limit, self.max_files = body_limit, max_files
        self._sequence = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        capture = _Capture(self.body_limit, self.redactor, _header_secrets(headers))
        request_body, response_body = capture.body(), capture.body()
        capture.request = {
            "method": scope["method"],
            "path": scope["path"],
            "query": _redact_query(scope.get("query_string", b"").decode("latin-1")),
            "headers": redact_headers(headers),
            "body": request_body,
        }
        capture.response = {"status": None, "headers": [], "body": response_body}

        async def captured_receive() -> Message:
            message = await receive()
            request_body.add(message.get("body", b""))
            return message

        async def captured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                capture.response["status"] = message["status"]
                raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"]]
                capture.response["headers"] = redact_headers(raw)
            elif message["type"] == "http.response.body":
                response_body.add(message.get("body", b""))
            await send(message)

        token = _current.set(capture)
        try:
            await self.app(scope, captured_receive, captured_send)
        finally:
            _current.reset(token)
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._write, capture)

    def _write(self, capture: _Capture) -> None:
        name = f"{time.time_ns() // 1_000_000}-{os.getpid()}-{next(self._sequence):06d}.json"
        path = self.directory / name
        path.write_bytes(capture.document())
        path.chmod(0o600)
        files = sorted(self.directory.glob("*.json"))
        for old in files[: max(len(files) - self.max_files, 0)]:
            old.unlink(missing_ok=True)


class _TeeStream(httpx.AsyncByteStream):
    """The upstream's response body, passed through unchanged and kept up to a limit."""

    def __init__(self, stream: httpx.AsyncByteStream, body: _Body) -> None:
        self.stream, self.body = stream, body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.stream:
            self.body.add(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.stream.aclose()


class CaptureTransport(httpx.AsyncBaseTransport):
    """Wraps the upstream transport; adds every exchange to the current request's capture."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        capture = _current.get()
        if capture is None:
            return await self.inner.handle_async_request(request)
        sent = capture.body()
        with contextlib.suppress(httpx.RequestNotRead):  # a streamed upload is not kept
            sent.add(request.content)
        exchange: dict[str, Any] = {
            "method": request.method,
            "url": _redact_url(str(request.url)),
            "request_headers": redact_headers(request.headers.multi_items()),
            "request_body": sent,
        }
        capture.upstream.append(exchange)
        try:
            response = await self.inner.handle_async_request(request)
        except Exception as exc:
            exchange["error"] = type(exc).__name__
            raise
        received = capture.body()
        exchange.update(
            status=response.status_code,
            response_headers=redact_headers(response.headers.multi_items()),
            response_body=received,
        )
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_TeeStream(response.stream, received),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self.inner.aclose()
