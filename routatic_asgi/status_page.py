"""`GET /ui`: one static page showing the chains, every breaker and credential with its time
left, the prompt-cache hit ratio of each provider and model, and the last requests with their
attempts, updating live from `/status` and `/ui/data`.

The page is a single HTML file with inline script and style: no build step, no external
asset (its Content-Security-Policy forbids any). `BrowserKey` lets a browser give the proxy
key as the password of HTTP Basic authentication. Nothing here holds a secret: the request
lines are the request log's, credentials appear as provider, index and last 4 characters.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from importlib.resources import files
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from routatic_asgi.config import Config, iter_chain

__all__ = ["BrowserKey", "cache_hits", "page", "page_data"]

_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
]


def page() -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The page's headers and bytes, read once from the package."""
    body = files("routatic_asgi").joinpath("status_page.html").read_bytes()
    return list(_HEADERS), body


def page_data(config: Config, recent: Any) -> bytes:
    """The chains of `config`, the cache hits and the recent request log lines, newest first."""
    chains = [
        {
            "match": route.match,
            "when": route.when.model_dump(exclude_none=True) if route.when else None,
            "targets": [f"{provider}/{model}" for provider, model in iter_chain(route, "{model}")],
        }
        for route in config.routes
    ]
    requests = list(reversed(recent))
    return orjson.dumps({"chains": chains, "caches": cache_hits(requests), "requests": requests})


_INPUT_KINDS = ("input", "cache_read", "cache_write")


def cache_hits(lines: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per provider and served model of the request log `lines`: the input tokens, cached or
    not, and the share read from the provider's prompt cache (what the Overview dashboard's
    hit ratio shows). Only lines that a target served and that reported input tokens count."""
    totals: dict[tuple[str, str], dict[str, int]] = {}
    for line in lines:
        tokens = line.get("tokens") or {}
        if not line.get("provider") or not any(tokens.get(k) for k in _INPUT_KINDS):
            continue
        key = (line["provider"], line.get("served_model") or "")
        counts = totals.setdefault(key, {"requests": 0, **dict.fromkeys(_INPUT_KINDS, 0)})
        counts["requests"] += 1
        for kind in _INPUT_KINDS:
            counts[kind] += int(tokens.get(kind) or 0)
    return [
        {"provider": provider, "model": model, **counts,
         "hit_ratio": counts["cache_read"] / sum(counts[k] for k in _INPUT_KINDS)}
        for (provider, model), counts in sorted(totals.items())
    ]  # fmt: skip


class BrowserKey:
    """Accept the proxy key as an HTTP Basic password (any user name), and ask a browser
    for it on a 401; what the inner `InboundAuth` sees is an `x-routatic-key` header."""

    def __init__(self, app: ASGIApp, *, enabled: bool) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled:
            await self.app(scope, receive, send)
            return
        password = _basic_password(scope["headers"])
        if password is not None:
            headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
            scope = {**scope, "headers": [*headers, (b"x-routatic-key", password)]}
        await self.app(scope, receive, _challenging(send))


def _challenging(send: Send) -> Callable[[Message], Any]:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 401:
            challenge = (b"www-authenticate", b'Basic realm="routatic-asgi", charset="UTF-8"')
            message = {**message, "headers": [*message.get("headers", ()), challenge]}
        await send(message)

    return wrapped


def _basic_password(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"authorization" and value[:6].lower() == b"basic ":
            try:
                decoded = base64.b64decode(value[6:].strip(), validate=True)
            except (binascii.Error, ValueError):
                return None
            return decoded.partition(b":")[2] or None
    return None
