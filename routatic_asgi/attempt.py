"""The objects the layers pass each other through the ASGI scope.

- `scope["routatic.endpoint"]`: the (protocol, endpoint) of the request's path, put there by
  the outermost layer that asks (`endpoint_of`); every inner layer reads it.
- `scope["routatic.request"]`: the `InboundRequest`, set by `FallbackRouter`.
- `scope["routatic.attempt"]`: the `Attempt` in flight, set by `FallbackRouter` per target.
- `scope["routatic.actor"]`: the name of the inbound key that let the client in.
- `scope["routatic.proxy_key_header"]`: the header that carried that key; never forwarded.
- `scope["routatic.hang_up"]`: callables the router runs the moment the client goes away,
  before cancellation unwinds the chain; the relay closes its upstream connection there.

An attempt's outcome is settled exactly once per call of the inner chain; layers that care
(breaker, metrics) hang listeners on it instead of reaching into each other. A layer that acts
on the outcome calls the inner chain through `call_then_act`; a layer that calls its target
again within the attempt (a key refreshed after a rejection) says so with `Attempt.retry`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from routatic_asgi.classify import Kind, Outcome, Reason
from routatic_asgi.session import Session

if TYPE_CHECKING:
    from routatic_asgi.config import ModelCaps

__all__ = [
    "ACTOR",
    "ATTEMPT",
    "DEADLINE",
    "ENDPOINT",
    "HANG_UP",
    "PROXY_KEY_HEADER",
    "REQUEST",
    "Attempt",
    "Credential",
    "Endpoint",
    "InboundRequest",
    "Protocol",
    "Target",
    "Usage",
    "call_then_act",
    "endpoint_for",
    "endpoint_of",
    "proxy_key_in_authorization",
    "target_key",
]

REQUEST = "routatic.request"
ENDPOINT = "routatic.endpoint"
ATTEMPT = "routatic.attempt"
ACTOR = "routatic.actor"
PROXY_KEY_HEADER = "routatic.proxy_key_header"
HANG_UP = "routatic.hang_up"
DEADLINE = "routatic.deadline"

Protocol = Literal["anthropic", "openai", "responses"]  # "openai" is Chat Completions
Endpoint = Literal["messages", "count_tokens", "chat_completions", "responses"]


def endpoint_for(path: str) -> tuple[Protocol, Endpoint]:
    """The protocol and endpoint a request path speaks (the front door it came in by)."""
    if path.endswith("/chat/completions"):
        return "openai", "chat_completions"
    if path.endswith("/responses"):
        return "responses", "responses"
    if path.endswith("/count_tokens"):
        return "anthropic", "count_tokens"
    return "anthropic", "messages"


def endpoint_of(scope: MutableMapping[str, Any]) -> tuple[Protocol, Endpoint]:
    """The request's protocol and endpoint: read from the scope, where the first layer to ask
    (the outermost) puts it, so it is worked out once per request."""
    found: tuple[Protocol, Endpoint] | None = scope.get(ENDPOINT)
    if found is None:
        found = endpoint_for(scope["path"])
        scope[ENDPOINT] = found
    return found


def proxy_key_in_authorization(scope: Mapping[str, Any]) -> bool:
    """`InboundAuth` took the proxy key from `Authorization`: that header is then no client
    credential, to forward or to mark."""
    return scope.get(PROXY_KEY_HEADER) == b"authorization"


logger = logging.getLogger("routatic_asgi")


@dataclass(frozen=True, slots=True)
class Credential:
    """A configured key of a provider. Its secret never appears in repr, logs or labels."""

    provider: str
    index: int
    secret: str = field(repr=False)
    source: str = ""  # what to check when it is rejected, e.g. the variable it came from

    @property
    def id(self) -> str:
        return credential_id(self.provider, self.index)

    @property
    def hint(self) -> str:
        return f"…{self.secret[-4:]}" if len(self.secret) >= 12 else "…"


@dataclass(frozen=True, slots=True)
class Target:
    """One place a request can be served: a provider, its model and the credential to use."""

    provider: str
    protocol: Protocol
    model: str
    base_url: str
    passthrough: bool = False
    credential: Credential | None = None
    # What the configuration says of it, resolved by `Routing` so that no layer below reads
    # the configuration: the model's capabilities (None: unstated), the provider's extra
    # request headers, and how a translated request keeps its prompt cache warm.
    caps: ModelCaps | None = field(default=None, compare=False)
    headers: tuple[tuple[bytes, bytes], ...] = field(default=(), compare=False)
    cache_control: bool = field(default=False, compare=False)
    auto_cache: bool = field(default=True, compare=False)

    @property
    def name(self) -> str:
        return f"{self.provider}/{self.model}"

    @property
    def key(self) -> str:
        """The breaker's key: a target is provider, model and credential."""
        return target_key(self.provider, self.model, self.credential)


