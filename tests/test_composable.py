"""Each layer is a pure ASGI class usable alone, and `__all__` is the public API."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

import routatic_asgi
from routatic_asgi import (
    Board,
    CircuitBreaker,
    FallbackRouter,
    InboundAuth,
    Kind,
    Outcome,
    Routing,
    Transition,
)
from routatic_asgi.attempt import ACTOR, ATTEMPT, Attempt, Target
from routatic_asgi.config import InboundKey
from tests.conftest import gateway_config

pytestmark = pytest.mark.anyio


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"x-actor", scope[ACTOR].encode())],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


async def test_inbound_auth_guards_any_asgi_app() -> None:
    app = InboundAuth(hello, keys=[InboundKey(name="ci", key="rk-ci")])  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        refused = await client.post("/v1/messages")
        allowed = await client.post("/anything", headers={"x-routatic-key": "rk-ci"})
    assert refused.status_code == 401
    assert (allowed.status_code, allowed.text, allowed.headers["x-actor"]) == (200, "hello", "ci")


async def test_the_router_drives_any_inner_app_over_its_targets() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        attempt: Attempt = scope[ATTEMPT]
        seen.append(attempt.target.name)
        body = (await receive())["body"]
        if attempt.target.provider == "down":
            attempt.settle(Outcome(Kind.TRANSIENT, "connect_error"))
            return
        attempt.settle(Outcome(Kind.SUCCESS, "ok"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    config = gateway_config(
        {
            "down": {"protocol": "anthropic", "base_url": "http://d", "auth": "none"},
            "up": {"protocol": "anthropic", "base_url": "http://u", "auth": "none"},
        },
        [{"match": "*", "chain": ["down/{model}", "up/{model}"]}],
        resilience={"retry": {"attempts": 0}},
    )
    router = FallbackRouter(inner, routing=Routing(config), resilience=config.resilience)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(router), base_url="http://t"
    ) as client:
        response = await client.post("/v1/messages", json={"model": "m"})
    assert seen == ["down/m", "up/m"]
    assert response.json() == {"model": "m"}
    assert response.headers["x-routatic-fallback"] == "down/m=connect_error"


async def test_a_breaker_used_alone_announces_its_transitions_to_a_listener() -> None:
    heard: list[Transition] = []
    board = Board.for_breakers()
    board.listeners.append(heard.append)

    async def down(scope: Scope, receive: Receive, send: Send) -> None:
        scope[ATTEMPT].settle(Outcome(Kind.TRANSIENT, "connect_error"))

    breaker = CircuitBreaker(down, board=board)
    target = gateway_target()
    for _ in range(2):  # two failures in a row open it
        await breaker({"type": "http", ATTEMPT: Attempt(target, 1, True)}, _nothing, _nothing)
    [opened] = heard
    assert (opened.subject.key, opened.state, opened.reason, opened.here) == (
        "down/m",
        "open",
        "connect_error",
        True,
    )


def gateway_target() -> Target:
    return Target("down", "anthropic", "m", "http://d")


async def _nothing(*args: Any) -> Any:
    raise AssertionError("the breaker neither reads nor sends here")


def test_all_names_the_public_api() -> None:
    exported = set(routatic_asgi.__all__)
    for module in pkgutil.walk_packages(routatic_asgi.__path__, "routatic_asgi."):
        loaded: Any = importlib.import_module(module.name)
        for name in getattr(loaded, "__all__", []):
            value = getattr(loaded, name)
            if (
                inspect.isclass(value)
                and "__call__" in vars(value)
                and "scope" in str(inspect.signature(value.__call__))
            ):
                assert name in exported, (
                    f"ASGI class {module.name}.{name} is missing from routatic_asgi.__all__"
                )
    for name in exported:
        assert hasattr(routatic_asgi, name)
    assert "build_app" in exported
