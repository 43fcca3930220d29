"""The launchers' own options lead; everything after them, or after `--`, is the client's."""

from __future__ import annotations

from typing import Any

import pytest

import routatic_asgi.cli as cli
import routatic_asgi.launch as launch


def launched(monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[list[str], Any, Any]:
    seen: list[tuple[list[str], Any, Any]] = []
    monkeypatch.delenv("ROUTATIC_CONFIG", raising=False)
    monkeypatch.setattr(cli, "load", lambda path: path)
    monkeypatch.setattr(
        launch, "launch", lambda client, rest, config, path, port: seen.append((rest, config, port)) or 0
    )
    assert cli.main(list(argv)) == 0
    [call] = seen
    return call


def test_a_leading_config_is_the_launchers_and_after_dashes_it_is_codexs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert launched(monkeypatch, "codex", "--config", "r.yaml", "exec", "hi") == (["exec", "hi"], "r.yaml", None)
    through = launched(monkeypatch, "codex", "--", "--config", "model=o3", "exec", "hi")
    assert through == (["--config", "model=o3", "exec", "hi"], None, None)


def test_options_after_the_clients_first_argument_are_the_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    rest, config, port = launched(monkeypatch, "codex", "exec", "--config", "model=o3", "--port", "1")
    assert (rest, config, port) == (["exec", "--config", "model=o3", "--port", "1"], None, None)
