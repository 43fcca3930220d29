"""End to end: passthrough fidelity through a real server, against the fake provider."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway
from tests.fake_upstream import anthropic_message, openai_completion

MODEL = "claude-sonnet-4-6"
REQUEST = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 64,
    "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": "Hello"}],
}
# Key order and spacing that a re-serializing proxy would not keep.
RAW_BODY = b'{ "model":"claude-sonnet-4-6",  "max_tokens": 64, "messages":[{"role":"user","content":"Hi \\u00e9"}]}'


@pytest.fixture
def single(upstream: FakeUpstream) -> Iterator[tuple[str, str]]:
    prefix = upstream.provider()
    config = gateway_config(
        {
            "anthropic": {
                "protocol": "anthropic",
                "base_url": upstream.url(prefix),
                "auth": "passthrough",
            }
        },
        [{"match": "*", "chain": ["anthropic/{model}"]}],
    )
    with gateway(config) as url:
        yield url, prefix


def test_request_body_reaches_the_upstream_byte_for_byte(
    single: tuple[str, str], upstream: FakeUpstream
) -> None:
    url, prefix = single
    response = httpx.post(
        f"{url}/v1/messages?beta=true",
        content=RAW_BODY,
        headers={"content-type": "application/json", "x-api-key": "sk-client"},
    )
    assert response.status_code == 200
    [call] = upstream.calls(prefix)
    assert call["body"].encode() == RAW_BODY
    assert call["path"] == "/v1/messages"
    assert call["query"] == "beta=true"


def test_unstreamed_response_bytes_match_going_direct(
    single: tuple[str, str], upstream: FakeUpstream
) -> None:
    url, prefix = single
    direct = httpx.post(f"{upstream.url(prefix)}/v1/messages", json=REQUEST)
    proxied = httpx.post(f"{url}/v1/messages", json=REQUEST, headers={"x-api-key": "k"})
    assert proxied.status_code == direct.status_code == 200
    assert proxied.content == direct.content
    assert proxied.headers["x-routatic-target"] == "anthropic/claude-sonnet-4-6"
    assert proxied.headers["x-routatic-attempts"] == "1"
    assert "x-routatic-fallback" not in proxied.headers


def test_streamed_response_bytes_match_going_direct(
    single: tuple[str, str], upstream: FakeUpstream
) -> None:
    url, prefix = single
    body = {**REQUEST, "stream": True}
    direct = httpx.post(f"{upstream.url(prefix)}/v1/messages", json=body)
    with httpx.stream("POST", f"{url}/v1/messages", json=body, headers={"x-api-key": "k"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        proxied = b"".join(r.iter_raw())
    assert proxied == direct.content


def test_anthropic_sdk_streams_and_accumulates_through_the_gateway(
    single: tuple[str, str],
) -> None:
    url, _ = single
    client = anthropic.Anthropic(base_url=url, api_key="sk-client", max_retries=0)
    with client.messages.stream(**REQUEST) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert text == "word0 word1 word2 "
    assert message.stop_reason == "end_turn"
    created = client.messages.create(**REQUEST)  # type: ignore[arg-type]
    assert created.content[0].text == "Hello from the fake upstream."  # type: ignore[union-attr]
    client.close()


def test_end_to_end_headers_are_forwarded_and_hop_by_hop_dropped(
    single: tuple[str, str], upstream: FakeUpstream
) -> None:
    url, prefix = single
    sent = {
        "x-api-key": "sk-client-key",
        "authorization": "Bearer sk-ant-oat01-token",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "oauth-2025-04-20,claude-code-20250219,context-1m-2025-08-07",
        "x-claude-code-session-id": "session-1",
        "x-app": "cli",
        "keep-alive": "timeout=5",
        "te": "trailers",
        "x-routatic-key": "must-not-leak",
    }
    httpx.post(f"{url}/v1/messages", json=REQUEST, headers=sent)
    headers = dict(upstream.calls(prefix)[-1]["headers"])
    for name in (
        "x-api-key",
        "authorization",
        "anthropic-version",
        "anthropic-beta",
        "x-claude-code-session-id",
        "x-app",
    ):
        assert headers[name] == sent[name]
    assert "keep-alive" not in headers
    assert "te" not in headers
    assert "x-routatic-key" not in headers


def test_headers_named_in_connection_are_hop_by_hop_both_ways(upstream: FakeUpstream) -> None:
    """`Connection: x-hop` makes x-hop belong to that one connection: the upstream never gets
    the client's, and the client never gets the upstream's."""
    prefix = upstream.provider()
    config = gateway_config(
        {"a": {"protocol": "anthropic", "base_url": upstream.url(prefix), "auth": "passthrough"}},
        [{"match": "*", "chain": ["a/{model}"]}],
    )
    upstream.script(
        prefix,
        {
            "status": 200,
            "headers": {"connection": "x-upstream-hop", "x-upstream-hop": "secret", "x-kept": "1"},
            "json": {"type": "message", "content": []},
        },
    )
    sent = {
        "x-api-key": "k",
        "connection": "keep-alive, X-Client-Hop",
        "x-client-hop": "do-not-forward",
        "x-end-to-end": "forward",
    }
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST, headers=sent)
    assert response.status_code == 200
    headers = dict(upstream.calls(prefix)[-1]["headers"])
    assert "x-client-hop" not in headers
    assert headers["x-end-to-end"] == "forward"
    assert "x-upstream-hop" not in response.headers
    assert response.headers["x-kept"] == "1"


def test_upstream_response_headers_come_back(upstream: FakeUpstream) -> None:
    prefix = upstream.provider()
    config = gateway_config(
        {"a": {"protocol": "anthropic", "base_url": upstream.url(prefix), "auth": "passthrough"}},
        [{"match": "*", "chain": ["a/{model}"]}],
    )
    returned = {
        "request-id": "req_0123",
        "x-should-retry": "false",
        "anthropic-ratelimit-requests-remaining": "99",
        "anthropic-ratelimit-unified-status": "allowed",
        "content-type": "application/json",
    }
    body = json.dumps({"type": "message", "content": []})
    upstream.script(prefix, {"status": 200, "headers": returned, "body": body})
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST)
    for name, value in returned.items():
        assert response.headers[name] == value


def test_a_keyed_provider_gets_its_own_key_and_never_the_clients(upstream: FakeUpstream) -> None:
    first, second = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "primary": {
                "protocol": "anthropic",
                "base_url": upstream.url(first),
                "auth": "passthrough",
            },
            "backup": {
                "protocol": "anthropic",
                "base_url": upstream.url(second),
                "keys": ["sk-backup-0001"],
            },
            "openai": {
                "protocol": "openai",
                "base_url": upstream.url(second),
                "keys": ["sk-oai-0001"],
            },
        },
        [{"match": "*", "chain": ["primary/{model}", "backup/claude-haiku-4-5"]}],
        resilience={"retry": {"attempts": 0}},  # straight to the backup
    )
    upstream.script(first, {"status": 529, "body": "{}"})
    with gateway(config) as url:
        response = httpx.post(
            f"{url}/v1/messages",
            json=REQUEST,
            headers={"x-api-key": "sk-client", "authorization": "Bearer sk-client-token"},
        )
    assert response.status_code == 200
    headers = dict(upstream.calls(second)[-1]["headers"])
    assert headers["x-api-key"] == "sk-backup-0001"
    assert "authorization" not in headers
    assert json.loads(upstream.calls(second)[-1]["body"])["model"] == "claude-haiku-4-5"


def test_redirects_are_never_followed(upstream: FakeUpstream) -> None:
    prefix, elsewhere = upstream.provider(), upstream.provider()
    config = gateway_config(
        {"a": {"protocol": "anthropic", "base_url": upstream.url(prefix), "auth": "passthrough"}},
        [{"match": "*", "chain": ["a/{model}"]}],
    )
    location = f"{upstream.url(elsewhere)}/v1/messages"
    upstream.script(prefix, {"status": 307, "headers": {"location": location}, "body": ""})
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST, headers={"x-api-key": "secret"})
    assert response.status_code == 307
    assert upstream.calls(elsewhere) == []


def test_count_tokens_goes_to_the_routes_first_anthropic_target(upstream: FakeUpstream) -> None:
    oai, ant = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "oai": {"protocol": "openai", "base_url": upstream.url(oai), "auth": "none"},
            "ant": {"protocol": "anthropic", "base_url": upstream.url(ant), "auth": "passthrough"},
        },
        [{"match": "*", "chain": ["oai/gpt-x", "ant/{model}"]}],
    )
    body = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]}
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages/count_tokens?beta=true", json=body)
    assert response.json() == {"input_tokens": 42}
    assert [c["path"] for c in upstream.calls(ant)] == ["/v1/messages/count_tokens"]
    assert upstream.calls(oai) == []


def test_a_compressed_answer_keeps_its_encoding_or_is_decoded_to_translate(
    upstream: FakeUpstream,
) -> None:
    ant, oai = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "ant": {"protocol": "anthropic", "base_url": upstream.url(ant), "auth": "passthrough"},
            "oai": {"protocol": "openai", "base_url": f"{upstream.url(oai)}/v1", "auth": "none"},
        },
        [{"match": "claude-*", "chain": ["ant/{model}"]}, {"match": "*", "chain": ["oai/{model}"]}],
    )
    upstream.script(ant, {"status": 200, "json": anthropic_message(MODEL), "gzip": True})
    upstream.script(oai, {"status": 200, "json": openai_completion("gpt-x"), "gzip": True})
    with gateway(config) as url:
        passed = httpx.post(f"{url}/v1/messages", json=REQUEST)
        translated = httpx.post(f"{url}/v1/messages", json={**REQUEST, "model": "gpt-x"})
    assert passed.headers["content-encoding"] == "gzip"
    assert passed.json() == anthropic_message(MODEL)
    assert "content-encoding" not in translated.headers
    assert translated.json()["content"] == [
        {"type": "text", "text": "Hello from the fake upstream."}
    ]
