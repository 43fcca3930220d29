"""`routatic-asgi claude|codex|opencode`: the real clients, run through a gateway the launcher
starts (and stops), or one already listening; arguments and exit codes pass through."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from routatic_asgi import build_app, parse_config
from tests.conftest import CLI, FakeUpstream
from tests.e2e.serving import free_port, listening, serve

CLAUDE, CODEX, OPENCODE = shutil.which("claude"), shutil.which("codex"), shutil.which("opencode")
PROXY_KEY = "proxy-key-launch-0001"


def client_environment(home: Path, **extra: str) -> dict[str, str]:
    """What a user's shell would hold: PATH, a fresh HOME, and how to find the package."""
    environment = {"PATH": os.environ["PATH"], "HOME": str(home), **extra}
    if "PYTHONPATH" in os.environ:
        environment["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return environment


def write_config(tmp_path: Path, providers: str, chain: str, keys: bool = True) -> Path:
    path = tmp_path / "routatic.yaml"
    server = f'server: {{keys: ["{PROXY_KEY}"]}}\n' if keys else ""
    path.write_text(f'{server}providers:\n{providers}routes: [{{match: "*", chain: [{chain}]}}]\n')
    return path


def launch(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=240, env=env, cwd=cwd
    )


@pytest.mark.skipif(CLAUDE is None, reason="the Claude Code CLI (`claude`) is not installed")
def test_claude_through_a_gateway_the_launcher_starts_and_stops(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    prefix = upstream.provider()
    path = write_config(
        tmp_path,
        f'  anthropic: {{protocol: anthropic, base_url: "{upstream.url(prefix)}", auth: passthrough}}\n',
        '"anthropic/{model}"',
    )
    port = free_port()
    environment = client_environment(
        tmp_path,
        ANTHROPIC_API_KEY="sk-ant-client-key",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    result = launch("claude", "--config", str(path), "--port", str(port), "-p", "say hello", env=environment, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "word0 word1 word2" in result.stdout
    assert f"gateway on http://127.0.0.1:{port}" in result.stderr
    served = [call for call in upstream.calls(prefix) if call["path"] == "/v1/messages"]
    assert served
    headers = dict(served[-1]["headers"])
    assert headers["x-api-key"] == "sk-ant-client-key"  # the user's credential, untouched
    assert PROXY_KEY not in json.dumps(served)  # the proxy key reached the gateway only
    assert not listening(port)  # the gateway it started is gone


@pytest.mark.skipif(CLAUDE is None, reason="the Claude Code CLI (`claude`) is not installed")
def test_arguments_and_the_exit_code_are_the_clients(tmp_path: Path) -> None:
    assert CLAUDE is not None
    environment = client_environment(tmp_path, ROUTATIC_ANTHROPIC_BASE_URL="http://127.0.0.1:9")
    direct = subprocess.run(
        [CLAUDE, "--no-such-flag-here"], capture_output=True, text=True, timeout=60, env=environment
    )
    assert direct.returncode != 0
    port = free_port()
    through = launch("claude", "--port", str(port), "--", "--no-such-flag-here", env=environment, cwd=tmp_path)
    assert through.returncode == direct.returncode
    assert "no-such-flag-here" in through.stderr
    assert not listening(port)


@pytest.mark.skipif(OPENCODE is None, reason="the opencode CLI is not installed")
def test_opencode_uses_the_gateway_already_listening(upstream: FakeUpstream, tmp_path: Path) -> None:
    prefix = upstream.provider()
    path = write_config(
        tmp_path,
        f'  oai: {{protocol: openai, base_url: "{upstream.url(prefix)}/v1", keys: ["sk-oai-0002"]}}\n',
        "oai/gpt-x",
    )
    project = tmp_path / "project"
    project.mkdir()
    with serve(env={"ROUTATIC_CONFIG": str(path)}) as server:
        port = server.url.rsplit(":", 1)[1]
        environment = client_environment(tmp_path, ROUTATIC_CONFIG=str(path))
        result = launch("opencode", "--port", port, "run", "say hello", env=environment, cwd=project)
        assert listening(int(port))  # not the launcher's to stop
    assert result.returncode == 0, result.stderr
    assert "word0 word1 word2" in result.stdout
    assert "gateway on" not in result.stderr  # it started none
    served = upstream.calls(prefix)
    assert served and {call["path"] for call in served} == {"/v1/chat/completions"}
    headers = dict(served[0]["headers"])
    assert headers["authorization"] == "Bearer sk-oai-0002"
    assert PROXY_KEY not in json.dumps(served)


def _has_responses() -> bool:
    config = parse_config(
        {
            "providers": {"p": {"protocol": "openai", "base_url": "http://127.0.0.1:9/v1", "auth": "none"}},
            "routes": [{"match": "*", "chain": ["p/m"]}],
        },
        env={},
    )
    return "/v1/responses" in build_app(config).routes


@pytest.mark.skipif(CODEX is None, reason="the Codex CLI (`codex`) is not installed")
@pytest.mark.skipif(not _has_responses(), reason="the gateway does not serve /v1/responses yet")
def test_codex_through_the_responses_front_door(upstream: FakeUpstream, tmp_path: Path) -> None:
    prefix = upstream.provider()
    path = write_config(
        tmp_path,
        f'  ant: {{protocol: anthropic, base_url: "{upstream.url(prefix)}", keys: ["sk-ant-0003"]}}\n',
        "ant/claude-sonnet-4-6",
    )
    port = free_port()
    environment = client_environment(tmp_path, CODEX_HOME=str(tmp_path / ".codex"))
    (tmp_path / ".codex").mkdir()
    result = launch(
        "codex", "--config", str(path), "--port", str(port),
        "exec", "--skip-git-repo-check", "say hello",
        env=environment, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "word0 word1 word2" in result.stdout
    served = upstream.calls(prefix)
    assert served and served[-1]["path"] == "/v1/messages"
    assert dict(served[-1]["headers"])["x-api-key"] == "sk-ant-0003"
    assert PROXY_KEY not in json.dumps(served)
    assert not (tmp_path / ".codex" / "config.toml").exists()  # the user's files untouched
    assert not listening(port)