def credential_id(provider: str, index: int) -> str:
    """`Credential.id`: the provider and the key's place in its `keys` (`zen#0`)."""
    return f"{provider}#{index}"


def target_key(provider: str, model: str, credential: Credential | None) -> str:
    """`Target.key`: provider, model and the credential's index (`zen/m#0`), for targets not
    made yet (the breakers /status lists while closed)."""
    name = f"{provider}/{model}"
    return name if credential is None else f"{name}#{credential.index}"


@dataclass(slots=True)
class Usage:
    """What a successful attempt cost and how it ended, as the upstream reported it."""

    input: int = 0  # uncached input tokens
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    stop_reason: str | None = None  # stop_reason (Anthropic) or finish_reason (OpenAI)
    model: str | None = None  # the model the upstream says served


@dataclass(slots=True, eq=False)
class Attempt:
    target: Target
    number: int  # 1-based among the attempts of this request that reached the chain
    first: bool  # the target is the chain's first: its client errors are the client's
    outcome: Outcome | None = None
    listeners: list[Callable[[Attempt], None]] = field(default_factory=list)
    # The upstream's response headers (by lower-case name), set before the outcome is
    # settled, so listeners can read rate-limit headers of a success too.
    upstream_headers: Mapping[str, str] = field(default_factory=dict)
    # The upstream's answer when it failed, kept small, so the router can return it as is.
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    # Tokens and stop reason, filled by the relay from the body or the stream's usage events.
    usage: Usage | None = None
    # Why an answer that had committed (outcome success) did not reach its end: an upstream
    # failure's reason, or "client_disconnected". None when it was delivered whole.
    broken: str | None = None
    # Set by the breaker: this call is a probe (or a call in panic) and is never retried;
    # this skip was of a breaker open on failures alone, which panic may call anyway.
    probe: bool = False
    may_panic: bool = False
    # Set by the router: every target of the route is open on failures alone; call this one.
    panic: bool = False
    # Set by the router: a break after the commit is left to the router to rescue (the relay
    # then neither sends the error event nor ends the stream).
    rescue: bool = False
    # Set by the router: how this attempt came about ("retried", "hedged", "rescued").
    via: Reason | None = None
    # The outcomes of earlier calls within this attempt, oldest first (see `retry`).
    retried: list[Outcome] = field(default_factory=list)

    def settle(self, outcome: Outcome) -> None:
        """Record the outcome once and tell every listener; a broken listener is logged."""
        if self.outcome is not None:
            return
        if self.via is not None and outcome.kind is Kind.SUCCESS:
            outcome = replace(outcome, reason=self.via)  # how it was served: "retried", ...
        self.outcome = outcome
        self._announce()

    def retry(self, target: Target) -> None:
        """Call the inner chain once more within this attempt, on `target` (its target with a
        fresh key after a rejection).

        The settled outcome moves to `retried` and the attempt is open again: every listener
        hears the retry now (`outcome` None, the earlier outcome last in `retried`) and the
        retry's own outcome when it settles, so observers count two upstream calls. Only a
        layer that held back every message of the earlier call may retry: the router sees one
        attempt, answered by its last call.
        """
        if self.outcome is None:
            raise RuntimeError("only a settled attempt can be retried")
        self.retried.append(self.outcome)
        self.target = target
        self.outcome = None
        self.upstream_headers = {}
        self._announce()

    def _announce(self) -> None:
        for listener in self.listeners:
            try:
                listener(self)
            except Exception:
                logger.exception("attempt listener failed")

    @property
    def succeeded(self) -> bool:
        return self.outcome is not None and self.outcome.kind is Kind.SUCCESS


async def call_then_act(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    attempt: Attempt,
    act: Callable[[], Awaitable[None]],
) -> None:
    """Call the inner `app` for `attempt` and run `act` once, as soon as the attempt settles.

    That is before the first message passed on after the outcome is known (a stream goes on
    while the breaker records its success), or when `app` returns having sent nothing after it
    (a skip, a failure held back, no answer at all: `attempt.outcome` may still be None then).
    When `app` raises, `act` does not run: the router settles the attempt for what ended it.
    """
    acted = False

    async def watching(message: Message) -> None:
        nonlocal acted
        if not acted and attempt.outcome is not None:
            acted = True
            await act()
        await send(message)

    await app(scope, receive, watching)
    if not acted:
        await act()


@dataclass(slots=True, eq=False)
class InboundRequest:
    protocol: Protocol  # the caller's protocol
    endpoint: Endpoint
    body: bytes
    payload: dict[str, Any]
    model: str
    stream: bool
    query: bytes = b""
    attempts: list[Attempt] = field(default_factory=list)
    route: str = ""  # the matched route's glob, a bounded label for metrics and logs
    session: Session | None = None  # the conversation it continues (see session.py)
