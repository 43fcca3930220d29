"""Proxy keys: never forwarded, never blank, needed everywhere but health and metrics; and the
gateway's own refusals tell clients not to retry them."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from pydantic import ValidationError

from routatic_asgi.config import InboundKey
from routatic_asgi.errors import ConfigError
from tests.conftest import gateway_config
from tests.fake_clock import FakeClock
from tests.resilience_kit import REQUEST, Upstreams, app_for, client_for

pytestmark = pytest.mark.anyio

PROXY_KEY = "rk-proxy-key-canary-0001"
CLIENT_KEY = "sk-ant-api03-client-key-0001"


def keyed_config(**server: Any) -> Any:
    return gateway_config(
        {
            "pass": {
                "protocol": "anthropic",
                "base_url": "http://pass.test",
                "auth": "passthrough",
            },
            "keyed": {"protocol": "openai", "base_url": "http://keyed.test/v1", "keys": ["sk-k1"]},
        },
        [
            {"match": "keyed-*", "chain": ["keyed/{model}"]},
            {"match": "*", "chain": ["pass/{model}"]},
        ],
        server={"keys": [{"name": "team", "key": PROXY_KEY}], **server},
    )


# Every way a client may hand over the proxy key, alone or with the others, in any order.
CARRIERS = [
    ("x-routatic-key", PROXY_KEY),
    ("authorization", f"Bearer {PROXY_KEY}"),
    ("x-api-key", PROXY_KEY),
]
COMBINATIONS = [
    list(order)
    for size in (1, 2, 3)
    for subset in itertools.combinations(CARRIERS, size)
    for order in itertools.permutations(subset)
]


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "keyed-model"])
@pytest.mark.parametrize("with_client_key", [False, True])
async def test_the_proxy_key_is_never_forwarded_in_any_combination(
    model: str, with_client_key: bool
) -> None:
    upstreams = Upstreams()
    app = app_for(keyed_config(), upstreams, FakeClock())
    async with client_for(app) as client:
        for carriers in COMBINATIONS:
            headers = list(carriers)
            if with_client_key:
                headers.append(("x-api-key", CLIENT_KEY))
            response = await client.post(
                "/v1/messages", json={**REQUEST, "model": model}, headers=headers
            )
            assert response.status_code in (200, 401), (carriers, response.text)
            assert PROXY_KEY not in response.text
            if ("x-routatic-key", PROXY_KEY) in carriers:
                assert response.status_code == 200, (carriers, response.text)
    assert upstreams.calls, "no combination reached the upstream"
    for call in upstreams.calls:
        sent = json.dumps([(k, v) for k, v in call.headers.multi_items()]) + call.content.decode()
        assert PROXY_KEY not in sent
        if with_client_key and call.url.host == "pass.test":
            assert call.headers["x-api-key"] == CLIENT_KEY


async def test_a_blank_presented_key_never_matches() -> None:
    upstreams = Upstreams()
    app = app_for(keyed_config(), upstreams, FakeClock())
    async with client_for(app) as client:
        for headers in (
            {"x-routatic-key": ""},
            {"x-routatic-key": "   "},
            {"authorization": "Bearer "},
            {"authorization": "Bearer"},
        ):
            response = await client.post("/v1/messages", json=REQUEST, headers=headers)
            assert response.status_code == 401
    assert upstreams.calls == []


@pytest.mark.parametrize("value", ["", "   ", "${ROUTATIC_PROXY_KEY:-}"])
def test_a_blank_proxy_key_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        keyed_config(keys=[value])
    error = caught.value
    assert error.path == "server.keys.0.key"
    assert "empty" in error.problem
    if "${" in value:
        assert "ROUTATIC_PROXY_KEY" in error.fix


def test_a_blank_provider_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError) as caught:
        gateway_config(
            {"z": {"protocol": "openai", "base_url": "http://z.test/v1", "keys": ["${Z_KEY:-}"]}},
            [{"match": "*", "chain": ["z/{model}"]}],
        )
    assert caught.value.path == "providers.z.keys.0"
    assert "Z_KEY" in caught.value.fix


def test_an_inbound_key_built_in_code_cannot_be_blank() -> None:
    with pytest.raises(ValidationError):
        InboundKey(name="ci", key="")  # type: ignore[arg-type]


async def test_every_endpoint_but_health_readiness_and_metrics_needs_the_key() -> None:
    app = app_for(keyed_config(), Upstreams(), FakeClock())
    async with client_for(app) as client:
        for method, path in (("GET", "/v1/models"), ("GET", "/status"), ("HEAD", "/")):
            refused = await client.request(method, path)
            assert refused.status_code == 401, path
            assert refused.headers["x-should-retry"] == "false"
            allowed = await client.request(method, path, headers={"x-routatic-key": PROXY_KEY})
            assert allowed.status_code == 200, path
        refused = await client.get("/v1/models", headers={"anthropic-version": "2023-06-01"})
        assert refused.json()["type"] == "error"
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200, path


async def test_the_gateways_own_refusals_say_not_to_retry() -> None:
    upstreams = Upstreams()
    app = app_for(keyed_config(max_body="1KiB"), upstreams, FakeClock())
    key = {"x-routatic-key": PROXY_KEY}
    json_type = {**key, "content-type": "application/json"}
    async with client_for(app) as client:
        answers = {
            400: await client.post("/v1/messages", content=b"{oops", headers=json_type),
            401: await client.post("/v1/messages", json=REQUEST),
            404: await client.get("/v2/nothing", headers=key),
            405: await client.get("/v1/messages", headers=key),
            413: await client.post("/v1/messages", content=b"x" * 2048, headers=json_type),
            415: await client.post("/v1/messages", content=b"m=1", headers=key),
        }
        openai = await client.post("/v1/chat/completions", content=b"[]", headers=json_type)
    for status, response in answers.items():
        assert response.status_code == status
        assert response.headers["x-should-retry"] == "false", status
        assert response.json()["type"] == "error"
    assert openai.status_code == 400
    assert openai.headers["x-should-retry"] == "false"
    assert openai.json()["error"]["type"] == "invalid_request_error"
    assert upstreams.calls == []


async def test_an_upstream_rate_limit_is_not_marked_final() -> None:
    upstreams = Upstreams()
    upstreams.script("pass.test", 429)
    app = app_for(keyed_config(), upstreams, FakeClock())
    async with client_for(app) as client:
        response = await client.post(
            "/v1/messages", json=REQUEST, headers={"x-routatic-key": PROXY_KEY}
        )
    assert response.status_code == 429
    assert response.headers.get("x-should-retry") != "false"
