"""`MemoryBudget`: what the large request bodies of one process may hold at once, parsed.

A body's parsed size is not its length (dense JSON makes some 64 bytes of objects for every
3 bytes of text), and each request's own cap does nothing against many of them at once. So a
body of 1 MiB or more is admitted before it is parsed: its bytes and what parsing builds are
counted against one budget shared by every request, held until the request ends. One that
does not fit waits, first come first served, for a short while; one that could never fit is
told so at once. Smaller bodies are not counted: they are bounded by the connection limit.

It never reads a body and never decides what the client is told: it only counts.
"""

from __future__ import annotations

import asyncio
from collections import deque

from routatic_asgi.clock import SYSTEM_CLOCK, Clock

__all__ = ["BODY_MEMORY", "COUNTED", "Hold", "MemoryBudget"]

COUNTED = 1024 * 1024  # bodies from this length on are admitted through the budget
BODY_MEMORY = 1024**3  # the default budget: a few of the largest bodies, many images


class MemoryBudget:
    """Bytes held by admitted requests, at most `limit`; waiters are admitted in order."""

    def __init__(self, limit: int, *, wait: float = 5.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self.limit, self.wait, self.clock = limit, wait, clock
        self.held = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    def hold(self) -> Hold:
        """A request's share, empty until it takes some."""
        return Hold(self)

    async def _take(self, cost: int) -> bool:
        if not self._waiting and self.held + cost <= self.limit:
            self.held += cost
            return True
        entry = (cost, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        try:
            with self.clock.deadline(self.wait):
                await entry[1]
        except BaseException:
            self._forget(entry)
            raise
        if _admitted(entry):
            return True
        self._forget(entry)
        return False

    def _forget(self, entry: tuple[int, asyncio.Future[None]]) -> None:
        """A waiter gave up: out of the line, or, admitted just as it did, its bytes back."""
        if _admitted(entry):
            self._give(entry[0])
            return
        if entry in self._waiting:
            self._waiting.remove(entry)
        self._admit_waiting()  # those behind it may fit now

    def _give(self, cost: int) -> None:
        self.held -= cost
        self._admit_waiting()

    def _admit_waiting(self) -> None:
        while self._waiting:
            cost, admitted = self._waiting[0]
            if admitted.done():  # it gave up, and has yet to leave the line itself
                self._waiting.popleft()
                continue
            if self.held + cost > self.limit:
                return
            self._waiting.popleft()
            self.held += cost
            admitted.set_result(None)


def _admitted(entry: tuple[int, asyncio.Future[None]]) -> bool:
    return entry[1].done() and not entry[1].cancelled()


class Hold:
    """One request's share of the budget: taken once, given back when the request ends."""

    __slots__ = ("budget", "cost")

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget, self.cost = budget, 0

    def fits(self, cost: int) -> bool:
        """Whether `cost` could ever be admitted."""
        return cost <= self.budget.limit

    async def take(self, cost: int) -> bool:
        """Hold `cost` bytes, waiting up to the budget's `wait` for them; False if they did
        not come in time."""
        if await self.budget._take(cost):
            self.cost = cost
            return True
        return False

    def release(self) -> None:
        """The request has ended: what it held goes to the next in line."""
        if self.cost:
            self.budget._give(self.cost)
            self.cost = 0
