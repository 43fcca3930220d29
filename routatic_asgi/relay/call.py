"""`RelayCall`: the parameters of one upstream call, travelling as one object.

The relay's parts (answer.py, stream.py) read the call's attempt, exchange, `send` and
first-byte timer from it, and what every call of one relay shares (`RelaySettings`). Beside
it, what they all need: how a transport failure or a break after the commit is recorded, and
how a body is read. No decisions of its own: classification is the classify package's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from starlette.types import Send

from routatic_asgi.attempt import Attempt
from routatic_asgi.classify import Kind, Outcome, Reason, classify_exception
from routatic_asgi.clock import Clock, Deadline
from routatic_asgi.exchange import Exchange
from routatic_asgi.redaction import Redactor
from routatic_asgi.translate.pivot import TranslationError

__all__ = [
    "MALFORMED",
    "UNARMED",
    "RelayCall",
    "RelaySettings",
    "Unarmed",
    "last",
    "raw",
    "read_ahead",
]

# What a translation raises on an event or body of a shape it cannot read: the upstream's
# fault, handled like a broken stream, never a traceback.
MALFORMED = (TranslationError, TypeError, ValueError, KeyError, AttributeError, IndexError)

logger = logging.getLogger("routatic_asgi")


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """What every call of one relay shares."""

    fallback_on: frozenset[int]
    max_wait: float  # the longest wait a relayed Retry-After may ask for
    clock: Clock
    redactor: Redactor


class Unarmed:
    """The relay's timer when an enclosing deadline fires first anyway: nothing is armed (a
    cancel scope's entry, exit and timer are 3% of a short request's instructions)."""

    __slots__ = ()
    expired = False

    def __enter__(self) -> Unarmed:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def stop(self) -> None:
        return None


UNARMED = Unarmed()


@dataclass(slots=True, eq=False)
class RelayCall:
    """One upstream call of one attempt: what its answer is relayed with."""

    attempt: Attempt
    exchange: Exchange
    send: Send
    first_byte: Deadline | Unarmed  # stopped at the first content; its expiry fails the attempt
    settings: RelaySettings

    @property
    def gone(self) -> bool:
        """The client hung up: what fails next is nobody's failure."""
        return self.attempt.broken == Reason.CLIENT_DISCONNECTED

    def failure(self, exc: httpx.HTTPError) -> Outcome:
        """A transport failure's outcome: nobody's failure when the client hung up first."""
        if self.gone:
            return Outcome(Kind.CANCELLED, Reason.CLIENT_DISCONNECTED)
        return classify_exception(exc)

    def broke(self, reason: str) -> None:
        """A committed answer broke off upstream: one warning line, no traceback."""
        self.attempt.broken = reason
        logger.warning(
            "the answer from %s broke off after it had begun: %s",
            self.attempt.target.name,
            reason,
        )


def last(body: bytes) -> dict[str, object]:
    """The message that ends a response's body."""
    return {"type": "http.response.body", "body": body, "more_body": False}


def raw(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as the transport hands it over: `aiter_raw` without the bookkeeping it adds to
    every response (a context manager, a chunker, a generator), which the relay never reads."""
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    return aiter(stream)


async def read_ahead(body: AsyncIterator[bytes], limit: int) -> tuple[bytes, bool]:
    """The body's first bytes, up to just past `limit`, and whether that was all of it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in body:
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
    return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), True
