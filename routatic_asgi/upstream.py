"""The upstream clients: one pooled `httpx.AsyncClient` per provider.

Clients are made on first use inside the running event loop (so an app mounted in another
one, whose lifespan never reaches us, still works) and closed by `aclose()`. Redirects are
never followed. Nothing here decides anything about a response.
"""

from __future__ import annotations

import httpx

from routatic_asgi.config import Config
from routatic_asgi.http11 import Http11Transport

__all__ = ["Upstreams"]


class Upstreams:
    def __init__(
        self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self._transport = transport
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(self, provider: str) -> httpx.AsyncClient:
        client = self._clients.get(provider)
        if client is None:
            client = self._clients[provider] = self._make(provider)
        return client

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
        transport = self._transport or Http11Transport(max_keepalive=256, keepalive_expiry=60)
        return httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, transport=transport, trust_env=False
        )

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
