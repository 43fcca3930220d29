"""Debug capture switched on from `routatic-asgi serve`: refused beyond loopback, announced
when on."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run
from tests.e2e.serving import serve


def test_serve_refuses_capture_beyond_loopback_without_the_flag(tmp_path: Path) -> None:
    config = tmp_path / "routatic.yaml"
    config.write_text(
        "server: {keys: [proxy-key-0001]}\n"
        "providers: {p: {protocol: anthropic, base_url: 'http://127.0.0.1:9', auth: none}}\n"
        "routes: [{match: '*', chain: [p/m]}]\n"
    )
    common = ("--config", str(config), "--host", "0.0.0.0")
    refused = run("serve", *common, "--debug-capture", str(tmp_path / "c"))
    assert refused.returncode == 2 and "--debug-capture-beyond-loopback" in refused.stderr
    from_env = run("serve", *common, env={"ROUTATIC_DEBUG_CAPTURE": str(tmp_path / "c")})
    assert from_env.returncode == 2 and "--debug-capture-beyond-loopback" in from_env.stderr


def test_serve_says_when_capture_is_on(tmp_path: Path) -> None:
    config = tmp_path / "routatic.yaml"
    config.write_text(
        "providers: {p: {protocol: anthropic, base_url: 'http://127.0.0.1:9', auth: none}}\n"
        "routes: [{match: '*', chain: [p/m]}]\n"
    )
    with serve("--config", str(config), "--debug-capture", str(tmp_path / "c")) as server:
        first = server.said[0]
    assert first.startswith("routatic-asgi: debug capture is on") and str(tmp_path / "c") in first
