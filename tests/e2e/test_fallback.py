"""End to end: each fallback trigger, the streaming commit point, and every all-fail answer."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import FakeUpstream, closed_port_url, gateway_config
from tests.e2e.serving import gateway
from tests.fake_upstream import anthropic_stream

MODEL = "claude-sonnet-4-6"
REQUEST = {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**REQUEST, "stream": True}


def error_json(kind: str, message: str) -> str:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}})


def two_targets(upstream: FakeUpstream, **resilience: Any) -> tuple[Any, str, str]:
    """Two targets; the first is not retried and a broken stream is not rescued, so each
    trigger shows as one fallback or one error event (retries and rescues are
    tests/e2e/test_faults.py's)."""
    resilience.setdefault("retry", {"attempts": 0})
    resilience.setdefault("rescue", False)
    first, second = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "first": {
                "protocol": "anthropic",
                "base_url": upstream.url(first),
                "auth": "passthrough",
            },
            "second": {
                "protocol": "anthropic",
                "base_url": upstream.url(second),
                "keys": ["sk-second-0001"],
            },
        },
        [{"match": "*", "chain": ["first/{model}", "second/backup-model"]}],
        resilience=resilience,
    )
    return config, first, second


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_fall_back_before_the_client_sees_a_byte(
    upstream: FakeUpstream, status: int
) -> None:
    config, first, second = two_targets(upstream)
    upstream.script(first, {"status": status, "body": error_json("api_error", "boom")})
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST)
    assert response.status_code == 200
    assert response.json()["model"] == "backup-model"
    assert response.headers["x-routatic-target"] == "second/backup-model"
    assert response.headers["x-routatic-attempts"] == "2"
    assert response.headers["x-routatic-fallback"].startswith(f"first/{MODEL}=")
    assert len(upstream.calls(first)) == len(upstream.calls(second)) == 1


def test_connection_refused_falls_back(upstream: FakeUpstream) -> None:
    second = upstream.provider()
    config = gateway_config(
        {
            "down": {"protocol": "anthropic", "base_url": closed_port_url(), "auth": "passthrough"},
            "up": {
                "protocol": "anthropic",
                "base_url": upstream.url(second),
                "auth": "passthrough",
            },
        },
        [{"match": "*", "chain": ["down/{model}", "up/{model}"]}],
    )
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST)
    assert response.status_code == 200
    # Retried once on the same target after a short pause, then moved on.
    assert response.headers["x-routatic-fallback"] == (
        f"down/{MODEL}=connect_error, down/{MODEL}=connect_error"
    )
    assert response.headers["x-routatic-attempts"] == "3"


def test_first_byte_timeout_falls_back(upstream: FakeUpstream) -> None:
    config, first, _ = two_targets(upstream, first_byte_timeout="50ms")
    upstream.script(first, {"hang": True})
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=STREAM)
    assert response.status_code == 200
    assert response.headers["x-routatic-fallback"] == f"first/{MODEL}=first_byte_timeout"
    assert b"event: message_stop" in response.content


@pytest.mark.parametrize(
    ("events", "then", "reason"),
    [
        (anthropic_stream(MODEL)[:2], "break", "protocol_error"),
        (anthropic_stream(MODEL)[:2], None, "stream_ended_early"),
        ([], None, "empty_stream"),
        (
            [
                *anthropic_stream(MODEL)[:1],
                f"event: error\ndata: {error_json('overloaded_error', 'Overloaded')}\n\n",
            ],
            None,
            "overloaded",
        ),
    ],
    ids=["reset", "eof", "empty", "error-event"],
)
def test_a_stream_that_fails_before_content_falls_back_invisibly(
    upstream: FakeUpstream, events: list[str], then: str | None, reason: str
) -> None:
    config, first, second = two_targets(upstream)
    upstream.script(first, {"sse": events, "then": then})
    with gateway(config) as url:
        client = anthropic.Anthropic(base_url=url, api_key="sk-client", max_retries=0)
        with client.messages.stream(**REQUEST) as stream:  # type: ignore[arg-type]
            events_seen = [event.type for event in stream]
            final = stream.get_final_message()
        client.close()
    assert final.model == "backup-model"
    assert events_seen.count("message_start") == 1
    assert events_seen[-1] == "message_stop"
    assert len(upstream.calls(second)) == 1
    with gateway(config) as url:
        upstream.script(first, {"sse": events, "then": then})
        response = httpx.post(f"{url}/v1/messages", json=STREAM)
    assert response.headers["x-routatic-fallback"] == f"first/{MODEL}={reason}"
    assert response.content.count(b"event: message_start") == 1


