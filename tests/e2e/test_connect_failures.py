"""A failed connection to a provider, as the client and the request log see it through a
served gateway: host, port and why."""

from __future__ import annotations

import httpx

from tests.conftest import RequestLines, closed_port_url, gateway_config
from tests.e2e.serving import gateway

REQUEST = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": "hi"}],
}


def test_the_client_and_the_request_log_see_host_port_and_why(
    request_lines: RequestLines,
) -> None:
    refused = closed_port_url()
    config = gateway_config(
        {
            "down": {"protocol": "anthropic", "base_url": refused, "auth": "none"},
            "gone": {
                "protocol": "anthropic",
                "base_url": "http://nonexistent.invalid:8080",
                "auth": "none",
            },
        },
        [{"match": "claude-*", "chain": ["down/{model}", "gone/{model}"]}],
        resilience={"retry": {"attempts": 0}},
    )
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST)
        [line] = request_lines.wait(1)
    assert response.status_code >= 500
    message = response.json()["error"]["message"]
    port = refused.rsplit(":", 1)[1]
    assert f"connect_error (127.0.0.1:{port}: connection refused)" in message
    assert "connect_error (nonexistent.invalid:8080: DNS lookup failed" in message
    reasons = [(a["reason"], a.get("detail")) for a in line["attempts"]]
    assert reasons[0] == ("connect_error", "connection refused")
    assert reasons[1][0] == "connect_error" and "DNS" in reasons[1][1]
