"""`build_app`: assemble the middleware chain and the server's own endpoints.

This is the only module that knows the order of the layers. The dispatcher answers unknown
paths and wrong methods in the caller's error envelope, and closes the upstream clients at
lifespan shutdown (or on `aclose()` when mounted where no lifespan reaches it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl, unquote

import anyio
import httpx
import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from routatic_asgi.answer import Answer, proxy_error, send_answer
from routatic_asgi.attempt import Protocol, endpoint_for
from routatic_asgi.breaker import BreakerPolicy, CircuitBreaker
from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.config import Config, InboundKey, iter_chain, route_targets
from routatic_asgi.http11 import Http11Transport
from routatic_asgi.inbound_auth import InboundAuth
from routatic_asgi.keyring import Keyring
from routatic_asgi.redaction import Redactor, secrets_of
from routatic_asgi.relay import UpstreamRelay
from routatic_asgi.reload import Generation, forget_providers
from routatic_asgi.router import FallbackRouter
from routatic_asgi.routing import Routing
from routatic_asgi.shapes import models_query
from routatic_asgi.short_circuit import AuthShortCircuit
from routatic_asgi.state import MemoryStore, StateStore, store_for
from routatic_asgi.status_page import BrowserKey, page, page_data
from routatic_asgi.telemetry import RequestRecording, Telemetry
from routatic_asgi.telemetry.capture import CaptureTransport, DebugCapture
from routatic_asgi.telemetry.state_watch import WatchedStore
from routatic_asgi.upstream import Upstreams

__all__ = ["RoutaticApp", "build_app"]

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
Status = Callable[[], Awaitable[dict[str, Any]]]
Assembly = tuple[ASGIApp, Upstreams, Status]
Rebuild = Callable[[Config], Assembly]

_JSON = [(b"content-type", b"application/json")]


def _json(status: int, payload: Any) -> Answer:
    return Answer(status, list(_JSON), orjson.dumps(payload))


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
        status: Callable[[], Awaitable[dict[str, Any]]] | None = None,
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
        self._install(config, chain, upstreams, status)

    def _install(
        self,
        config: Config,
        chain: ASGIApp,
        upstreams: Upstreams,
        status: Callable[[], Awaitable[dict[str, Any]]] | None,
    ) -> None:
        """Make `config` the one new requests see. No await here: a request sees the old
        configuration or the new one, never a mix, and one that started keeps its chain."""
        self.config = config
        self.loaded = {"source": config.source, "hash": config.digest, "loaded_at": self.clock()}
        self.upstreams = upstreams
        self.generation = Generation(chain, upstreams)
        self.chain: ASGIApp = self.generation
        self.status = status
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
        if path in _WITHOUT_V1:  # as LiteLLM does: a base URL without /v1 works too
            scope = {**scope, "path": root + "/v1" + path}
            path = "/v1" + path
        methods = self.routes.get(path)
        if methods is None and path.startswith("/v1/models/"):
            methods = {"GET": self.one_model}
        protocol = _envelope(scope, path)
        if methods is None:
            message = f"no such path: {path}; {_hint(path)}"
            await self._refuse(scope, send, proxy_error(protocol, 404, message, "not_found_error"))
            return
        handler = methods.get(scope["method"])
        if handler is None:
            answer = proxy_error(protocol, 405, f"{scope['method']} is not allowed on {path}")
            answer.headers.append((b"allow", ", ".join(methods).encode()))
            await self._refuse(scope, send, answer)
            return
        await handler(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, answer: Answer) -> None:
        """A 404 or 405 of the dispatcher's own, in the request log like any request."""
        protocol, endpoint = endpoint_for(scope["path"])
        record = self.telemetry.request(scope, protocol, endpoint)
        try:
            await send_answer(record.watch(send), answer)
        finally:
            record.finish()

    async def reload(self, config: Config) -> None:
        """Serve `config` from the next request on; requests in flight finish on the old one.

        Breaker and credential state stays in the shared store; what providers that changed
        or went away left there is forgotten, so a fixed provider starts afresh.
        """
        if self._rebuild is None:
            raise RuntimeError("this app was not made by build_app: it cannot reload")
        chain, upstreams, status = self._rebuild(config)
        changed = [
            name
            for name, provider in self.config.providers.items()
            if config.providers.get(name) != provider
        ]
        await forget_providers(self.store, changed)
        retired = self.generation
        self._install(config, chain, upstreams, status)
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
        await send_answer(send, _json(200, {"service": "routatic-asgi"}))

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_answer(send, _json(200, {"status": "ok"}))

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The state URL may hold a password: say which kind of store, not where it is.
        kind = "memory" if self.config.state == "memory" else "redis"
        degraded = not await self.store.ping()
        payload = {"status": "ready", "state": kind, "state_degraded": degraded}
        await send_answer(send, _json(200, payload))

    async def _status(self, scope: Scope, receive: Receive, send: Send) -> None:
        report = await self.status() if self.status is not None else {}
        await send_answer(send, _json(200, {**report, "config": self.loaded}))

    async def _reset(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Clear a breaker (`provider/model`, `…#N` for one key) or a credential (`provider#N`,
        `provider` for all its keys, `provider#client` for clients' own) by hand."""
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            name = orjson.loads(body).get("reset") if body else None
        except (orjson.JSONDecodeError, AttributeError):
            name = None
        if not isinstance(name, str) or not name:
            error = {"type": "invalid_request_error", "message": 'send {"reset": "NAME"}'}
            await send_answer(send, _json(400, {"error": error}))
            return
        keys = reset_keys(name, await self.store.records())
        for key in keys:
            await self.store.delete(key)
        if not keys:
            why = f"nothing named {name!r} is open or cooling (see GET /status)"
            error = {"type": "not_found_error", "message": why}
            await send_answer(send, _json(404, {"error": error}))
            return
        # A credential by its id, never its fingerprint; a breaker by its target key.
        names = [k.split(":")[1] if k.startswith("credential:") else k[8:] for k in keys]
        await send_answer(send, _json(200, {"reset": list(dict.fromkeys(names))}))

    @staticmethod
    def _for_browsers(handler: Handler, keys: list[InboundKey]) -> Handler:
        """Behind the proxy key, which a browser may give as a Basic password."""
        return BrowserKey(InboundAuth(handler, keys=keys), enabled=bool(keys))

    async def _ui(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers, body = self._page
        await send_answer(send, Answer(200, list(headers), body))

    async def _ui_data(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = page_data(self.config, self.telemetry.recent)
        await send_answer(send, Answer(200, list(_JSON), body))

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, content_type = self.telemetry.metrics.exposition()
        await send_answer(send, Answer(200, [(b"content-type", content_type.encode())], body))

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = models_query(_query(scope))
        if problem is not None:
            answer = proxy_error(
                "openai" if _speaks_openai(scope) else "anthropic",
                400,
                problem.message,
                param=problem.field,
            )
            await send_answer(send, answer)
            return
        ids = self.model_ids()
        if _speaks_openai(scope):
            data = [{"id": i, "object": "model", "created": 0, "owned_by": "routatic"} for i in ids]
            await send_answer(send, _json(200, {"object": "list", "data": data}))
            return
        query = _query(scope)
        after = query.get("after_id")
        if after in ids:
            ids = ids[ids.index(after) + 1 :]
        page = ids[: int(query.get("limit", 20))]
        models = [
            {"type": "model", "id": i, "display_name": i, "created_at": "1970-01-01T00:00:00Z"}
            for i in page
        ]
        payload = {
            "data": models,
            "has_more": len(ids) > len(page),
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
        await send_answer(send, _json(200, payload))

    async def _model(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`GET /v1/models/{id}`: one model a client can name, in the caller's shape."""
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        model = unquote(path.removeprefix("/v1/models/"))
        openai = _speaks_openai(scope)
        if model not in self.model_ids():
            message = f"no model {model!r} here: GET /v1/models lists the ones you can ask for"
            answer = proxy_error(
                "openai" if openai else "anthropic", 404, message, "not_found_error"
            )
            await send_answer(send, answer)
            return
        if openai:
            payload = {"id": model, "object": "model", "created": 0, "owned_by": "routatic"}
        else:
            created = "1970-01-01T00:00:00Z"
            payload = {"type": "model", "id": model, "display_name": model, "created_at": created}
        await send_answer(send, _json(200, payload))

    def model_ids(self) -> list[str]:
        """Every model a client can ask for: literal route names, and the models of `models:`
        catalogs and the fixed chain models that some route serves (a `*` route serves all)."""
        ids = {r.match for r in self.config.routes if not any(c in r.match for c in "*?[")}
        named = {m for provider in self.config.providers.values() for m in provider.models}
        for route in self.config.routes:
            for entry in route_targets(route):
                model = entry.partition("/")[2]
                if "{model}" not in model:
                    named.add(model)
        ids.update(model for model in named if self.config.route_for(model) is not None)
        return sorted(ids)


_WITHOUT_V1 = frozenset(
    {"/messages", "/messages/count_tokens", "/chat/completions", "/responses", "/models"}
)
_SERVED = "/v1/messages, /v1/chat/completions, /v1/responses, /v1/models"


def _hint(path: str) -> str:
    """What the caller probably meant: most 404s are a base URL with a /v1 too many or a
    prefix the gateway does not have."""
    if path.startswith("/v1/v1/"):
        return "the client added /v1 to a base URL that already ends in /v1: drop one"
    for served in (*_SERVED.split(", "), *_WITHOUT_V1):
        if path.endswith(served):
            return f"this gateway serves {served} at its root: point the base URL at it"
    return f"this gateway serves {_SERVED}, /status and /ui"


def reset_keys(name: str, stored: dict[str, Any]) -> list[str]:
    """The stored state keys `name` (as `status --reset` takes it) clears."""
    if "/" in name:  # a target's breaker: every key of it, or one
        found = [k for k in stored if k == f"breaker:{name}" or k.startswith(f"breaker:{name}#")]
    else:  # credentials: provider#N, provider#client, or the provider's every one
        prefix = f"credential:{name}:" if "#" in name else f"credential:{name}#"
        found = [k for k in stored if k.startswith(prefix)]
    return sorted(found)


def _speaks_openai(scope: Scope) -> bool:
    """An OpenAI client: no anthropic-version, no x-api-key, none of Anthropic's paging."""
    headers = dict(scope["headers"])
    if b"anthropic-version" in headers or b"x-api-key" in headers:
        return False
    return not _query(scope).keys() & {"limit", "after_id", "before_id"}


def _envelope(scope: Scope, path: str) -> Protocol:
    """The error envelope for a path: its protocol's, or for an unknown path under /v1/ (no
    protocol owns it), the one the client's headers point to; Anthropic's elsewhere."""
    protocol, endpoint = endpoint_for(path)
    unknown = endpoint == "messages" and not path.endswith("/messages")
    if unknown and path.startswith("/v1/"):
        return "openai" if _speaks_openai(scope) else "anthropic"
    return protocol


def _query(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))


def build_app(
    config: Config,
    *,
    registry: Any = None,
    tracer_provider: Any = None,
    clock: Clock = SYSTEM_CLOCK,
    transport: httpx.AsyncBaseTransport | None = None,
    state: StateStore | None = None,
    debug_capture: str | os.PathLike[str] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> RoutaticApp:
    """The assembled ASGI app for `config`.

    `registry` (a prometheus `CollectorRegistry`) and `tracer_provider` are injected, never
    global; `transport` replaces the network for tests; `state` replaces the store that
    `config.state` names; `debug_capture` names a directory to write every exchange to;
    `sleep` replaces the wait before a retry (tests pass one that advances a fake clock).
    """
    telemetry = Telemetry(registry=registry, tracer_provider=tracer_provider, clock=clock)
    if debug_capture is not None:
        transport = CaptureTransport(
            transport or Http11Transport(max_keepalive=256, keepalive_expiry=60)
        )
    store = state if state is not None else store_for(config.state, clock=clock)
    store = WatchedStore(store, telemetry.metrics, clock=clock)

    def assemble(config: Config) -> Assembly:
        return _assemble(
            config, telemetry, store, clock, transport, debug_capture, sleep or anyio.sleep
        )

    chain, upstreams, status = assemble(config)
    return RoutaticApp(
        config,
        chain,
        upstreams,
        telemetry,
        store=store,
        status=status,
        rebuild=assemble,
        clock=clock,
    )


def _assemble(
    config: Config,
    telemetry: Telemetry,
    store: WatchedStore,
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None,
    debug_capture: str | os.PathLike[str] | None,
    sleep: Callable[[float], Awaitable[None]],
) -> Assembly:
    """The chain for one configuration; telemetry and the state store outlive it."""
    upstreams = Upstreams(config, transport=transport)
    resilience = config.resilience
    # Every key this configuration holds, and each key_command prints as it comes.
    redactor = Redactor(secrets_of(config))
    relay: ASGIApp = UpstreamRelay(
        upstreams=upstreams,
        resilience=resilience,
        clock=clock,
        telemetry=telemetry,
        redactor=redactor,
    )
    breaker = CircuitBreaker(
        relay,
        store=store,
        policy=BreakerPolicy(
            resilience.cooldown,
            resilience.breaker.failures,
            resilience.breaker.probe_max,
            resilience.retry.max_wait if resilience.retry.attempts else 0.0,
        ),
        probe_timeout=resilience.deadline,
        clock=clock,
    )
    short_circuit = AuthShortCircuit(
        breaker,
        store=store,
        keyring=Keyring(config.providers, clock=clock, on_key=redactor.add),
        quota_cooldown=resilience.quota_cooldown,
        quota_recheck=resilience.quota_recheck,
        clock=clock,
    )
    routing = Routing(config, clock=clock)
    credentials = [c for pool in routing.credentials.values() for c in pool]
    # The breakers /status lists even while closed: every target whose model is fixed.
    fixed_targets = [
        f"{provider}/{model}" + (f"#{c.index}" if c else "")
        for route in config.routes
        for provider, model in iter_chain(route, "{model}")
        if "{model}" not in model
        for c in routing.credentials[provider] or (None,)
    ]

    async def status() -> dict[str, Any]:
        return {
            "now": clock(),
            "state": "memory" if config.state == "memory" else "redis",
            "state_degraded": store.degraded,
            "breakers": await breaker.status(fixed_targets),
            "credentials": await short_circuit.status(credentials),
        }

    router = FallbackRouter(
        short_circuit,
        routing=routing,
        resilience=resilience,
        max_body=config.server.max_body,
        clock=clock,
        telemetry=telemetry,
        sleep=sleep,
    )
    chain: ASGIApp = InboundAuth(router, keys=config.server.keys)
    chain = RequestRecording(chain, telemetry=telemetry, endpoint_for=endpoint_for)
    if debug_capture is not None:
        chain = DebugCapture(chain, directory=debug_capture, secrets=redactor)
    return chain, upstreams, status
