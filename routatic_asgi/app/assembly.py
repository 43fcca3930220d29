"""`build_app`: assemble the middleware chain for a configuration.

This is the only module that knows the order of the layers. It hands every layer the same
`Clock`, `Telemetry` and `StateStore`; a reload assembles a new chain around the same ones.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx
from starlette.types import ASGIApp

from routatic_asgi.app.gateway import Assembly, RoutaticApp, StateDesk
from routatic_asgi.attempt import target_key
from routatic_asgi.breaker import BreakerPolicy, CircuitBreaker
from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.config import Config, iter_chain
from routatic_asgi.http11 import Http11Transport
from routatic_asgi.inbound_auth import InboundAuth
from routatic_asgi.keyring import Keyring
from routatic_asgi.memory_budget import MemoryBudget
from routatic_asgi.redaction import Redactor, secrets_of
from routatic_asgi.relay import UpstreamRelay
from routatic_asgi.replay import ReasoningMemory
from routatic_asgi.router import FallbackRouter
from routatic_asgi.routing import Routing
from routatic_asgi.short_circuit import AuthShortCircuit
from routatic_asgi.state import StateStore, state_kind, store_for
from routatic_asgi.telemetry import RequestRecording, Telemetry
from routatic_asgi.telemetry.capture import CaptureTransport, DebugCapture
from routatic_asgi.telemetry.state_watch import StateWatch
from routatic_asgi.transitions import Board
from routatic_asgi.upstream import Upstreams

__all__ = ["build_app"]


def build_app(
    config: Config,
    *,
    registry: Any = None,
    tracer_provider: Any = None,
    clock: Clock = SYSTEM_CLOCK,
    transport: httpx.AsyncBaseTransport | None = None,
    state: StateStore | None = None,
    debug_capture: str | os.PathLike[str] | None = None,
) -> RoutaticApp:
    """The assembled ASGI app for `config`.

    `registry` (a prometheus `CollectorRegistry`) and `tracer_provider` are injected, never
    global; `transport` replaces the network for tests; `state` replaces the store that
    `config.state` names; `debug_capture` names a directory to write every exchange to.
    `clock` is every part's time: tests pass a fake one, whose `sleep` moves it on.
    """
    telemetry = Telemetry(registry=registry, tracer_provider=tracer_provider, clock=clock)
    if debug_capture is not None:
        transport = CaptureTransport(
            transport or Http11Transport(max_keepalive=256, keepalive_expiry=60)
        )
    store = state if state is not None else store_for(config.state, clock=clock)
    # The layers announce their transitions here, across reloads; telemetry listens.
    boards = (Board.for_breakers(), Board.for_credentials())
    StateWatch(telemetry.metrics, boards, clock=clock, degraded=lambda: store.degraded)

    # What large request bodies may hold at once: one budget for every generation.
    body_memory = MemoryBudget(config.server.body_memory, clock=clock)

    def assemble(config: Config) -> Assembly:
        body_memory.limit = config.server.body_memory
        return _assemble(
            config, telemetry, store, boards, clock, transport, debug_capture, body_memory
        )

    chain, upstreams, desk = assemble(config)
    return RoutaticApp(
        config,
        chain,
        upstreams,
        telemetry,
        store=store,
        desk=desk,
        rebuild=assemble,
        clock=clock,
    )


def _assemble(
    config: Config,
    telemetry: Telemetry,
    store: StateStore,
    boards: tuple[Board, Board],
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None,
    debug_capture: str | os.PathLike[str] | None,
    body_memory: MemoryBudget,
) -> Assembly:
    """The chain for one configuration; telemetry, the state store and the body memory
    budget outlive it."""
    upstreams = Upstreams(config, transport=transport)
    resilience = config.resilience
    # Model labels: the names this configuration writes; a client's other choices collapse.
    telemetry.metrics.model.only(config.named_models())
    # Every key this configuration holds, and each key_command prints as it comes.
    redactor = Redactor(secrets_of(config))
    relay: ASGIApp = UpstreamRelay(
        upstreams=upstreams,
        resilience=resilience,
        clock=clock,
        telemetry=telemetry,
        redactor=redactor,
        memory=ReasoningMemory(store),
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
        board=boards[0],
    )
    short_circuit = AuthShortCircuit(
        breaker,
        store=store,
        keyring=Keyring(config.providers, clock=clock, on_key=redactor.add),
        quota_cooldown=resilience.quota_cooldown,
        quota_recheck=resilience.quota_recheck,
        clock=clock,
        board=boards[1],
    )
    routing = Routing(config, clock=clock)
    credentials = [c for pool in routing.credentials.values() for c in pool]
    # The breakers /status lists even while closed: every target whose model is fixed.
    fixed_targets = [
        target_key(provider, model, credential)
        for route in config.routes
        for provider, model in iter_chain(route, "{model}")
        if "{model}" not in model
        for credential in routing.credentials[provider] or (None,)
    ]

    async def status() -> dict[str, Any]:
        return {
            "now": clock(),
            "state": state_kind(config.state),
            "state_degraded": store.degraded,
            "breakers": await breaker.status(fixed_targets),
            "credentials": await short_circuit.status(credentials),
        }

    router = FallbackRouter(
        short_circuit,
        routing=routing,
        resilience=resilience,
        max_body=config.server.max_body,
        body_memory=body_memory,
        clock=clock,
        telemetry=telemetry,
    )
    chain: ASGIApp = InboundAuth(router, keys=config.server.keys)
    chain = RequestRecording(chain, telemetry=telemetry)
    if debug_capture is not None:
        chain = DebugCapture(chain, directory=debug_capture, secrets=redactor)

    async def reset(name: str) -> list[str]:
        if "/" in name:  # a target's breakers; otherwise credentials
            return await breaker.reset(name)
        return await short_circuit.marks.reset(name)

    async def forget(providers: Sequence[str]) -> None:
        await breaker.forget(providers)
        await short_circuit.marks.forget(providers)

    return chain, upstreams, StateDesk(status, reset, forget)
