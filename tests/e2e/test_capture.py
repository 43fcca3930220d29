"""Debug capture switched on from `routatic-asgi serve`: refused beyond loopback, announced
when on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REQUEST = {"model": "claude-x", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def _serve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "routatic_asgi.cli", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_serve_refuses_capture_beyond_loopback_without_the_flag(tmp_path: Path) -> None:
    config = tmp_path / "routatic.yaml"
    config.write_text(
        "server: {keys: [proxy-key-0001]}\n"
        "providers: {p: {protocol: anthropic, base_url: 'http://127.0.0.1:9', auth: none}}\n"
        "routes: [{match: '*', chain: [p/m]}]\n"
    )
    common = ("--config", str(config), "--host", "0.0.0.0")
    refused = _serve(*common, "--debug-capture", str(tmp_path / "c"), env={})
    assert refused.returncode == 2 and "--debug-capture-beyond-loopback" in refused.stderr
    from_env = _serve(*common, env={"ROUTATIC_DEBUG_CAPTURE": str(tmp_path / "c")})
    assert from_env.returncode == 2 and "--debug-capture-beyond-loopback" in from_env.stderr


def test_serve_says_when_capture_is_on(tmp_path: Path) -> None:
    config = tmp_path / "routatic.yaml"
    config.write_text(
        "providers: {p: {protocol: anthropic, base_url: 'http://127.0.0.1:9', auth: none}}\n"
        "routes: [{match: '*', chain: [p/m]}]\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "routatic_asgi.cli", "serve", "--port", "0",
         "--config", str(config), "--debug-capture", str(tmp_path / "c")],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        first = process.stderr.readline()
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
        process.stderr.close()
    assert first.startswith("routatic-asgi: debug capture is on") and str(tmp_path / "c") in first
