"""The command line: check, schema, serve, and exit code 2 with a useful message."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import httpx

from tests.conftest import CLI, FakeUpstream, run, write
from tests.e2e.serving import serve

CONFIG = """
providers:
  anthropic: {protocol: anthropic, base_url: "%s", auth: passthrough}
  zen: {protocol: openai, base_url: https://opencode.ai/zen/v1, keys: ["${ZEN_TEST_KEY}"]}
routes:
  - match: "claude-*"
    chain:
      - anthropic/{model}
      - zen/deepseek-v4-flash
"""


def test_check_prints_each_routes_chain(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG % "https://api.anthropic.com")
    result = run("check", "--config", str(path), env={"ZEN_TEST_KEY": "sk-zen-check-1234"})
    assert result.returncode == 0, result.stderr
    assert "route 'claude-*':" in result.stdout
    assert "-> anthropic/{model}  (anthropic, auth: passthrough)" in result.stdout
    assert "-> zen/deepseek-v4-flash  (openai, 1 key(s))" in result.stdout
    assert "sk-zen-check-1234" not in result.stdout


def test_a_missing_variable_exits_2_naming_file_path_and_variable(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG % "https://api.anthropic.com")
    environment = {k: v for k, v in os.environ.items() if k != "ZEN_TEST_KEY"}
    result = subprocess.run(
        [*CLI, "check", "--config", str(path)], capture_output=True, text=True, env=environment
    )
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "providers.zen.keys.0" in result.stderr
    assert "ZEN_TEST_KEY" in result.stderr


def test_an_invalid_file_exits_2(tmp_path: Path) -> None:
    path = write(
        tmp_path, "providers: {a: {protocol: smtp, base_url: 'http://x', auth: none}}\nroutes: []\n"
    )
    result = run("check", "--config", str(path))
    assert result.returncode == 2
    assert "providers.a.protocol" in result.stderr
    assert "fix:" in result.stderr


def test_schema_is_json_schema_of_the_config() -> None:
    result = run("schema")
    schema = json.loads(result.stdout)
    assert {"server", "providers", "routes", "resilience", "state"} <= set(schema["properties"])


def test_serve_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG % "https://api.anthropic.com")
    result = run("serve", "--config", str(path), "--host", "0.0.0.0", env={"ZEN_TEST_KEY": "k"})
    assert result.returncode == 2
    assert "--allow-unauthenticated" in result.stderr


def test_serve_runs_the_gateway(tmp_path: Path, upstream: FakeUpstream) -> None:
    prefix = upstream.provider()
    path = write(tmp_path, CONFIG % upstream.url(prefix))
    with serve("--config", str(path), env={"ZEN_TEST_KEY": "sk-zen-secret-9876"}) as server:
        url = server.url
        assert httpx.head(f"{url}/").status_code == 200
        response = httpx.post(
            f"{url}/v1/messages?beta=true",
            json={"model": "claude-opus-4-7", "max_tokens": 5, "messages": []},
            headers={"x-api-key": "sk-client"},
        )
    assert response.status_code == 200
    assert response.headers["x-routatic-target"] == "anthropic/claude-opus-4-7"
    assert upstream.calls(prefix)[-1]["query"] == "beta=true"
    startup = server.text()
    assert "no proxy keys, state: memory" in startup
    assert "-> zen/deepseek-v4-flash  (openai, 1 key(s))" in startup
    assert "sk-zen-secret-9876" not in startup


def test_serve_that_cannot_listen_exits_3(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG % "https://api.anthropic.com")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run("serve", "--config", str(path), "--port", port, "--no-watch",
                     env={"ZEN_TEST_KEY": "k"})  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "address already in use" in result.stderr.lower()


def test_serve_without_a_config_runs_the_embedded_default(upstream: FakeUpstream) -> None:
    prefix = upstream.provider()
    environment = {"ROUTATIC_ANTHROPIC_BASE_URL": upstream.url(prefix)}
    with serve(env=environment) as server:
        response = httpx.post(
            f"{server.url}/v1/messages", json={"model": "claude-x", "max_tokens": 5, "messages": []}
        )
    assert response.status_code == 200
    assert len(upstream.calls(prefix)) == 1


def test_serve_with_an_unset_proxy_key_variable_refuses_to_start(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
server: {keys: ["${ROUTATIC_PROXY_KEY:-}"]}
providers:
  anthropic: {protocol: anthropic, base_url: "https://api.anthropic.com", auth: passthrough}
routes: [{match: "*", chain: [anthropic/{model}]}]
""",
    )
    env = {"ROUTATIC_PROXY_KEY": ""}
    result = run("serve", "--config", str(path), "--host", "0.0.0.0", "--port", "0", env=env)
    assert result.returncode == 2
    assert "server.keys.0.key" in result.stderr
    assert "Uvicorn running" not in result.stderr
