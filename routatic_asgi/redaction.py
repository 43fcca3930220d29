"""`Redactor`: every key the gateway holds, replaced by `[redacted]` wherever it appears.

Built once per app from the configuration's provider and proxy keys, and told of each key a
`key_command` prints as it arrives. The relay runs the error bodies it passes on from an
upstream through it (an upstream that echoes the key it was sent must not show it to the
client), and debug capture runs every file it writes through it, whatever a key's length.
It never logs, stores elsewhere or shows a secret; it holds them only to find them.
"""

from __future__ import annotations

from collections.abc import Iterable

from routatic_asgi.config import Config

__all__ = ["REDACTED", "Redactor", "secrets_of"]

REDACTED = "[redacted]"


def secrets_of(config: Config) -> list[str]:
    """Every secret the configuration holds: provider keys and inbound proxy keys."""
    keys = [key.get_secret_value() for p in config.providers.values() for key in p.keys]
    return keys + [inbound.key.get_secret_value() for inbound in config.server.keys]


class Redactor:
    """Replaces every known secret in bytes or text. Keys are added, never removed: a key a
    provider rotated away may still sit in a body that quotes an older request."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._texts: list[str] = []
        self._bytes: list[bytes] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        secret = secret.strip()
        if not secret or secret in self._texts:
            return
        # Longest first, so a key that contains another is replaced whole.
        self._texts = sorted([*self._texts, secret], key=len, reverse=True)
        self._bytes = [text.encode() for text in self._texts]

    def __bool__(self) -> bool:
        return bool(self._texts)

    def body(self, data: bytes) -> bytes:
        for secret in self._bytes:
            if secret in data:
                data = data.replace(secret, REDACTED.encode())
        return data

    def text(self, data: str) -> str:
        for secret in self._texts:
            if secret in data:
                data = data.replace(secret, REDACTED)
        return data
