"""What the resilience tests share: scripted in-process upstreams, the app on them, a client.

`Upstreams` is an `httpx.MockTransport` handler: every host is a provider with a queue of
answers (an `httpx.Response`, a status code, or an async callable), answering like a healthy
provider when its queue is empty, and recording each call's host and headers.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import anyio
import httpx

from routatic_asgi import build_app
from routatic_asgi.config import Config
from routatic_asgi.state import MemoryStore, StateStore
from tests.fake_clock import FakeClock
from tests.fake_upstream import anthropic_message, openai_completion

MODEL = "claude-sonnet-4-6"
REQUEST = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}

Answer = httpx.Response | int | Callable[[httpx.Request], Awaitable[httpx.Response]]


class Upstreams:
    def __init__(self) -> None:
        self.queues: dict[str, deque[Answer]] = defaultdict(deque)
        self.calls: list[httpx.Request] = []

    def script(self, host: str, *answers: Answer) -> None:
        self.queues[host].extend(answers)

    def count(self, host: str) -> int:
        return sum(1 for call in self.calls if call.url.host == host)

    def keys(self, host: str) -> list[str]:
        """The credential each call to `host` carried."""
        found = []
        for call in self.calls:
            if call.url.host == host:
                value = call.headers.get("x-api-key") or call.headers.get("authorization", "")
                found.append(value.removeprefix("Bearer "))
        return found

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        queue = self.queues[request.url.host]
        answer = queue.popleft() if queue else 200
        if isinstance(answer, int):
            return healthy(request) if answer == 200 else error(answer)
        if isinstance(answer, httpx.Response):
            return answer
        return await answer(request)


class Body(httpx.AsyncByteStream):
    """A body the relay streams, as from the network (a `content=` body counts as read): its
    `chunks`, then, if `hang`, nothing more, ever (`hanging` is set when it starts waiting).
    `closed` says whether the gateway closed it."""

    def __init__(self, *chunks: bytes, hang: bool = False) -> None:
        self.chunks, self.hang, self.closed = chunks, hang, False
        self.hanging = anyio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.hang:
            self.hanging.set()
            await anyio.sleep_forever()

    async def aclose(self) -> None:
        self.closed = True


def sse(body: Body) -> httpx.Response:
    """A 200 event stream of `body`."""
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)


def respond(status: int, payload: Any, **headers: str) -> httpx.Response:
    data = json.dumps(payload).encode()
    headers = {"content-type": "application/json", "content-length": str(len(data)), **headers}
    return httpx.Response(status, headers=headers, stream=Body(data))


def healthy(request: httpx.Request, **headers: str) -> httpx.Response:
    model = json.loads(request.content).get("model", "")
    if request.url.path.endswith("/chat/completions"):
        return respond(200, openai_completion(model), **headers)
    return respond(200, anthropic_message(model), **headers)


def error(status: int, message: str = "boom", **headers: str) -> httpx.Response:
    body = {"type": "error", "error": {"type": "api_error", "message": message}}
    return respond(status, body, **headers)


def app_for(
    config: Config,
    upstreams: Callable[[httpx.Request], Coroutine[None, None, httpx.Response]],
    clock: FakeClock,
    *,
    store: StateStore | None = None,
    **options: Any,
) -> Any:
    """The app for `config` on `clock`, its upstreams in-process; `options` go to build_app."""
    return build_app(
        config,
        transport=httpx.MockTransport(upstreams),
        clock=clock,
        state=store if store is not None else MemoryStore(clock=clock),
        **options,
    )


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gateway")


async def ask(client: httpx.AsyncClient, **overrides: Any) -> httpx.Response:
    return await client.post("/v1/messages", json={**REQUEST, **overrides})
