"""`routatic-asgi status --url`: a running server's breakers and credentials, keys hidden."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway
from tests.fake_clock import FakeClock

BAD = "sk-bad-key-00000001"
GOOD = "sk-good-key-0000002"
PROXY_KEY = "proxy-key-for-status-0001"
REQUEST = {"model": "claude-sonnet-4-6", "max_tokens": 8, "messages": []}


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "routatic_asgi.cli", "status", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "ROUTATIC_KEY": ""},
    )


def test_status_lists_breakers_and_credentials(upstream: FakeUpstream) -> None:
    zen, down = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "down": {"protocol": "anthropic", "base_url": upstream.url(down), "auth": "none"},
            "zen": {"protocol": "anthropic", "base_url": upstream.url(zen), "keys": [BAD, GOOD], "strategy": "ordered"},
        },
        [{"match": "*", "chain": ["down/{model}", "zen/{model}", "zen/fixed-model"]}],
        server={"keys": [PROXY_KEY]},
    )
    upstream.script(down, *[{"status": 529, "body": "{}"}] * 2)  # the call and its retry
    upstream.script(zen, {"status": 401, "body": "{}"})
    with gateway(config, clock=FakeClock()) as url:
        headers = {"x-routatic-key": PROXY_KEY}
        assert httpx.post(f"{url}/v1/messages", json=REQUEST, headers=headers).status_code == 200
        assert httpx.get(f"{url}/status").status_code == 401  # the proxy key guards it
        text = status("--url", url, "--key", PROXY_KEY)
        as_json = status("--url", url, "--key", PROXY_KEY, "--json")
        refused = status("--url", url)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "state: memory"
    assert any(
        line.startswith("  down/claude-sonnet-4-6  open  overloaded  failures=2  since ")
        for line in lines
    )
    assert "  zen#0 …0001  bad  auth_rejected  since 2027-01-15T08:00:00Z  until cleared" in lines
    assert "  zen/fixed-model#1  closed" in lines
    assert "  zen#1 …0002  ok" in lines
    assert BAD not in text.stdout + as_json.stdout and GOOD not in text.stdout + as_json.stdout
    report = json.loads(as_json.stdout)
    assert [b["state"] for b in report["breakers"]] == ["open", "closed", "closed"]
    assert refused.returncode == 1 and "401" in refused.stderr


def test_status_of_an_unreachable_server_exits_1() -> None:
    result = status("--url", "http://127.0.0.1:9")
    assert result.returncode == 1 and "cannot reach" in result.stderr
