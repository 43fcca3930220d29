"""The command line's edges: --version, ROUTATIC_CONFIG, --port, a closed pipe, the banner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from routatic_asgi import __version__
from tests.conftest import CLI, FakeUpstream, run
from tests.e2e.serving import serve

FALLBACK_VARIABLES = ("OPENCODE_API_KEY", "OPENROUTER_API_KEY", "DEEPSEEK_API_KEY")


def clean_environment(**extra: str) -> dict[str, str]:
    kept = {
        k: v
        for k, v in os.environ.items()
        if k not in FALLBACK_VARIABLES and k != "ROUTATIC_CONFIG"
    }
    return {**kept, **extra}


def test_version() -> None:
    result = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout.strip() == f"routatic-asgi {__version__}"


def test_a_bad_port_is_a_usage_error() -> None:
    for port in ("70000", "-1", "http"):
        result = run("serve", "--port", port)
        assert result.returncode == 2
        assert "is not a port: give a number 0-65535" in result.stderr
        assert "Traceback" not in result.stderr


def test_schema_into_a_closed_pipe_prints_no_traceback() -> None:
    result = subprocess.run(
        f"{sys.executable} -m routatic_asgi.cli schema | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        timeout=30,
        env=os.environ,
    )
    assert result.stdout.startswith("{")
    assert result.stderr == ""


def test_routatic_config_is_what_check_and_serve_use(upstream: FakeUpstream, tmp_path: Path) -> None:
    prefix = upstream.provider()
    path = tmp_path / "from-env.yaml"
    path.write_text(
        f'providers: {{only: {{protocol: anthropic, base_url: "{upstream.url(prefix)}", auth: none}}}}\n'
        'routes: [{match: "*", chain: ["only/fixed-model"]}]\n'
    )
    environment = clean_environment(ROUTATIC_CONFIG=str(path))
    checked = subprocess.run(
        [*CLI, "check"], capture_output=True, text=True, timeout=30, env=environment
    )
    assert checked.returncode == 0
    assert checked.stdout.startswith(f"{path}: ok")
    assert "-> only/fixed-model" in checked.stdout
    with serve(env=environment) as server:
        response = httpx.post(
            f"{server.url}/v1/messages", json={"model": "claude-x", "max_tokens": 5, "messages": []}
        )
    assert response.headers["x-routatic-target"] == "only/fixed-model"
    assert f"routatic-asgi: {path}, no proxy keys" in server.text()


def test_the_banner_says_which_default_providers_were_left_out_and_why() -> None:
    environment = clean_environment(OPENCODE_API_KEY="sk-zen-banner-0001")
    checked = subprocess.run(
        [*CLI, "check"], capture_output=True, text=True, timeout=30, env=environment
    )
    assert checked.returncode == 0
    assert "openrouter left out: OPENROUTER_API_KEY is not set" in checked.stdout
    assert "deepseek left out: DEEPSEEK_API_KEY is not set" in checked.stdout
    assert "zen left out" not in checked.stdout
    with serve(env=environment) as server:
        pass
    startup = server.text()
    assert "routatic-asgi: openrouter left out: OPENROUTER_API_KEY is not set" in startup
    assert "-> zen/deepseek-v4-flash" in startup
    assert "sk-zen-banner-0001" not in startup


def test_workers_with_memory_state_are_warned_about() -> None:
    with serve("--workers", "2", env=clean_environment()) as server:
        pass
    warned = [line for line in server.said if "warning: --workers 2 with state: memory" in line]
    assert warned, "serve never warned about per-worker state: " + server.text()
    assert "set state: redis://" in warned[0]
