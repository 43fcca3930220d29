"""The upstream clients: one pooled `httpx.AsyncClient` per provider.

Clients are made on first use inside the running event loop (so an app mounted in another
one, whose lifespan never reaches us, still works) and closed by `aclose()`. Redirects are
never followed. Nothing here decides anything about a response.

`post()` is the relay's way in: the request `client.build_request()` would make (the client's
default headers, its timeouts) and the streamed `httpx.Response` of `client.send(stream=True)`,
for a fraction of the CPU: the URL is parsed once, and the default transport writes the
request without building an `httpx.Request` at all. An injected transport (tests, capture)
gets a real `httpx.Request` and the full `client.send()`.
"""

from __future__ import annotations

import httpx

from routatic_asgi.config import Config
from routatic_asgi.http11 import Http11Transport

__all__ = ["Upstreams"]

_URL_CACHE = 1024  # distinct upstream URLs kept parsed; the query string makes them vary


class Upstreams:
    def __init__(
        self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self._transport = transport
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._defaults: dict[str, tuple[list[tuple[bytes, bytes]], dict[str, float | None]]] = {}
        self._urls: dict[str, httpx.URL] = {}
        self._direct: dict[str, Http11Transport] = {}

    def client(self, provider: str) -> httpx.AsyncClient:
        client = self._clients.get(provider)
        if client is None:
            client = self._clients[provider] = self._make(provider)
        return client

    async def post(
        self, provider: str, url: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> httpx.Response:
        """POST `body`; `headers` override the client's default headers. The response's body is
        still to be read, and the caller closes it."""
        client = self.client(provider)
        defaults, timeout = self._defaults[provider]
        names = {name.lower() for name, _ in headers}
        sent = [header for header in defaults if header[0] not in names]
        sent.extend(headers)
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        direct = self._direct.get(provider)
        if direct is not None:
            return await direct.post(parsed, sent, body, timeout)
        request = httpx.Request(
            "POST", parsed, headers=sent, content=body, extensions={"timeout": timeout}
        )
        return await client.send(request, stream=True)

    def _make(self, provider: str) -> httpx.AsyncClient:
        settings = self.config.providers[provider]
        resilience = self.config.resilience
        timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=resilience.idle_timeout,
            write=resilience.idle_timeout,
            pool=settings.connect_timeout,
        )
        # Http11Transport, not httpcore: it costs a fraction of the CPU per request
        # (bench/README.md has the figures); an injected transport replaces it in tests.
        transport = self._transport
        if transport is None:
            transport = Http11Transport(max_keepalive=256, keepalive_expiry=60)
            self._direct[provider] = transport
        client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, transport=transport, trust_env=False
        )
        defaults = [(name.lower(), value) for name, value in client.headers.raw]
        self._defaults[provider] = (defaults, timeout.as_dict())
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        self._direct = {}
        for client in clients:
            await client.aclose()
