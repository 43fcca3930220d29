"""The metrics, spans and request log line an operator gets from real requests through a real
server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY, CollectorRegistry

from routatic_asgi.session import Session
from tests.conftest import FakeUpstream, RequestLines, gateway_config, sample, traced
from tests.e2e.serving import gateway

MODEL = "claude-sonnet-4-6"
REQUEST = {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}
SECRET = "sk-second-secret-0001"
SESSION = "5b1c9e2a-7f4d-4c1e-9a3b-private-session"


def _two_providers(upstream: FakeUpstream) -> tuple[Any, str, str]:
    first, second = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "first": {
                "protocol": "anthropic",
                "base_url": upstream.url(first),
                "auth": "none",
                "models": {MODEL: {}},  # a model the configuration names has its own label
            },
            "second": {
                "protocol": "anthropic",
                "base_url": upstream.url(second),
                "keys": [SECRET],
            },
        },
        [{"match": "claude-*", "chain": ["first/{model}", "second/backup-model"]}],
        server={"keys": [{"name": "team-a", "key": "proxy-key-0001"}]},
        # One failure opens the breaker and falls back (retries: tests/e2e/test_faults.py).
        resilience={"retry": {"attempts": 0}, "breaker": {"failures": 1}},
    )
    return config, first, second


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return sample(registry, name, **labels) or 0.0


def _observed(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    return next(span for span in spans if span.name == name)


def test_a_fallback_stream_is_counted_traced_and_logged(
    upstream: FakeUpstream, request_lines: RequestLines
) -> None:
    config, first, _ = _two_providers(upstream)
    upstream.script(first, {"status": 529, "body": '{"type":"error","error":{}}'})
    registry, (provider, exporter) = CollectorRegistry(), traced()
    with gateway(config, registry=registry, tracer_provider=provider) as url:
        response = httpx.post(
            f"{url}/v1/messages",
            json={**REQUEST, "stream": True},
            headers={"x-routatic-key": "proxy-key-0001", "x-claude-code-session-id": SESSION},
        )
        assert response.status_code == 200
        [line] = request_lines.wait(1)
        scraped = httpx.get(f"{url}/metrics").text

    route = {"protocol": "anthropic", "route": "claude-*"}
    first_target = {"provider": "first", "model": MODEL}
    served = {"provider": "second", "model": "backup-model"}
    expected = [
        ("routatic_requests_total", {**route, "outcome": "success"}, 1),
        ("routatic_request_duration_seconds_count", route, 1),
        ("routatic_upstream_attempts_total", {**first_target, "outcome": "transient"}, 1),
        ("routatic_upstream_attempts_total", {**served, "outcome": "success"}, 1),
        ("routatic_fallbacks_total", {"from_provider": "first", "to_provider": "second",
                                      "reason": "overloaded"}, 1),
        ("routatic_upstream_ttfb_seconds_count", served, 1),
        ("routatic_tokens_total", {**served, "kind": "input"}, 12),
        ("routatic_tokens_total", {**served, "kind": "output"}, 3),
        ("routatic_active_streams", {}, 0),
        ("routatic_proxy_overhead_seconds_count", {}, 1),
    ]  # fmt: skip
    for name, labels, count in expected:
        assert _value(registry, name, **labels) == count, (name, labels)
    assert "routatic_fallbacks_total{" in scraped

    assert line["actor"] == "team-a"
    assert line["session"] == Session(SESSION, "x-claude-code-session-id").hashed
    assert line["model"] == MODEL and line["route"] == "claude-*" and line["stream"] is True
    assert line["provider"] == "second" and line["served_model"] == "backup-model"
    assert line["stop_reason"] == "end_turn" and line["status"] == 200
    assert line["tokens"] == {"input": 12, "output": 3, "cache_read": 0, "cache_write": 0}
    assert [(a["target"], a["outcome"], a["reason"]) for a in line["attempts"]] == [
        (f"first/{MODEL}", "transient", "overloaded"),
        ("second/backup-model", "success", "ok"),
    ]
    assert line["attempts"][1]["credential"] == "second#0"
    assert 0 < line["ttfb_ms"] <= line["duration_ms"]

    spans = exporter.get_finished_spans()
    request_span = next(s for s in spans if s.kind is SpanKind.SERVER)
    failed = next(s for s in spans if s.kind is SpanKind.CLIENT and s.name == f"chat {MODEL}")
    served = _observed(spans, "chat backup-model")
    assert request_span.name == f"chat {MODEL}" and len(spans) == 3
    assert request_span.attributes is not None and served.attributes is not None
    assert request_span.attributes["gen_ai.operation.name"] == "chat"
    assert request_span.attributes["routatic.session"] == line["session"]
    assert request_span.attributes["gen_ai.request.model"] == MODEL
    assert request_span.attributes["gen_ai.provider.name"] == "second"
    assert request_span.attributes["gen_ai.response.model"] == "backup-model"
    assert request_span.attributes["gen_ai.usage.input_tokens"] == 12
    assert request_span.attributes["gen_ai.usage.output_tokens"] == 3
    assert request_span.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert [e.name for e in request_span.events] == ["routatic.breaker", "routatic.fallback"]
    assert served.parent is not None and served.parent.span_id == request_span.context.span_id
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["error.type"] == "overloaded"
    assert served.status.status_code is StatusCode.UNSET
    assert line["trace_id"] == format(request_span.context.trace_id, "032x")

    everything = scraped + "".join(request_lines.raw) + repr([s.to_json() for s in spans])
    assert SECRET not in everything and "proxy-key-0001" not in everything
    assert SESSION not in everything


def test_when_every_target_fails_the_request_span_and_outcome_say_so(
    upstream: FakeUpstream, request_lines: RequestLines
) -> None:
    config, first, second = _two_providers(upstream)
    for prefix in (first, second):
        upstream.script(prefix, {"status": 503, "body": "{}"})
    registry, (provider, exporter) = CollectorRegistry(), traced()
    with gateway(config, registry=registry, tracer_provider=provider) as url:
        response = httpx.post(
            f"{url}/v1/messages", json=REQUEST, headers={"x-routatic-key": "proxy-key-0001"}
        )
        [line] = request_lines.wait(1)
    assert response.status_code == 503
    outcome = {"protocol": "anthropic", "route": "claude-*", "outcome": "upstream_error"}
    assert _value(registry, "routatic_requests_total", **outcome) == 1
    assert line["outcome"] == "upstream_error" and line["provider"] is None
    request_span = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER)
    assert request_span.status.status_code is StatusCode.ERROR
    assert request_span.attributes is not None
    assert request_span.attributes["error.type"] == "upstream_error"


def test_openai_non_streamed_usage_counts_cached_tokens_apart(
    upstream: FakeUpstream, request_lines: RequestLines
) -> None:
    prefix = upstream.provider()
    completion = {
        "id": "c1",
        "object": "chat.completion",
        "model": "gpt-x-2026",
        "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 50,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 30},
        },
    }
    upstream.script(prefix, {"status": 200, "json": completion})
    config = gateway_config(
        {"oai": {"protocol": "openai", "base_url": upstream.url(prefix), "auth": "none"}},
        [{"match": "gpt-x", "chain": ["oai/{model}"]}],
    )
    registry = CollectorRegistry()
    with gateway(config, registry=registry) as url:
        body = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 200
        [line] = request_lines.wait(1)
    tokens = {
        kind: _value(registry, "routatic_tokens_total", provider="oai", model="gpt-x", kind=kind)
        for kind in ("input", "output", "cache_read", "cache_write")
    }
    assert tokens == {"input": 20, "output": 5, "cache_read": 30, "cache_write": 0}
    assert line["served_model"] == "gpt-x-2026" and line["stop_reason"] == "stop"
    assert line["actor"] is None


def test_a_rejected_request_is_counted_without_a_route(
    upstream: FakeUpstream, request_lines: RequestLines
) -> None:
    config, _, _ = _two_providers(upstream)
    registry = CollectorRegistry()
    with gateway(config, registry=registry) as url:
        response = httpx.post(
            f"{url}/v1/messages",
            json={**REQUEST, "model": "gpt-4o"},
            headers={"x-routatic-key": "proxy-key-0001"},
        )
        [line] = request_lines.wait(1)
    assert response.status_code == 404
    labels = {"protocol": "anthropic", "route": "none", "outcome": "rejected"}
    assert _value(registry, "routatic_requests_total", **labels) == 1
    assert line["model"] == "gpt-4o" and line["route"] is None and line["attempts"] == []


def test_metrics_never_land_in_the_global_registry(upstream: FakeUpstream) -> None:
    config, _, _ = _two_providers(upstream)
    with gateway(config) as url:
        scraped = httpx.get(f"{url}/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert "\nroutatic_requests_total{" not in scraped.text  # no request yet: no sample
    assert "# TYPE routatic_requests_total counter" in scraped.text
    assert not [name for name in REGISTRY._names_to_collectors if name.startswith("routatic_")]


class _BrokenTracerProvider:
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a broken tracer")


def test_broken_recorders_cost_the_telemetry_never_the_request(
    upstream: FakeUpstream, request_lines: RequestLines, caplog: pytest.LogCaptureFixture
) -> None:
    config, _, _ = _two_providers(upstream)
    with gateway(config, tracer_provider=_BrokenTracerProvider()) as url:
        response = httpx.post(
            f"{url}/v1/messages",
            json={**REQUEST, "stream": True},
            headers={"x-routatic-key": "proxy-key-0001"},
        )
        [line] = request_lines.wait(1)
    assert response.status_code == 200 and "word2" in response.text
    assert line["outcome"] == "success" and "trace_id" not in line
    assert "starting a request span failed" in caplog.text


def test_a_translated_stream_counts_the_targets_usage(
    upstream: FakeUpstream, request_lines: RequestLines
) -> None:
    prefix = upstream.provider()
    config = gateway_config(
        {"oai": {"protocol": "openai", "base_url": upstream.url(prefix), "auth": "none"}},
        [{"match": "*", "chain": ["oai/deepseek-chat"]}],
    )
    registry = CollectorRegistry()
    with gateway(config, registry=registry) as url:
        response = httpx.post(f"{url}/v1/messages", json={**REQUEST, "stream": True})
        [line] = request_lines.wait(1)
    assert response.status_code == 200 and "event: message_stop" in response.text
    served = {"provider": "oai", "model": "deepseek-chat"}
    assert _value(registry, "routatic_tokens_total", **served, kind="input") == 12
    assert _value(registry, "routatic_tokens_total", **served, kind="output") == 3
    assert line["stop_reason"] == "stop" and line["served_model"] == "deepseek-chat"


def test_a_request_refused_for_its_proxy_key_is_counted_and_logged_once(
    upstream: FakeUpstream, request_lines: RequestLines
) -> None:
    config, first, _ = _two_providers(upstream)
    registry = CollectorRegistry()
    with gateway(config, registry=registry) as url:
        refused = httpx.post(f"{url}/v1/chat/completions", json=REQUEST)
        [line] = request_lines.wait(1)
        served = httpx.post(
            f"{url}/v1/messages", json=REQUEST, headers={"x-routatic-key": "proxy-key-0001"}
        )
        lines = request_lines.wait(2)
        again = httpx.get(f"{url}/metrics")  # the log line is written last: all is recorded
    assert refused.status_code == 401 and served.status_code == 200 and again.status_code == 200
    assert len(lines) == len(request_lines.lines) == 2  # one line each, though two layers record
    assert line["status"] == 401 and line["outcome"] == "rejected" and line["actor"] is None
    assert line["protocol"] == "openai" and line["attempts"] == []
    labels = {"protocol": "openai", "route": "none", "outcome": "rejected"}
    assert _value(registry, "routatic_requests_total", **labels) == 1
    labels = {"protocol": "anthropic", "route": "claude-*", "outcome": "success"}
    assert _value(registry, "routatic_requests_total", **labels) == 1
    assert len(upstream.calls(first)) == 1
