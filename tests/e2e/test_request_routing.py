"""End to end: what a request's shape decides before any translation: count_tokens without an
Anthropic target, a model skipped as unfit, routes on request traits, and /v1/models in the
caller's shape."""

from __future__ import annotations

import httpx

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway
from tests.e2e.translation_kit import (
    SDK,
    provider,
)


def test_count_tokens_without_an_anthropic_target_is_estimated(
    upstream: FakeUpstream, sdk: SDK
) -> None:
    oai = upstream.provider()
    config = gateway_config(
        {"oai": provider(upstream, "openai", oai)}, [{"match": "*", "chain": ["oai/qwen3"]}]
    )
    with gateway(config) as url:
        count = sdk.anthropic(url).messages.count_tokens(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": "word " * 400}]
        )
    assert 450 <= count.input_tokens <= 550
    assert upstream.calls(oai) == []


def test_a_model_that_cannot_serve_the_request_is_skipped_without_a_call(
    upstream: FakeUpstream,
) -> None:
    small, vision = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "small": provider(
                upstream, "openai", small, models={"tiny": {"context": 1000, "vision": False}}
            ),
            "vision": provider(upstream, "openai", vision),
        },
        [{"match": "*", "chain": ["small/tiny", "vision/big"]}],
    )
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}}
    with gateway(config) as url:
        short = httpx.post(
            f"{url}/v1/messages",
            json={"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
        )
        pictured = httpx.post(
            f"{url}/v1/messages",
            json={
                "model": "m",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": [image]}],
            },
        )
        long = httpx.post(
            f"{url}/v1/messages",
            json={
                "model": "m",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "x " * 3000}],
            },
        )
    assert short.headers["x-routatic-target"] == "small/tiny"
    assert pictured.headers["x-routatic-target"] == "vision/big"
    assert pictured.headers["x-routatic-fallback"] == "small/tiny=unfit_vision"
    assert pictured.headers["x-routatic-attempts"] == "1"
    assert long.headers["x-routatic-fallback"] == "small/tiny=unfit_context"
    assert len(upstream.calls(small)) == 1


def test_routes_on_request_traits(upstream: FakeUpstream) -> None:
    names = ["thinking", "images", "long", "background", "default"]
    prefixes = {name: upstream.provider() for name in names}
    config = gateway_config(
        {name: provider(upstream, "openai", prefix) for name, prefix in prefixes.items()},
        [
            {"match": "*", "when": {"background": True}, "chain": ["background/small"]},
            {"match": "*", "when": {"tokens_over": 2000}, "chain": ["long/big"]},
            {"match": "*", "when": {"images": True}, "chain": ["images/vl"]},
            {"match": "*", "when": {"thinking": True}, "chain": ["thinking/reasoner"]},
            {"match": "*", "chain": ["default/chat"]},
        ],
    )
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "A" * 100_000},
    }
    cases = {
        "background": {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "t"}]},
        "long": {
            "model": "claude-sonnet-4-6",
            "messages": [{"role": "user", "content": "w " * 5000}],
        },
        "images": {
            "model": "claude-sonnet-4-6",
            "messages": [{"role": "user", "content": [image]}],
        },
        "thinking": {
            "model": "claude-sonnet-4-6",
            "thinking": {"type": "adaptive"},
            "messages": [{"role": "user", "content": "t"}],
        },
        "default": {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "t"}]},
    }
    with gateway(config) as url:
        for expected, body in cases.items():
            response = httpx.post(f"{url}/v1/messages", json={"max_tokens": 5, **body})
            assert response.status_code == 200, expected
            assert response.headers["x-routatic-target"].partition("/")[0] == expected
        for effort, target in (("high", "thinking/reasoner"), ("none", "default/chat")):
            chat = {"model": "gpt-5", "reasoning_effort": effort, "messages": [{"role": "user", "content": "t"}]}
            response = httpx.post(f"{url}/v1/chat/completions", json=chat)
            assert response.headers["x-routatic-target"] == target, effort


def test_models_answer_in_the_callers_shape(upstream: FakeUpstream, sdk: SDK) -> None:
    oai = upstream.provider()
    config = gateway_config(
        {"oai": provider(upstream, "openai", oai, models={"qwen3": {}})},
        # /v1/models lists what a client can ask for: a model a route matches.
        [
            {"match": "claude-sonnet-4-6", "chain": ["oai/qwen3"]},
            {"match": "qwen3", "chain": ["oai/qwen3"]},
        ],
    )
    with gateway(config) as url:
        listed = sdk.openai(url).models.list()
        page = sdk.anthropic(url).models.list()
    assert [m.id for m in listed.data] == ["claude-sonnet-4-6", "qwen3"]
    assert all(m.object == "model" for m in listed.data)
    assert [m.id for m in page.data] == ["claude-sonnet-4-6", "qwen3"]
    assert all(m.type == "model" for m in page.data)
