"""`RoutaticApp`: the gateway's dispatcher, its own endpoints, its lifespan and reloads.

The proxy paths go to the chain that app/assembly.py built; health, readiness, status,
metrics and model discovery are answered here. Unknown paths and wrong methods get the
caller's error envelope. It closes the upstream clients at lifespan shutdown (or on
`aclose()` when mounted where no lifespan reaches it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from routatic_asgi.answer import Answer, proxy_error, send_answer
from routatic_asgi.app.discovery import JSON, json_answer, list_models, model_ids, one_model
from routatic_asgi.app.paths import WITHOUT_V1, envelope, hint
from routatic_asgi.app.reset import reset
from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.config import Config, InboundKey
from routatic_asgi.inbound_auth import InboundAuth
from routatic_asgi.reload import Generation
from routatic_asgi.state import MemoryStore, StateStore, state_kind
from routatic_asgi.status_page import BrowserKey, page, page_data
from routatic_asgi.telemetry import Telemetry
from routatic_asgi.upstream import Upstreams

__all__ = ["Assembly", "RoutaticApp", "StateDesk"]

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
Status = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class StateDesk:
    """What /status, /status/reset and a reload ask of the breaker and credential layers."""

    status: Status
    reset: Callable[[str], Awaitable[list[str]]]  # a name as `status --reset` takes it
    forget: Callable[[Sequence[str]], Awaitable[None]]  # providers whose configuration changed


Assembly = tuple[ASGIApp, Upstreams, StateDesk]
Rebuild = Callable[[Config], Assembly]


class RoutaticApp:
    """The assembled gateway: proxy endpoints behind the chain, plus health and discovery."""

    def __init__(
        self,
        config: Config,
        chain: ASGIApp,
        upstreams: Upstreams,
        telemetry: Telemetry | None = None,
        *,
        store: StateStore | None = None,
        desk: StateDesk | None = None,
        rebuild: Rebuild | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.telemetry = telemetry or Telemetry()
        self.store: StateStore = store if store is not None else MemoryStore()
        self.clock = clock
        self._rebuild = rebuild
        # Tasks the server runs beside the requests (the config watcher), from startup on.
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._page = page()
        self._tasks: list[asyncio.Task[None]] = []
        self._install(config, chain, upstreams, desk)

    def _install(
        self,
        config: Config,
        chain: ASGIApp,
        upstreams: Upstreams,
        desk: StateDesk | None,
    ) -> None:
        """Make `config` the one new requests see. No await here: a request sees the old
        configuration or the new one, never a mix, and one that started keeps its chain."""
        self.config = config
        self.loaded = {"source": config.source, "hash": config.digest, "loaded_at": self.clock()}
        self.upstreams = upstreams
        self.generation = Generation(chain, upstreams)
        self.chain: ASGIApp = self.generation
        self.desk = desk
        chain = self.generation
        keys = config.server.keys
        # With proxy keys, everything but health, readiness and metrics needs one.
        models = InboundAuth(self._models, keys=keys)
        self.one_model: ASGIApp = InboundAuth(self._model, keys=keys)
        root = InboundAuth(self._root, keys=keys)
        self.routes: dict[str, dict[str, Handler]] = {
            "/v1/messages": {"POST": chain},
            "/v1/messages/count_tokens": {"POST": chain},
            "/v1/chat/completions": {"POST": chain},
            "/v1/responses": {"POST": chain},
            "/v1/models": {"GET": models},
            "/healthz": {"GET": self._healthz},
            "/readyz": {"GET": self._readyz},
            "/status": {"GET": self._for_browsers(self._status, keys)},
            "/status/reset": {"POST": InboundAuth(self._reset, keys=keys)},
            "/ui": {"GET": self._for_browsers(self._ui, keys)},
            "/ui/data": {"GET": self._for_browsers(self._ui_data, keys)},
            "/metrics": {"GET": self._metrics},
            "/": {"GET": root, "HEAD": root},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        if path in WITHOUT_V1:  # as LiteLLM does: a base URL without /v1 works too
            scope = {**scope, "path": root + "/v1" + path}
            path = "/v1" + path
        methods = self.routes.get(path)
        if methods is None and path.startswith("/v1/models/"):
            methods = {"GET": self.one_model}
        if methods is None:
            message = f"no such path: {path}; {hint(path)}"
            answer = proxy_error(envelope(scope, path), 404, message, "not_found_error")
            await self._refuse(scope, send, answer)
            return
        handler = methods.get(scope["method"])
        if handler is None:
            message = f"{scope['method']} is not allowed on {path}"
            answer = proxy_error(envelope(scope, path), 405, message)
            answer.headers.append((b"allow", ", ".join(methods).encode()))
            await self._refuse(scope, send, answer)
            return
        await handler(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, answer: Answer) -> None:
        """A 404 or 405 of the dispatcher's own, in the request log like any request."""
        await self.telemetry.recorded(scope, send, lambda send: send_answer(send, answer))

    async def reload(self, config: Config) -> None:
        """Serve `config` from the next request on; requests in flight finish on the old one.

        Breaker and credential state stays in the shared store; what providers that changed
        or went away left there is forgotten, so a fixed provider starts afresh.
        """
        if self._rebuild is None:
            raise RuntimeError("this app was not made by build_app: it cannot reload")
        chain, upstreams, desk = self._rebuild(config)
        changed = [
            name
            for name, provider in self.config.providers.items()
            if config.providers.get(name) != provider
        ]
        await desk.forget(changed)
        retired = self.generation
        self._install(config, chain, upstreams, desk)
        await retired.retire()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.generation.retire()
        await self.store.aclose()
        self.telemetry.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._tasks = [asyncio.create_task(job()) for job in self.background]
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _root(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_answer(send, json_answer(200, {"service": "routatic-asgi"}))

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_answer(send, json_answer(200, {"status": "ok"}))

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The state URL may hold a password: say which kind of store, not where it is.
        degraded = not await self.store.ping()
        kind = state_kind(self.config.state)
        payload = {"status": "ready", "state": kind, "state_degraded": degraded}
        await send_answer(send, json_answer(200, payload))

    async def _status(self, scope: Scope, receive: Receive, send: Send) -> None:
        report = await self.desk.status() if self.desk is not None else {}
        await send_answer(send, json_answer(200, {**report, "config": self.loaded}))

    @staticmethod
    def _for_browsers(handler: Handler, keys: list[InboundKey]) -> Handler:
        """Behind the proxy key, which a browser may give as a Basic password."""
        return BrowserKey(InboundAuth(handler, keys=keys), enabled=bool(keys))

    async def _ui(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers, body = self._page
        await send_answer(send, Answer(200, list(headers), body))

    async def _ui_data(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = page_data(self.config, self.telemetry.recent)
        await send_answer(send, Answer(200, list(JSON), body))

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, content_type = self.telemetry.metrics.exposition()
        await send_answer(send, Answer(200, [(b"content-type", content_type.encode())], body))

    async def _reset(self, scope: Scope, receive: Receive, send: Send) -> None:
        await reset(self.desk.reset if self.desk is not None else _nothing, receive, send)

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        await list_models(self.config, scope, send)

    async def _model(self, scope: Scope, receive: Receive, send: Send) -> None:
        await one_model(self.config, scope, send)

    def model_ids(self) -> list[str]:
        return model_ids(self.config)


async def _nothing(name: str) -> list[str]:
    return []