def test_a_failure_after_the_commit_ends_with_an_error_event(upstream: FakeUpstream) -> None:
    config, first, second = two_targets(upstream)
    upstream.script(first, {"sse": anthropic_stream(MODEL)[:4], "then": "break"})
    with gateway(config) as url:
        client = anthropic.Anthropic(base_url=url, api_key="sk-client", max_retries=0)
        with (
            pytest.raises(anthropic.APIStatusError) as caught,
            client.messages.stream(**REQUEST) as stream,  # type: ignore[arg-type]
        ):
            for _ in stream:
                pass
        client.close()
    assert caught.value.type == "api_error"  # type: ignore[attr-defined]
    assert upstream.calls(second) == []


def test_a_clean_end_without_message_stop_is_reported(upstream: FakeUpstream) -> None:
    config, first, _ = two_targets(upstream)
    upstream.script(first, {"sse": anthropic_stream(MODEL)[:5]})
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=STREAM)
    assert response.content.endswith(b"\n\n")
    last_event = response.content.strip().split(b"\n\n")[-1]
    assert last_event.startswith(b"event: error\n")


def test_client_errors_from_the_first_target_come_back_unchanged(upstream: FakeUpstream) -> None:
    config, first, second = two_targets(upstream)
    body = error_json("invalid_request_error", "messages: field required")
    upstream.script(first, {"status": 400, "headers": {"request-id": "req_1"}, "body": body})
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST)
    assert response.status_code == 400
    assert response.text == body
    assert response.headers["request-id"] == "req_1"
    assert upstream.calls(second) == []


def test_a_passthrough_credential_rejection_goes_back_to_the_client(upstream: FakeUpstream) -> None:
    config, first, second = two_targets(upstream)
    body = error_json("authentication_error", "invalid x-api-key")
    upstream.script(first, {"status": 401, "body": body})
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST, headers={"x-api-key": "bad"})
    assert response.status_code == 401
    assert response.text == body
    assert upstream.calls(second) == []


def test_unfit_answers_from_a_fallback_target_go_on(upstream: FakeUpstream) -> None:
    first, second, third = upstream.provider(), upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            name: {"protocol": "anthropic", "base_url": upstream.url(prefix), "auth": "none"}
            for name, prefix in (("a", first), ("b", second), ("c", third))
        },
        [{"match": "*", "chain": ["a/{model}", "b/small", "c/{model}"]}],
        resilience={"retry": {"attempts": 0}},
    )
    upstream.script(first, {"status": 503, "body": "{}"})
    upstream.script(
        second, {"status": 400, "body": error_json("invalid_request_error", "prompt is too long")}
    )
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST)
    assert response.status_code == 200
    assert response.headers["x-routatic-fallback"] == (
        f"a/{MODEL}=status_503, b/small=context_too_long"
    )


def test_max_attempts_bounds_the_chain(upstream: FakeUpstream) -> None:
    prefixes = [upstream.provider() for _ in range(3)]
    config = gateway_config(
        {
            f"p{i}": {"protocol": "anthropic", "base_url": upstream.url(prefix), "auth": "none"}
            for i, prefix in enumerate(prefixes)
        },
        [{"match": "*", "chain": [f"p{i}/{{model}}" for i in range(3)]}],
        resilience={"max_attempts": 2},
    )
    for prefix in prefixes:
        upstream.script(prefix, {"status": 503, "body": "{}"})
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST)
    assert response.status_code == 503
    assert response.headers["x-routatic-attempts"] == "2"
    assert upstream.calls(prefixes[2]) == []


def test_the_deadline_bounds_the_whole_request(upstream: FakeUpstream) -> None:
    config, first, second = two_targets(upstream, deadline="100ms")
    upstream.script(first, {"hang": True})
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST)
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"
    assert upstream.calls(second) == []


def test_all_rate_limited_answers_429_with_the_soonest_retry_after(upstream: FakeUpstream) -> None:
    config, first, second = two_targets(upstream)
    limit = error_json("rate_limit_error", "slow down")
    upstream.script(first, {"status": 429, "headers": {"retry-after": "30"}, "body": limit})
    upstream.script(second, {"status": 429, "headers": {"retry-after": "7"}, "body": limit})
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_all_overloaded_answers_529(upstream: FakeUpstream) -> None:
    config, first, second = two_targets(upstream)
    upstream.script(first, {"status": 529, "body": error_json("overloaded_error", "Overloaded")})
    upstream.script(second, {"status": 500, "body": error_json("api_error", "oops")})
    with gateway(config) as url:
        client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
        with pytest.raises(anthropic.InternalServerError) as caught:
            client.messages.create(**REQUEST)  # type: ignore[arg-type]
        client.close()
    assert caught.value.status_code == 529
    assert "first/" in caught.value.message and "second/backup-model" in caught.value.message


def test_all_unreachable_answers_503(upstream: FakeUpstream) -> None:
    config = gateway_config(
        {
            "a": {"protocol": "anthropic", "base_url": closed_port_url(), "auth": "none"},
            "b": {"protocol": "anthropic", "base_url": closed_port_url(), "auth": "none"},
        },
        [{"match": "*", "chain": ["a/{model}", "b/{model}"]}],
    )
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=STREAM)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == "api_error"
    assert "Traceback" not in response.text


