"""`Hedge`: a second target started beside a stream whose first content is slow.

When a streamed attempt has not committed after `resilience.hedge_after`, the router starts
the next target beside it; the first of the two to commit is relayed and the other is
cancelled at once (its connection closed). `first_byte_timeout` still ends each on its own.
It never relays bytes and never picks the targets: the router does both.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import anyio

from routatic_asgi.attempt import Attempt
from routatic_asgi.clock import Clock

__all__ = ["Hedge"]


class Hedge:
    """One request's race between a slow attempt and its hedge. Lives for one request."""

    def __init__(self) -> None:
        self.winner: Attempt | None = None
        self.outraced: set[Attempt] = set()  # attempts cancelled because the other committed
        self._scopes: dict[Attempt, anyio.CancelScope] = {}

    @contextmanager
    def running(self, attempt: Attempt) -> Iterator[None]:
        """Run an attempt in its own scope, so the other's commit can cancel it alone."""
        with anyio.CancelScope() as scope:
            self._scopes[attempt] = scope
            yield

    def may_send(self, attempt: Attempt) -> bool:
        """Only the winner's messages reach the client once one has committed."""
        return self.winner is None or self.winner is attempt

    def committed(self, attempt: Attempt) -> None:
        """`attempt` committed first: cancel the other at once."""
        self.winner = attempt
        for other, scope in self._scopes.items():
            if other is not attempt:
                self.outraced.add(other)
                scope.cancel()

    async def race(
        self,
        first: Callable[[], Coroutine[Any, Any, None]],
        second: Callable[[], Coroutine[Any, Any, None]],
        *,
        after: float,
        clock: Clock,
    ) -> bool:
        """Run `first`; start `second` beside it if `first` has neither committed nor ended
        after `after` seconds. Returns once both have ended; whether `second` was started."""
        ended = anyio.Event()

        async def run_first() -> None:
            try:
                await first()
            finally:
                ended.set()

        async with anyio.create_task_group() as group:
            group.start_soon(run_first)
            with clock.deadline(after):
                await ended.wait()
            if ended.is_set() or self.winner is not None:
                return False
            group.start_soon(second)
        return True
