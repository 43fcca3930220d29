"""GET /v1/models lists every model a client can ask for, and nothing it cannot: literal
route names, `models:` catalogs and the fixed chain models a route serves."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway


def providers(upstream: FakeUpstream, catalog: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic provider `a` and an OpenAI one `ds` whose catalog is `catalog`."""
    url = upstream.url(upstream.provider())
    return {
        "a": {"protocol": "anthropic", "base_url": url, "auth": "none"},
        "ds": {"protocol": "openai", "base_url": f"{url}/v1", "auth": "none", "models": catalog},
    }


def test_models_lists_literal_routes_catalogs_and_chain_models_of_star_routes(
    upstream: FakeUpstream,
) -> None:
    config = gateway_config(
        providers(upstream, {"deepseek-reasoner": {"context": 64000}, "deepseek-chat": {}}),
        [
            {"match": "claude-opus-4-7", "chain": ["a/{model}"]},
            {"match": "*", "chain": ["a/{model}", "ds/deepseek-chat", "ds/deepseek-v4"]},
        ],
    )
    expected = ["claude-opus-4-7", "deepseek-chat", "deepseek-reasoner", "deepseek-v4"]
    with gateway(config) as url:
        listed = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0).models.list()
        assert [model.id for model in listed.data] == expected
        paged = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0).models.list(limit=2)
        assert [model.id for model in paged] == expected  # the SDK follows the pages
        for model in expected:  # and each one listed is one a client can ask for
            answer = httpx.post(
                f"{url}/v1/messages",
                json={"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
            )
            assert answer.status_code == 200, model


def test_a_catalog_model_no_route_serves_is_not_listed(upstream: FakeUpstream) -> None:
    config = gateway_config(
        providers(upstream, {"deepseek-chat": {}}),
        [{"match": "claude-*", "chain": ["a/{model}", "ds/deepseek-chat"]}],
    )
    with gateway(config) as url:
        listed = httpx.get(f"{url}/v1/models").json()
        assert listed["data"] == []
        unrouted = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert unrouted.status_code == 404