def test_a_single_targets_own_failure_is_returned_as_is(upstream: FakeUpstream) -> None:
    prefix = upstream.provider()
    config = gateway_config(
        {"a": {"protocol": "anthropic", "base_url": upstream.url(prefix), "auth": "none"}},
        [{"match": "*", "chain": ["a/{model}"]}],
    )
    body = error_json("rate_limit_error", "slow down")
    upstream.script(prefix, {"status": 429, "headers": {"retry-after": "12"}, "body": body})
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST)
    assert response.status_code == 429
    assert response.text == body
    assert response.headers["retry-after"] == "12"


def assert_cancelled_and_blameless(
    upstream: FakeUpstream, url: str, first: str, closed_at: float
) -> None:
    """The upstream saw the client go within 100 ms, and it was not the upstream's failure:
    the next request goes to the same target."""
    call = upstream.disconnected(first)[-1]
    assert call["disconnected_at"] - closed_at < 0.1
    target = httpx.post(f"{url}/v1/messages", json=REQUEST).headers["x-routatic-target"]
    assert target == f"first/{MODEL}"


def test_a_client_disconnect_cancels_the_upstream_request(upstream: FakeUpstream) -> None:
    config, first, second = two_targets(upstream)
    upstream.script(first, {"sse": anthropic_stream(MODEL)[:4], "then": "hang"})
    with gateway(config) as url:
        with httpx.stream("POST", f"{url}/v1/messages", json=STREAM) as r:
            lines = r.iter_lines()
            assert next(lines) == "event: message_start"
            closed_at = time.monotonic()
        assert_cancelled_and_blameless(upstream, url, first, closed_at)
    assert upstream.calls(second) == []


def test_a_client_gone_before_the_commit_cancels_the_upstream_request(
    upstream: FakeUpstream,
) -> None:
    config, first, second = two_targets(upstream)
    upstream.script(first, {"sse": anthropic_stream(MODEL)[:1], "then": "hang"})
    body = json.dumps(STREAM).encode()
    with gateway(config) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(
                b"POST /v1/messages HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            # Each look is a round trip to the fake; the request reaches it in a few.
            reached = any(upstream.calls(first) for _ in range(1000))
            assert reached
            closed_at = time.monotonic()
        assert_cancelled_and_blameless(upstream, url, first, closed_at)
    assert upstream.calls(second) == []


@pytest.mark.parametrize(
    ("answer", "status", "kind"),
    [
        ({"sse": anthropic_stream(MODEL)[:2], "then": "hang"}, 504, "timeout_error"),
        (
            {
                "sse": [
                    anthropic_stream(MODEL)[0],
                    f"event: error\ndata: {error_json('overloaded_error', 'Overloaded')}\n\n",
                ]
            },
            529,
            "overloaded_error",
        ),
        ({"sse": anthropic_stream(MODEL)[:2]}, 503, "api_error"),
    ],
    ids=["first-byte-timeout", "error-event", "early-end"],
)
def test_a_lone_stream_that_fails_before_content_is_an_error_not_a_200(
    upstream: FakeUpstream, answer: dict[str, Any], status: int, kind: str
) -> None:
    prefix = upstream.provider()
    config = gateway_config(
        {"a": {"protocol": "anthropic", "base_url": upstream.url(prefix), "auth": "passthrough"}},
        [{"match": "*", "chain": ["a/{model}"]}],
        resilience={"first_byte_timeout": "50ms"},
    )
    upstream.script(prefix, answer, answer)  # a blip is retried once: it fails twice
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=STREAM)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == kind
    assert b"message_start" not in response.content


# A 503 costs the call and its retry on the same key; a rate limit moves from key to key.
@pytest.mark.parametrize(("status", "pool_calls"), [(503, 2), (429, 3)])
def test_a_failing_pool_spends_one_call_unless_its_keys_are_rate_limited(
    upstream: FakeUpstream, status: int, pool_calls: int
) -> None:
    pool, backup = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "pool": {
                "protocol": "anthropic",
                "base_url": upstream.url(pool),
                "keys": ["sk-pool-k0", "sk-pool-k1", "sk-pool-k2"],
            },
            "backup": {"protocol": "anthropic", "base_url": upstream.url(backup), "auth": "none"},
        },
        [{"match": "*", "chain": ["pool/{model}", "backup/{model}"]}],
    )
    upstream.script(pool, *[{"status": status, "body": error_json("api_error", "no")}] * 3)
    with gateway(config) as url:
        response = httpx.post(f"{url}/v1/messages", json=REQUEST)
    assert response.status_code == 200
    assert response.headers["x-routatic-target"] == f"backup/{MODEL}"
    assert len(upstream.calls(pool)) == pool_calls
