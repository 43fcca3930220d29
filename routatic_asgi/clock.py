"""`Clock`: the one source of time, handed by `build_app` to every part that reads it.

A clock tells wall time (`clock()`, epoch seconds: cooldowns, resets, records), monotonic
time (`clock.monotonic()`: durations, pauses) and arms deadlines (`clock.deadline(seconds)`:
the router's total deadline, the relay's first-byte timer). A test hands the app a clock it
moves by hand, so cooldowns, deadlines and timeouts pass without waiting.

It never sleeps and never decides anything: it only says what time it is and cancels a
scope when its time has come.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from types import TracebackType

import anyio

__all__ = ["SYSTEM_CLOCK", "Clock", "Deadline"]


class Deadline:
    """A cancel scope that is cancelled when its time comes, unless stopped before."""

    __slots__ = ("_now", "at", "scope", "stopped")

    def __init__(self, scope: anyio.CancelScope, at: float, now: Callable[[], float]) -> None:
        """`at` is a moment on the `now` time line (the clock's, not necessarily wall time)."""
        self.scope, self.at, self.stopped, self._now = scope, at, False, now

    def __enter__(self) -> Deadline:
        self.scope.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return bool(self.scope.__exit__(exc_type, exc, tb))

    def stop(self) -> None:
        """The wait is over (the answer committed, the first byte came): never fire."""
        self.stopped = True
        self.scope.deadline = math.inf

    def cancel(self) -> None:
        """End the scope now, for a reason other than time (a client that went away)."""
        self.scope.cancel()

    def remaining(self) -> float:
        """Seconds until it fires (infinite once stopped)."""
        return math.inf if self.stopped else self.at - self._now()

    @property
    def expired(self) -> bool:
        """Whether the scope ended by cancellation (its time came, or `cancel`)."""
        return self.scope.cancelled_caught


class Clock:
    """The system's clock. Stateless: one instance may serve every app."""

    def __call__(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.perf_counter()

    def deadline(self, seconds: float) -> Deadline:
        # The event loop's clock is anyio's; reading it directly skips sniffio's lookup.
        loop = asyncio.get_running_loop()
        at = loop.time() + seconds
        return Deadline(_cancel_scope(at), at, loop.time)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


def _cancel_scope(at: float) -> anyio.CancelScope:
    """`anyio.CancelScope(deadline=at)` on asyncio, without asking sniffio which library runs
    (a task lookup on every scope: 2 of its 5 µs, twice a request)."""
    global _SCOPE
    if _SCOPE is None:
        scope = anyio.CancelScope(deadline=at)
        _SCOPE = type(scope)
        return scope
    return _SCOPE(deadline=at)


# The asyncio backend's cancel scope class, learnt from the first scope made.
_SCOPE: type[anyio.CancelScope] | None = None

SYSTEM_CLOCK = Clock()
