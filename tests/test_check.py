"""`check`: every mistake in a file at once, real mistakes caught, warnings, and `--probe`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from routatic_asgi import ConfigError, parse_config
from routatic_asgi.audit import config_warnings
from routatic_asgi.config import load_config
from tests.conftest import CLI, FakeUpstream, closed_port_url


def check(path: Path, *options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "ROUTATIC_CONFIG"}
    return subprocess.run(
        [*CLI, "check", "--config", str(path), *options],
        capture_output=True, text=True, timeout=60, env={**environment, **(env or {})},
    )


def test_every_error_in_a_file_is_listed_at_once_with_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "routatic.yaml"
    path.write_text(
        """
server: {port: 8787, max_bdy: 1MiB}
providers:
  anthropic: {protocol: anthropic, base_url: "https://api.anthropic.com", auth: passthrough}
  zen: {protocol: openai, bse_url: "https://opencode.ai/zen/v1", keys: ["${ZEN_UNSET_KEY}"]}
routes:
  - match: "*"
    chain: [anthropc/claude-x]
resilience: {deadline: soon}
"""
    )
    result = check(path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert any("server.max_bdy" in line and "did you mean 'max_body'" in line for line in lines)
    assert any("providers.zen.bse_url" in line and "did you mean 'base_url'" in line for line in lines)
    assert any("routes.0.chain" in line and "did you mean 'anthropic'" in line for line in lines)
    assert any("resilience.deadline" in line and "duration" in line for line in lines)
    assert any("ZEN_UNSET_KEY" in line for line in lines)
    assert all(line.startswith(f"routatic-asgi: {path}") for line in lines), lines


def test_a_yaml_syntax_error_says_line_column_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "routatic.yaml"
    path.write_text(
        'providers:\n  zen: {protocol: openai, keys: [${ZEN_KEY}], base_url: "x"\nroutes: []\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"ZEN_KEY": "k"})
    message = str(caught.value)
    assert "line 3, column 1" in message, message
    assert "expected ',' or '}'" in message


@pytest.mark.parametrize(
    ("protocol", "base_url", "words"),
    [
        ("anthropic", "https://api.anthropic.com/v1", "appends /v1/messages"),
        ("anthropic", "https://proxy.example/anthropic/v1/messages", "appends /v1/messages"),
        ("openai", "https://api.example/v1/chat/completions", "appends /chat/completions"),
    ],
)
def test_a_base_url_with_what_the_gateway_appends_is_an_error(
    protocol: str, base_url: str, words: str
) -> None:
    data = {
        "providers": {"p": {"protocol": protocol, "base_url": base_url, "auth": "none"}},
        "routes": [{"match": "*", "chain": ["p/{model}"]}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env={})
    assert caught.value.path == "providers.p"
    assert words in str(caught.value)


def test_warnings_an_openai_root_without_a_version_a_shadowed_route_and_no_catch_all() -> None:
    config = parse_config(
        {
            "providers": {
                "ds": {"protocol": "openai", "base_url": "https://api.deepseek.example", "auth": "none"},
                "zen": {"protocol": "openai", "base_url": "https://opencode.ai/zen/v1", "auth": "none"},
            },
            "routes": [
                {"match": "claude-*", "chain": ["zen/x"]},
                {"match": "claude-opus-*", "chain": ["ds/y"]},
            ],
        },
        env={},
    )
    warnings = config_warnings(config)
    assert len(warnings) == 3, warnings
    assert "providers.ds.base_url" in warnings[0] and "/chat/completions" in warnings[0]
    assert warnings[1].startswith("routes.1: match 'claude-opus-*' is never reached")
    assert "match: \"*\"" in warnings[2]


def test_check_never_prints_a_secret_even_in_an_error(tmp_path: Path) -> None:
    path = tmp_path / "routatic.yaml"
    path.write_text(
        """
providers:
  zen: {protocol: openai, base_url: "https://user:pw-s3cret-77@opencode.ai:x/", keys: ["sk-zen-s3cret-0001"], stratgy: x}
routes: [{match: "*", chain: ["zen/m"]}]
state: "postgres://admin:db-s3cret-99@db"
"""
    )
    result = check(path)
    assert result.returncode == 2
    assert "stratgy" in result.stderr and "state" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


def test_probe_reports_reachable_path_wrong_key_rejected_and_unreachable(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    good, wrong, rejected = upstream.provider(), upstream.provider(), upstream.provider()
    models = json.dumps({"object": "list", "data": []})
    upstream.script(good, {"status": 200, "body": models})
    upstream.script(wrong, {"status": 404, "body": "not found"})
    upstream.script(rejected, {"status": 401, "body": "{}"})
    down = closed_port_url()
    path = tmp_path / "routatic.yaml"
    path.write_text(
        f"""
providers:
  good: {{protocol: openai, base_url: "{upstream.url(good)}/v1", keys: ["sk-good-0001"]}}
  wrong: {{protocol: anthropic, base_url: "{upstream.url(wrong)}/api", keys: ["sk-wrong-0002"]}}
  rejected: {{protocol: anthropic, base_url: "{upstream.url(rejected)}", keys: ["sk-bad-key-0003"]}}
  down: {{protocol: openai, base_url: "{down}/v1", auth: none}}
routes: [{{match: "*", chain: ["good/m", "wrong/m", "rejected/m", "down/m"]}}]
"""
    )
    result = check(path, "--probe")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "probe good#0 …0001: reachable" in out
    assert "probe wrong#0 …0002: path wrong" in out
    assert "probe rejected#0 …0003: key rejected" in out
    port = down.rsplit(":", 1)[1]
    assert "probe down: unreachable" in out and f"127.0.0.1:{port}: connection refused" in out
    assert "sk-good-0001" not in out and "sk-bad-key-0003" not in out
    [call] = upstream.calls(good)
    assert call["method"] == "GET" and call["path"] == "/v1/models"
    assert dict(call["headers"])["authorization"] == "Bearer sk-good-0001"
    assert dict(upstream.calls(rejected)[0]["headers"])["x-api-key"] == "sk-bad-key-0003"


def test_check_without_probe_calls_nothing(upstream: FakeUpstream, tmp_path: Path) -> None:
    prefix = upstream.provider()
    path = tmp_path / "routatic.yaml"
    path.write_text(
        f'providers: {{p: {{protocol: openai, base_url: "{upstream.url(prefix)}/v1", auth: none}}}}\n'
        'routes: [{match: "*", chain: ["p/m"]}]\n'
    )
    assert check(path).returncode == 0
    assert upstream.calls(prefix) == []
