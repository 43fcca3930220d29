"""End to end: a used-up key is rechecked by one real request every `quota_recheck`, and an
operator clears a breaker or a credential by hand (`POST /status/reset`, `status --reset`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway
from tests.fake_clock import NOW, FakeClock

MODEL = "claude-sonnet-4-6"
REQUEST = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
KEY = "sk-primary-key-000001"
PROXY_KEY = "proxy-key-for-reset-0001"


def config_for(upstream: FakeUpstream, **sections: Any) -> tuple[Any, str, str]:
    primary, backup = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "primary": {"protocol": "anthropic", "base_url": upstream.url(primary), "keys": [KEY]},
            "backup": {"protocol": "anthropic", "base_url": upstream.url(backup), "auth": "none"},
        },
        [{"match": "*", "chain": ["primary/{model}", "backup/backup-model"]}],
        **sections,
    )
    return config, primary, backup


def used_up(days: float) -> dict[str, Any]:
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "usage limit"}}
    reset = str(int(NOW + days * 86400))
    return {"status": 429, "headers": {"anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-reset": reset}, "body": json.dumps(body)}  # fmt: skip


def served_by(url: str) -> str:
    return httpx.post(f"{url}/v1/messages", json=REQUEST).headers["x-routatic-target"]


def test_a_key_used_up_for_days_is_rechecked_by_one_request_an_hour(
    upstream: FakeUpstream,
) -> None:
    config, primary, _ = config_for(upstream)
    upstream.script(primary, used_up(3), used_up(3))
    clock = FakeClock()
    with gateway(config, clock=clock) as url:
        assert served_by(url) == "backup/backup-model"  # used up: the reset is 3 days away
        clock.now += 1800
        assert served_by(url) == "backup/backup-model"  # skipped, no call
        assert len(upstream.calls(primary)) == 1
        clock.now += 1800  # an hour since: one request rechecks, still used up
        assert served_by(url) == "backup/backup-model"
        assert served_by(url) == "backup/backup-model"  # the next one does not
        assert len(upstream.calls(primary)) == 2
        clock.now += 3600  # another hour: the recheck finds the limit lifted
        assert served_by(url) == f"primary/{MODEL}"
        assert served_by(url) == f"primary/{MODEL}"  # and the key is usable again
        credentials = httpx.get(f"{url}/status").json()["credentials"]
    assert len(upstream.calls(primary)) == 4
    assert [c["state"] for c in credentials] == ["ok"]


def status(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "routatic_asgi.cli", "status", "--url", url, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "ROUTATIC_KEY": PROXY_KEY},
    )


def test_an_operator_clears_a_breaker_and_a_credential_by_hand(upstream: FakeUpstream) -> None:
    config, primary, _ = config_for(upstream, server={"keys": [PROXY_KEY]})
    down = {"status": 503, "body": "{}"}
    upstream.script(primary, down, down, used_up(3))
    headers = {"x-routatic-key": PROXY_KEY}
    clock = FakeClock()
    with gateway(config, clock=clock) as url:
        ask = lambda: httpx.post(f"{url}/v1/messages", json=REQUEST, headers=headers)  # noqa: E731
        assert ask().headers["x-routatic-target"] == "backup/backup-model"  # the breaker opens
        refused = httpx.post(f"{url}/status/reset", json={"reset": f"primary/{MODEL}"})
        cleared = status(url, "--reset", f"primary/{MODEL}")
        nothing = status(url, "--reset", "primary/other-model")
        used = ask()  # the breaker is closed again: the key is found used up
        assert used.headers["x-routatic-fallback"] == f"primary/{MODEL}=usage_limit"
        credential = httpx.post(
            f"{url}/status/reset", json={"reset": "primary#0"}, headers=headers
        )
        served = ask()
    assert refused.status_code == 401  # behind the proxy key
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout == f"reset: primary/{MODEL}#0\n"
    assert nothing.returncode == 1 and "nothing named 'primary/other-model'" in nothing.stderr
    assert credential.status_code == 200 and credential.json()["reset"] == ["primary#0"]
    assert served.headers["x-routatic-target"] == f"primary/{MODEL}"
    assert len(upstream.calls(primary)) == 4
    assert KEY not in cleared.stdout + credential.text
