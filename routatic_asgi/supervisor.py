"""`serve --workers N`: uvicorn's worker supervisor, with SIGHUP meaning "reload", not "restart".

uvicorn's own supervisor answers SIGHUP by replacing every worker, which forgets each one's
in-memory breakers. Here SIGHUP is passed on to the workers, each of which reloads its
configuration in place (see reload.py). It never touches a request.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from uvicorn import Config
from uvicorn.supervisors import Multiprocess

from routatic_asgi.connections import ConnectionLimits, guard

__all__ = ["run_workers"]

logger = logging.getLogger("routatic_asgi.reload")


class _Supervisor(Multiprocess):
    def handle_hup(self) -> None:
        logger.info("SIGHUP: each worker reloads its configuration")
        for process in self.processes:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)


def run_workers(
    app: str, workers: int, *, limits: ConnectionLimits | None = None, **options: Any
) -> None:
    """What `uvicorn.run(app, factory=True, workers=N)` does, with the supervisor above and
    each worker's connections guarded by `limits`."""
    config = guard(
        Config(app, factory=True, workers=workers, **options), limits or ConnectionLimits()
    )
    sock = config.bind_socket()
    try:
        _Supervisor(config, sockets=[sock]).run()
    finally:
        sock.close()
