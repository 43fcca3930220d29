"""The end-to-end tests' fixtures (their servers: serving.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.translation_kit import SDK


@pytest.fixture
def sdk() -> Iterator[SDK]:
    """The official clients a test makes, closed when it ends."""
    clients = SDK()
    yield clients
    for client in clients.made:
        client.close()
