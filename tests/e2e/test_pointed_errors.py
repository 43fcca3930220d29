"""Runtime errors that point at the cause: a fallback at a wrong path is reported as a wrong
path, not an unknown model; a target that cannot be reached is named by host and port."""

from __future__ import annotations

import httpx

from tests.conftest import FakeUpstream, closed_port_url, gateway_config
from tests.e2e.serving import gateway

MESSAGES = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def test_a_wrong_path_and_a_refused_connection_are_named(upstream: FakeUpstream) -> None:
    first, wrong = upstream.provider(), upstream.provider()
    down = closed_port_url()
    config = gateway_config(
        {
            "first": {"protocol": "anthropic", "base_url": upstream.url(first), "auth": "none"},
            "wrong": {"protocol": "anthropic", "base_url": upstream.url(wrong), "auth": "none"},
            "down": {"protocol": "anthropic", "base_url": down, "auth": "none"},
        },
        [{"match": "*", "chain": ["first/{model}", "wrong/{model}", "down/{model}"]}],
        resilience={"max_attempts": 3},
    )
    upstream.script(first, {"status": 503, "body": "{}"}, {"status": 503, "body": "{}"})
    upstream.script(wrong, {"status": 404, "headers": {"content-type": "text/plain"}, "body": "404 page not found"})
    with gateway(config) as url:
        answer = httpx.post(f"{url}/v1/messages", json=MESSAGES, timeout=30)
    message = answer.json()["error"]["message"]
    assert answer.status_code == 503
    assert "wrong/claude-x wrong_path 404" in message
    assert "unknown_model" not in message
    port = down.rsplit(":", 1)[1]
    assert f"down/claude-x connect_error (127.0.0.1:{port}: connection refused)" in message
