"""End to end: a `protocol: responses` provider's credentials and failures, as for the other
protocols: the client's own key reaches a passthrough provider (and no other), its 401 goes
back to the client, and a failure inside the stream before content is classified by its code.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway
from tests.e2e.translation_kit import anthropic_text_message, provider
from tests.fake_upstream import responses_response, responses_stream

MODEL = "gpt-5"
CLIENT_KEY = "sk-client-own-0001"


def passthrough_then_keyed(upstream: FakeUpstream) -> tuple[Any, str, str]:
    rsp, ant = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "rsp": {"protocol": "responses", "base_url": upstream.url(rsp), "auth": "passthrough"},
            "ant": provider(upstream, "anthropic", ant),
        },
        [{"match": "*", "chain": ["rsp/{model}", "ant/claude-sonnet-4-6"]}],
        resilience={"retry": {"attempts": 0}},
    )
    return config, rsp, ant


def ask(url: str, **body: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    return httpx.post(
        f"{url}/v1/responses", json={"model": MODEL, "input": "hi", **body}, headers=headers
    )


def headers_of(call: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in call["headers"]}


@pytest.mark.parametrize("stream", [False, True])
def test_a_responses_passthrough_provider_gets_the_clients_own_key(
    upstream: FakeUpstream, stream: bool
) -> None:
    config, rsp, _ = passthrough_then_keyed(upstream)
    answer: dict[str, Any] = (
        {"sse": responses_stream(MODEL)}
        if stream
        else {"status": 200, "json": responses_response(MODEL, "mine")}
    )
    upstream.script(rsp, answer)
    with gateway(config) as url:
        response = ask(url, stream=stream)
    assert response.status_code == 200
    assert response.headers["x-routatic-target"] == f"rsp/{MODEL}"
    assert headers_of(upstream.calls(rsp)[-1])["authorization"] == f"Bearer {CLIENT_KEY}"


def test_the_clients_key_never_reaches_the_keyed_fallback(upstream: FakeUpstream) -> None:
    config, rsp, ant = passthrough_then_keyed(upstream)
    busy = {"status": 503, "json": {"error": {"message": "busy", "type": "server_error"}}}
    upstream.script(rsp, busy)
    upstream.script(ant, {"status": 200, "json": anthropic_text_message("from Claude")})
    with gateway(config) as url:
        response = ask(url)
    assert response.status_code == 200
    assert response.headers["x-routatic-target"] == "ant/claude-sonnet-4-6"
    sent = headers_of(upstream.calls(ant)[-1])
    assert CLIENT_KEY not in json.dumps(sent)
    assert sent["x-api-key"] == f"sk-{ant.strip('/')}-key0001"


def test_a_passthrough_responses_401_goes_back_to_the_client(upstream: FakeUpstream) -> None:
    config, rsp, ant = passthrough_then_keyed(upstream)
    rejected = {
        "status": 401,
        "json": {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}},
    }
    upstream.script(rsp, rejected, rejected)
    with gateway(config) as url:
        first = ask(url)
        again = ask(url)  # the client's own key is never marked bad: it is tried again
    assert first.status_code == 401 and again.status_code == 401
    assert first.json()["error"]["message"] == "Incorrect API key"
    assert len(upstream.calls(rsp)) == 2
    assert upstream.calls(ant) == []


def failed(code: str, message: str) -> list[str]:
    """A Responses stream that opens and then fails before any content."""
    opening = responses_stream(MODEL)[:2]  # response.created, response.in_progress
    response = {"id": "resp_x", "status": "failed", "error": {"code": code, "message": message}}
    body = {"type": "response.failed", "sequence_number": 2, "response": response}
    return [*opening, f"event: response.failed\ndata: {json.dumps(body)}\n\n"]


def error_event(code: str, message: str) -> list[str]:
    body = {"type": "error", "sequence_number": 0, "code": code, "message": message}
    return [f"event: error\ndata: {json.dumps(body)}\n\n"]


@pytest.mark.parametrize("shape", [failed, error_event])
@pytest.mark.parametrize(
    ("code", "message", "reason"),
    [
        ("rate_limit_exceeded", "Rate limit reached for requests", "rate_limited"),
        ("insufficient_quota", "You exceeded your current quota", "usage_limit"),
        ("server_error", "The server had an error", "status_500"),
    ],
)
def test_a_responses_failure_before_content_is_classified_by_its_code(
    upstream: FakeUpstream, shape: Any, code: str, message: str, reason: str
) -> None:
    rsp, ant = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "rsp": provider(upstream, "responses", rsp),
            "ant": provider(upstream, "anthropic", ant),
        },
        [{"match": "*", "chain": ["rsp/{model}", "ant/claude-sonnet-4-6"]}],
        resilience={"retry": {"attempts": 0}},
    )
    upstream.script(rsp, {"sse": shape(code, message)})
    with gateway(config) as url:
        response = ask(url, stream=True)
        status = httpx.get(f"{url}/status", headers={"accept": "application/json"}).json()
    assert response.status_code == 200
    assert response.headers["x-routatic-fallback"] == f"rsp/{MODEL}={reason}"
    assert response.headers["x-routatic-target"] == "ant/claude-sonnet-4-6"
    if reason == "usage_limit":  # the key cools until its reset, as for a 429 quota answer
        states = {c["state"] for c in status["credentials"] if c["provider"] == "rsp"}
        assert states == {"cooling"}
