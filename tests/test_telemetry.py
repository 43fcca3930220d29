"""Telemetry: token usage reading, bounded labels, request outcomes and route labels (what
real requests through a real server record is tests/e2e/test_telemetry.py's)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routatic_asgi.attempt import Attempt, InboundRequest, Target, Usage
from routatic_asgi.classify import SUCCESS, Kind, Outcome
from routatic_asgi.sse import Event, SSEFramer
from routatic_asgi.telemetry import UsageReader, route_label, usage_from_body
from routatic_asgi.telemetry.metrics import LabelBound
from routatic_asgi.telemetry.request_log import request_outcome
from routatic_asgi.telemetry.spans import usage_attributes
from tests.conftest import gateway_config
from tests.fake_upstream import anthropic_message, anthropic_stream, openai_stream

MODEL = "claude-sonnet-4-6"
REQUEST = {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}


def test_anthropic_body_usage_keeps_cache_tokens_apart() -> None:
    message = anthropic_message("claude-x")
    message["usage"] = {
        "input_tokens": 11,
        "output_tokens": 6,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 40,
    }
    usage = usage_from_body("anthropic", json.dumps(message).encode())
    assert usage == Usage(11, 6, 100, 40, "end_turn", "claude-x")


def test_spans_count_every_input_token_and_the_cached_ones_apart() -> None:
    attributes = usage_attributes(Usage(11, 6, 100, 40, "end_turn", "claude-x"))
    assert attributes["gen_ai.usage.input_tokens"] == 151
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 100
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == 40


def test_openai_body_usage_counts_cached_tokens_once() -> None:
    body = {
        "model": "gpt-x",
        "choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "length"}],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 9,
            "prompt_tokens_details": {"cached_tokens": 100},
        },
    }
    usage = usage_from_body("openai", json.dumps(body).encode())
    assert usage == Usage(20, 9, 100, 0, "length", "gpt-x")


def test_a_body_without_usage_says_nothing() -> None:
    assert usage_from_body("anthropic", b"not json") is None
    assert usage_from_body("openai", b'{"choices": []}') is None


def _attempt(protocol: Any = "anthropic") -> Attempt:
    return Attempt(Target("p", protocol, "m", "http://127.0.0.1"), 1, True)


def _read_stream(events: list[str], protocol: Any) -> Usage | None:
    attempt = _attempt(protocol)
    reader = UsageReader(attempt, protocol)
    framer = SSEFramer()
    for event in framer.feed("".join(events).encode()):
        reader.observe(event)
    return attempt.usage


def test_anthropic_stream_usage_comes_from_message_start_and_message_delta() -> None:
    assert _read_stream(anthropic_stream("claude-x", deltas=5), "anthropic") == Usage(
        12, 5, 0, 0, "end_turn", "claude-x"
    )


def test_openai_stream_usage_comes_from_the_finish_and_usage_chunks() -> None:
    assert _read_stream(openai_stream("gpt-x", deltas=4), "openai") == Usage(
        12, 4, 0, 0, "stop", "gpt-x"
    )


def test_openai_stream_without_a_usage_chunk_still_has_its_stop_reason() -> None:
    events = [e for e in openai_stream("gpt-x") if '"usage"' not in e]
    usage = _read_stream(events, "openai")
    assert usage is not None and usage.stop_reason == "stop" and usage.output == 0


# --- bounded labels and the outcome -------------------------------------------------------


def test_label_bound_turns_newcomers_past_the_limit_into_other() -> None:
    bound = LabelBound(limit=2, length=10)
    assert [bound(v) for v in ("a", "b", "c", "a", "x" * 11)] == ["a", "b", "other", "a", "other"]


def _request(*outcomes: Outcome) -> InboundRequest:
    request = InboundRequest("anthropic", "messages", b"{}", {}, "m", False)
    for outcome in outcomes:
        attempt = _attempt()
        attempt.settle(outcome)
        request.attempts.append(attempt)
    return request


@pytest.mark.parametrize(
    ("request_", "status", "expected"),
    [
        (_request(Outcome(Kind.TRANSIENT, "overloaded", 529), SUCCESS), 200, "success"),
        (None, 415, "rejected"),
        (_request(), 200, "success"),
        (_request(), 404, "rejected"),
        (_request(Outcome(Kind.CLIENT, "status_400", 400)), 400, "client_error"),
        (_request(Outcome(Kind.TRANSIENT, "rate_limited", 429)), 429, "rate_limited"),
        (_request(Outcome(Kind.TRANSIENT, "deadline")), 504, "timeout"),
        (_request(Outcome(Kind.TRANSIENT, "overloaded", 529)), 529, "upstream_error"),
        (_request(Outcome(Kind.CANCELLED, "client_disconnected")), None, "cancelled"),
    ],
)
def test_request_outcome_is_one_bounded_word(
    request_: InboundRequest | None, status: int | None, expected: str
) -> None:
    assert request_outcome(request_, status) == expected


@given(name=st.sampled_from(["message_start", "message_delta", None]), data=st.binary())
def test_usage_reading_never_fails_on_arbitrary_events(name: str | None, data: bytes) -> None:
    for protocol in ("anthropic", "openai"):
        reader = UsageReader(_attempt(protocol), protocol)
        reader.observe(Event(b"", name, b'{"usage":{' + data))
        reader.observe(Event(b"", name, data))
        usage = usage_from_body(protocol, data)
        assert usage is None or isinstance(usage, Usage)


@given(
    st.recursive(
        st.none() | st.integers() | st.text(),
        lambda inner: (
            st.lists(inner)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "usage",
                        "model",
                        "choices",
                        "stop_reason",
                        "prompt_tokens",
                        "input_tokens",
                        "finish_reason",
                        "prompt_tokens_details",
                        "cached_tokens",
                    ]
                ),
                inner,
            )
        ),
    )
)
def test_usage_from_any_json_shape_is_a_usage_or_none(payload: Any) -> None:
    body = json.dumps(payload).encode()
    for protocol in ("anthropic", "openai"):
        usage = usage_from_body(protocol, body)
        assert usage is None or isinstance(usage, Usage)


def test_routes_with_the_same_glob_are_told_apart_by_their_traits() -> None:
    config = gateway_config(
        {"p": {"protocol": "anthropic", "base_url": "http://p", "auth": "none"}},
        [
            {"match": "claude-*", "when": {"background": True}, "chain": ["p/small"]},
            {"match": "claude-*", "when": {"tokens_over": 1000}, "chain": ["p/big"]},
            {"match": "claude-*", "chain": ["p/{model}"]},
        ],
    )
    labels = [route_label(route) for route in config.routes]
    assert labels == [
        "claude-* when background=true",
        "claude-* when tokens_over=1000",
        "claude-*",
    ]
