"""Hot reload: a new configuration replaces the whole chain between two requests.

`Generation` is one configuration's chain with a count of the requests on it, so its upstream
clients close after the last of them (streams finish where they started). `ConfigWatcher`
reloads the server on SIGHUP and, when watching, when the file changes; a file that does not
validate is refused with a log line and the running configuration stays. Nothing here ever
drops a request in flight or logs a value from the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from typing import Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from routatic_asgi.config import Config, default_config, load_config
from routatic_asgi.errors import ConfigError
from routatic_asgi.upstream import Upstreams

__all__ = ["ConfigWatcher"]

logger = logging.getLogger("routatic_asgi.reload")


class Generation:
    """One configuration's chain. Counts the requests inside it, to close its upstream clients
    once it is retired and the last of them has finished."""

    def __init__(self, app: ASGIApp, upstreams: Upstreams) -> None:
        self.app = app
        self.upstreams = upstreams
        self.running = 0  # requests on this chain now: shared on purpose, not per request
        self.retired = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.running += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.running -= 1
            if self.retired and self.running == 0:
                await self.upstreams.aclose()

    async def retire(self) -> None:
        self.retired = True
        if self.running == 0:
            await self.upstreams.aclose()


class Reloadable(Protocol):
    config: Config

    async def reload(self, config: Config) -> None: ...


class ConfigWatcher:
    """Reloads `app` from `path` on SIGHUP, and on a change to the file when `watch` is on.

    `path` None is the embedded default, read again from the environment. Run `run()` as a
    task in the server's event loop; it owns SIGHUP while it runs.
    """

    def __init__(
        self, app: Reloadable, path: str | None, *, watch: bool, interval: float = 1.0
    ) -> None:
        self.app = app
        self.path = path
        self.watch = watch and path is not None
        self.interval = interval
        self.load: Callable[[], Config] = (
            (lambda: load_config(path)) if path is not None else default_config
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        asked = asyncio.Event()
        loop.add_signal_handler(signal.SIGHUP, asked.set)
        seen = self._stamp()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asked.wait(), self.interval if self.watch else None)
                stamp = self._stamp()
                if asked.is_set() or (self.watch and stamp != seen):
                    why = "SIGHUP" if asked.is_set() else "the file changed"
                    asked.clear()
                    seen = stamp
                    await self.reload(why)
        finally:
            loop.remove_signal_handler(signal.SIGHUP)

    async def reload(self, why: str) -> bool:
        source = self.path or "<embedded default>"
        try:
            config = self.load()
        except ConfigError as exc:
            problems = "; ".join(problem.line for problem in exc.problems)
            logger.error(
                "reload (%s) refused, still serving %s (hash %s): %s",
                why,
                source,
                self.app.config.digest,
                problems,
            )
            return False
        old = self.app.config
        if (config.state, config.server.host, config.server.port) != (
            old.state,
            old.server.host,
            old.server.port,
        ):
            logger.warning("reload: state, server.host and server.port apply at the next restart")
        await self.app.reload(config)
        logger.info("reloaded %s (%s): hash %s", source, why, config.digest)
        return True

    def _stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            stat = os.stat(self.path)
        except OSError:
            return None  # mid-save (an editor's rename): the next look sees the new file
        return (stat.st_mtime_ns, stat.st_size)
