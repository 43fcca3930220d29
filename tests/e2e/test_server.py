"""End to end: bad input, inbound auth, the server's own endpoints, and mounting in an app."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anthropic
import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from routatic_asgi import build_app
from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway, serving

REQUEST = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture
def provider(upstream: FakeUpstream) -> str:
    return upstream.provider()


def config_for(upstream: FakeUpstream, prefix: str, **server: object) -> object:
    return gateway_config(
        {
            "anthropic": {
                "protocol": "anthropic",
                "base_url": upstream.url(prefix),
                "auth": "passthrough",
            },
            "zen": {
                "protocol": "anthropic",
                "base_url": upstream.url(prefix),
                "keys": ["sk-zen-0001"],
            },
        },
        [
            {"match": "keyed-*", "chain": ["zen/{model}"]},
            {"match": "claude-*", "chain": ["anthropic/{model}"]},
        ],
        server=server,
    )


@pytest.fixture
def url(upstream: FakeUpstream, provider: str) -> Iterator[str]:
    with gateway(config_for(upstream, provider, max_body="1KiB")) as base:  # type: ignore[arg-type]
        yield base


def assert_anthropic_error(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    assert body["error"]["message"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "kind"),
    [
        (b"{not json", "application/json", 400, "invalid_request_error"),
        (b"[1, 2]", "application/json", 400, "invalid_request_error"),
        (b'{"max_tokens": 5}', "application/json", 400, "invalid_request_error"),
        (b'{"model": 5}', "application/json", 400, "invalid_request_error"),
        (b"model=claude", "application/x-www-form-urlencoded", 415, "invalid_request_error"),
        (
            json.dumps({**REQUEST, "pad": "x" * 2048}).encode(),
            "application/json",
            413,
            "request_too_large",
        ),
    ],
    ids=["malformed", "not-object", "no-model", "model-not-string", "form", "too-large"],
)
def test_bad_input_gets_a_clear_error_and_no_upstream_call(
    url: str,
    upstream: FakeUpstream,
    provider: str,
    content: bytes,
    content_type: str,
    status: int,
    kind: str,
) -> None:
    response = httpx.post(
        f"{url}/v1/messages", content=content, headers={"content-type": content_type}
    )
    assert_anthropic_error(response, status, kind)
    assert upstream.calls(provider) == []


def test_a_body_too_large_without_content_length_is_refused(
    url: str, upstream: FakeUpstream, provider: str
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "claude-x", "pad": "'
        yield b"x" * 4096
        yield b'"}'

    response = httpx.post(
        f"{url}/v1/messages", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_anthropic_error(response, 413, "request_too_large")
    assert upstream.calls(provider) == []


def test_unknown_paths_wrong_methods_and_unrouted_models(
    url: str, upstream: FakeUpstream, provider: str
) -> None:
    assert_anthropic_error(httpx.get(f"{url}/v2/nothing"), 404, "not_found_error")
    wrong = httpx.get(f"{url}/v1/messages")
    assert_anthropic_error(wrong, 405, "invalid_request_error")
    assert wrong.headers["allow"] == "POST"
    unrouted = httpx.post(f"{url}/v1/messages", json={**REQUEST, "model": "gpt-x"})
    assert_anthropic_error(unrouted, 404, "not_found_error")
    assert "gpt-x" in unrouted.json()["error"]["message"]
    assert upstream.calls(provider) == []


def test_openai_callers_get_the_openai_envelope(url: str) -> None:
    response = httpx.post(
        f"{url}/v1/chat/completions", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "type" not in response.json()


def test_health_readiness_head_and_models(url: str) -> None:
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{url}/readyz").status_code == 200
    assert httpx.head(f"{url}/").status_code == 200
    models = httpx.get(
        f"{url}/v1/models", params={"limit": 1000}, headers={"anthropic-version": "2023-06-01"}
    )
    assert models.status_code == 200
    assert models.json()["has_more"] is False


def test_models_lists_configured_models_and_pages(upstream: FakeUpstream, provider: str) -> None:
    config = gateway_config(
        {"a": {"protocol": "anthropic", "base_url": upstream.url(provider), "auth": "none"}},
        [
            {"match": "claude-opus-4-7", "chain": ["a/{model}"]},
            {"match": "claude-haiku-4-5", "chain": ["a/{model}"]},
            {"match": "*", "chain": ["a/{model}", "a/claude-sonnet-4-6"]},
        ],
    )
    with gateway(config) as url:
        client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
        ids = [model.id for model in client.models.list(limit=1)]
        client.close()
    assert ids == ["claude-haiku-4-5", "claude-opus-4-7", "claude-sonnet-4-6"]


class TestInboundAuth:
    @pytest.fixture
    def url(self, upstream: FakeUpstream, provider: str) -> Iterator[str]:
        config = config_for(upstream, provider, keys=[{"name": "alice", "key": "rk-alice-secret"}])
        with gateway(config) as base:  # type: ignore[arg-type]
            yield base

    def test_requests_without_a_valid_key_are_refused(
        self, url: str, upstream: FakeUpstream, provider: str
    ) -> None:
        for headers in ({}, {"x-routatic-key": "wrong"}, {"authorization": "Bearer wrong"}):
            response = httpx.post(f"{url}/v1/messages", json=REQUEST, headers=headers)
            assert_anthropic_error(response, 401, "authentication_error")
            assert "wrong" not in response.text
        assert upstream.calls(provider) == []

    def test_the_proxy_key_is_accepted_and_never_forwarded(
        self, url: str, upstream: FakeUpstream, provider: str
    ) -> None:
        headers = {"x-routatic-key": "rk-alice-secret", "x-api-key": "sk-client"}
        assert httpx.post(f"{url}/v1/messages", json=REQUEST, headers=headers).status_code == 200
        forwarded = dict(upstream.calls(provider)[-1]["headers"])
        assert forwarded["x-api-key"] == "sk-client"
        assert "rk-alice-secret" not in json.dumps(forwarded)

    def test_bearer_works_when_the_route_does_not_forward_it(
        self, url: str, upstream: FakeUpstream, provider: str
    ) -> None:
        headers = {"authorization": "Bearer rk-alice-secret"}
        response = httpx.post(
            f"{url}/v1/messages", json={**REQUEST, "model": "keyed-model"}, headers=headers
        )
        assert response.status_code == 200
        forwarded = dict(upstream.calls(provider)[-1]["headers"])
        assert "authorization" not in forwarded
        assert forwarded["x-api-key"] == "sk-zen-0001"

    def test_bearer_is_refused_when_the_route_would_forward_it(
        self, url: str, upstream: FakeUpstream, provider: str
    ) -> None:
        headers = {"authorization": "Bearer rk-alice-secret"}
        response = httpx.post(f"{url}/v1/messages", json=REQUEST, headers=headers)
        assert_anthropic_error(response, 401, "authentication_error")
        assert "x-routatic-key" in response.json()["error"]["message"]
        assert upstream.calls(provider) == []

    def test_health_needs_no_key(self, url: str) -> None:
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_the_app_mounts_under_a_prefix_in_a_starlette_app(
    upstream: FakeUpstream, provider: str
) -> None:
    gateway_app = build_app(config_for(upstream, provider))  # type: ignore[arg-type]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await gateway_app.aclose()  # a mounted app gets no lifespan of its own

    host = Starlette(
        routes=[
            Route("/", lambda request: PlainTextResponse("host app")),
            Mount("/llm", app=gateway_app),
        ],
        lifespan=lifespan,
    )
    with serving(host) as server:
        url = server.url
        client = anthropic.Anthropic(base_url=f"{url}/llm", api_key="sk-client", max_retries=0)
        message = client.messages.create(**REQUEST)  # type: ignore[arg-type]
        client.close()
        assert httpx.get(f"{url}/").text == "host app"
        assert httpx.get(f"{url}/llm/healthz").json() == {"status": "ok"}
    assert message.content[0].text == "Hello from the fake upstream."  # type: ignore[union-attr]
    assert upstream.calls(provider)[-1]["path"] == "/v1/messages"
