"""The tests' one fake clock: time moves only when a test (or a pause) moves it.

Moving it (`clock.now += 30`, `clock.advance(30)`, or the gateway's own `await
clock.sleep(30)`) fires every deadline the gateway armed on it whose time has come, so
deadline, timeout and retry tests run without waiting. It may be moved from the test's
thread while a served gateway runs on another: a deadline is fired on the event loop that
armed it.
"""

from __future__ import annotations

import asyncio

import anyio

from routatic_asgi.clock import Clock, Deadline

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class FakeClock(Clock):
    def __init__(self, now: float = NOW) -> None:
        self._now = now
        self.slept: list[float] = []  # every pause the gateway took, in order
        self._armed: list[tuple[Deadline, asyncio.AbstractEventLoop]] = []

    @property
    def now(self) -> float:
        return self._now

    @now.setter
    def now(self, value: float) -> None:
        self._now = value
        due = [(d, loop) for d, loop in self._armed if d.at <= value and not d.stopped]
        self._armed = [(d, loop) for d, loop in self._armed if d.at > value and not d.stopped]
        for deadline, loop in due:
            if _running_loop() is loop:
                deadline.cancel()
            else:
                loop.call_soon_threadsafe(deadline.cancel)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        """A pause moves the clock on instead of waiting, and is remembered."""
        self.slept.append(seconds)
        self.now += seconds

    def deadline(self, seconds: float) -> Deadline:
        deadline = Deadline(anyio.CancelScope(), self._now + seconds, self)
        self._armed.append((deadline, asyncio.get_running_loop()))
        return deadline


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
