"""`Keyring`: the key to send for each credential a provider's `key_command` can refresh.

A provider may have `key_command`, a shell command that prints a fresh key or token (rotating
keys, OAuth). The keyring runs it on the first request of a provider with no `keys`, and again
when `AuthShortCircuit` reports a 401, at most one run at a time per provider, with a 10 s
limit; the fresh key replaces the rejected credential (same provider and index). It never logs,
stores or shows a key, nor the command's output; only whether the command worked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping

import anyio

from routatic_asgi.attempt import Credential, Target, credential_id
from routatic_asgi.clock import SYSTEM_CLOCK, Clock
from routatic_asgi.config import ProviderConfig

__all__ = ["Keyring", "run_key_command"]

CommandRunner = Callable[[str, float], Awaitable[str | None]]
logger = logging.getLogger("routatic_asgi")

KEY_COMMAND_TIMEOUT = 10.0


async def run_key_command(command: str, limit: float) -> str | None:
    """Run `command` in a shell; its first line of output is the key (None on any failure)."""
    process = await asyncio.create_subprocess_shell(
        command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so a timeout kills its children too
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        logger.warning("key_command timed out after %.0f s", limit)
        return None
    if process.returncode != 0:
        logger.warning("key_command exited with status %s", process.returncode)
        return None
    lines = output.decode("utf-8", "replace").strip().splitlines()
    return lines[0].strip() if lines and lines[0].strip() else None


class Keyring:
    """The current key of every credential a `key_command` can refresh.

    Until the command has run, a credential is the configured one; a provider with only a
    `key_command` gets credential #0 from its first run, and after a failed first run waits
    `pause` seconds before running it again. One run at a time per provider, and a 401 on a
    key that was already replaced uses the replacement instead of running again.
    """

    def __init__(
        self,
        providers: Mapping[str, ProviderConfig],
        *,
        run: CommandRunner = run_key_command,
        timeout: float = KEY_COMMAND_TIMEOUT,
        pause: float = 60.0,
        clock: Clock = SYSTEM_CLOCK,
        on_key: Callable[[str], None] | None = None,
    ) -> None:
        self.commands = {
            name: provider.key_command
            for name, provider in providers.items()
            if provider.key_command and not provider.passthrough
        }
        self.run = run
        self.timeout = timeout
        self.pause = pause
        self.clock = clock
        self.on_key = on_key  # told of each fresh key, so it can be redacted wherever it shows
        self._fresh: dict[str, Credential] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._failed_at: dict[str, float] = {}

    def can_refresh(self, provider: str) -> bool:
        return provider in self.commands

    def known(self) -> list[Credential]:
        return list(self._fresh.values())

    async def current(self, target: Target) -> Credential | None:
        credential = target.credential
        if target.provider not in self.commands:
            return credential
        fresh = self._fresh.get(credential.id if credential else f"{target.provider}#0")
        if fresh is not None:
            return fresh
        if credential is None:
            failed_at = self._failed_at.get(target.provider)
            if failed_at is not None and self.clock.monotonic() - failed_at < self.pause:
                return None
            return await self.refresh(target.provider, None)
        return credential

    async def refresh(self, provider: str, stale: Credential | None) -> Credential | None:
        """A fresh key in place of `stale` (None: the command failed or printed the same)."""
        index = stale.index if stale is not None else 0
        lock = self._locks.setdefault(provider, anyio.Lock())
        async with lock:
            fresh = self._fresh.get(credential_id(provider, index))
            if fresh is not None and (stale is None or fresh.secret != stale.secret):
                return fresh
            secret = await self.run(self.commands[provider], self.timeout)
            if not secret or (stale is not None and secret == stale.secret):
                if stale is None:
                    self._failed_at[provider] = self.clock.monotonic()
                return None
            if self.on_key is not None:
                self.on_key(secret)
            fresh = Credential(provider, index, secret, f"providers.{provider}.key_command")
            self._fresh[fresh.id] = fresh
            return fresh
