"""Debug capture: what it writes, that no credential reaches the disk, and its bounds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx

from routatic_asgi import build_app
from routatic_asgi.telemetry.capture import DebugCapture, redact_headers
from tests.conftest import FakeUpstream, gateway_config

CLIENT_KEY = "sk-ant-client-secret-0042"
PROVIDER_KEY = "sk-second-provider-0099"
PROXY_KEY = "proxy-key-capture-0001"
REQUEST = {"model": "claude-x", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def _config(upstream: FakeUpstream, first: str, second: str) -> Any:
    return gateway_config(
        {
            "first": {"protocol": "anthropic", "base_url": upstream.url(first), "auth": "passthrough"},
            "second": {"protocol": "anthropic", "base_url": upstream.url(second), "keys": [PROVIDER_KEY]},
        },
        [{"match": "*", "chain": ["first/{model}", "second/backup"]}],
        server={"keys": [PROXY_KEY]},
        resilience={"retry": {"attempts": 0}},
    )  # fmt: skip


def _post(app: Any, close: Any, body: dict[str, Any] = REQUEST, times: int = 1) -> list[int]:
    """Statuses of `times` requests; ASGITransport returns once the app (and its capture) is
    done."""

    async def run() -> list[int]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://gateway"
        ) as client:
            headers = {"x-api-key": CLIENT_KEY, "x-routatic-key": PROXY_KEY}
            path = "/v1/messages?beta=true&api_key=sk-in-the-query-0001"
            statuses = [
                (await client.post(path, json=body, headers=headers)).status_code
                for _ in range(times)
            ]
        await close()
        return statuses

    return anyio.run(run)


def test_a_fallback_is_captured_with_every_upstream_exchange_and_no_credential(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    first, second = upstream.provider(), upstream.provider()
    upstream.script(first, {"status": 529, "body": '{"type":"error","error":{"type":"x"}}'})
    app = build_app(_config(upstream, first, second), debug_capture=tmp_path)
    assert _post(app, app.aclose) == [200]

    [path] = list(tmp_path.glob("*.json"))
    text = path.read_text()
    for secret in (CLIENT_KEY, PROVIDER_KEY, PROXY_KEY, "sk-in-the-query-0001"):
        assert secret not in text
    capture = json.loads(text)
    request, answer, upstream_calls = capture["request"], capture["response"], capture["upstream"]
    assert request["method"] == "POST" and request["path"] == "/v1/messages"
    assert request["query"] == "beta=true&api_key=[redacted]"
    assert json.loads(request["body"]["body"]) == REQUEST
    headers = dict(request["headers"])
    assert headers["x-api-key"] == headers["x-routatic-key"] == "[redacted]"
    assert answer["status"] == 200 and '"model": "backup"' in answer["body"]["body"]
    assert [(c["url"], c["status"]) for c in upstream_calls] == [
        (f"{upstream.url(first)}/v1/messages?beta=true&api_key=[redacted]", 529),
        (f"{upstream.url(second)}/v1/messages?beta=true&api_key=[redacted]", 200),
    ]
    assert '"type":"x"' in upstream_calls[0]["response_body"]["body"]
    assert json.loads(upstream_calls[1]["request_body"]["body"])["model"] == "backup"
    assert dict(upstream_calls[1]["request_headers"])["x-api-key"] == "[redacted]"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_capture_is_bounded_in_body_size_and_file_count(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    prefix = upstream.provider()
    config = gateway_config(
        {"p": {"protocol": "anthropic", "base_url": upstream.url(prefix), "auth": "none"}},
        [{"match": "*", "chain": ["p/{model}"]}],
    )
    inner = build_app(config, debug_capture=tmp_path / "ignored")
    app = DebugCapture(inner, directory=tmp_path, body_limit=64, max_files=2)
    long_request = {**REQUEST, "messages": [{"role": "user", "content": "x" * 500}]}
    assert _post(app, inner.aclose, long_request, times=3) == [200] * 3
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 2
    body = json.loads(files[-1].read_text())["request"]["body"]
    assert body["truncated"] is True and len(body["body"]) == 64 and body["bytes"] > 500


def test_credential_headers_are_redacted_and_rate_limit_headers_kept() -> None:
    headers = [
        ("authorization", "Bearer x"),
        ("x-goog-api-key", "k"),
        ("cookie", "c"),
        ("anthropic-ratelimit-tokens-limit", "100"),
        ("x-api-key", "k"),
    ]
    assert [value for _, value in redact_headers(headers)] == [
        "[redacted]",
        "[redacted]",
        "[redacted]",
        "100",
        "[redacted]",
    ]
