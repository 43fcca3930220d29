"""Proxy keys the way SDKs send them: in their API-key field (x-api-key for Anthropic's,
Bearer for OpenAI's), on routes whose first provider is not passthrough."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway

PROXY_KEY = "rk-sdk-proxy-key-0001"


def config(upstream: FakeUpstream, keyed: str, passthrough: str) -> object:
    return gateway_config(
        {
            "keyed": {"protocol": "anthropic", "base_url": upstream.url(keyed), "keys": ["sk-provider-0002"]},
            "mine": {"protocol": "anthropic", "base_url": upstream.url(passthrough), "auth": "passthrough"},
        },
        [
            {"match": "claude-own-*", "chain": ["mine/{model}"]},
            {"match": "*", "chain": ["keyed/claude-sonnet-4-6"]},
        ],
        server={"keys": [PROXY_KEY]},
    )


def test_the_sdks_api_key_field_carries_the_proxy_key(upstream: FakeUpstream) -> None:
    keyed, passthrough = upstream.provider(), upstream.provider()
    with gateway(config(upstream, keyed, passthrough)) as url:  # type: ignore[arg-type]
        claude = anthropic.Anthropic(api_key=PROXY_KEY, base_url=url, max_retries=0)
        message = claude.messages.create(
            model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.content
        chat = openai.OpenAI(api_key=PROXY_KEY, base_url=f"{url}/v1", max_retries=0)
        completion = chat.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices
        listed = claude.models.list()
        assert [model.id for model in listed.data] == ["claude-sonnet-4-6"]
        # Where the header would be the client's own credential, it is refused, saying why.
        with pytest.raises(anthropic.AuthenticationError) as refused:
            claude.messages.create(
                model="claude-own-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
            )
        assert "send the proxy key as x-routatic-key" in str(refused.value)
    calls = upstream.calls(keyed)
    assert len(calls) == 2
    assert all(dict(call["headers"])["x-api-key"] == "sk-provider-0002" for call in calls)
    assert PROXY_KEY not in json.dumps(calls)
    assert upstream.calls(passthrough) == []
