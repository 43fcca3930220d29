"""End to end: the failoverbench faults, on the Anthropic and the OpenAI wire, streamed and not.

A real gateway with the default resilience settings (on a fake clock; a timeout a fault
waits on is set short) in front of the fake provider process. Each test asserts what the
client received, every call the fake saw, the headers and the log line, and the timing where
it matters. The README's fault table says what each of these shows.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import FakeUpstream, gateway_config, request_log
from tests.e2e.serving import gateway
from tests.fake_clock import FakeClock
from tests.fault_kit import (
    MODEL,
    WIRES,
    Resetter,
    Wire,
    http_answer,
    words,
)

CASES = [(wire, stream) for wire in WIRES for stream in (False, True)]
IDS = [f"{wire.name}-{'stream' if stream else 'whole'}" for wire, stream in CASES]
PRIMARY = f"primary/{MODEL}"

Case = tuple[Wire, bool]


@pytest.fixture(params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest) -> Case:
    found: Case = request.param
    return found


def chain(
    upstream: FakeUpstream,
    wire: Wire,
    *,
    primary_url: str | None = None,
    backup_models: dict[str, Any] | None = None,
    **resilience: Any,
) -> tuple[Any, str, str]:
    """primary then backup, both of the wire's protocol, with default resilience."""
    primary, backup = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "primary": wire.provider(primary_url or upstream.url(primary)),
            "backup": {**wire.provider(upstream.url(backup)), "models": backup_models or {}},
        },
        [{"match": "*", "chain": ["primary/{model}", "backup/backup-model"]}],
        resilience=resilience,
    )
    return config, primary, backup


def lone(upstream: FakeUpstream, wire: Wire) -> tuple[Any, str]:
    prefix = upstream.provider()
    config = gateway_config(
        {"lone": wire.provider(upstream.url(prefix))}, [{"match": "*", "chain": ["lone/{model}"]}]
    )
    return config, prefix


def ask(url: str, wire: Wire, stream: bool) -> httpx.Response:
    return httpx.post(url + wire.path, json=wire.body(stream), timeout=30)


def healthy_text(stream: bool) -> str:
    return words(3) if stream else "Hello from the fake upstream."


def attempts(line: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(a["target"], a["outcome"], a["reason"]) for a in line["attempts"]]


def rate_limited(wire: Wire, retry_after: str | None) -> dict[str, Any]:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return {"status": 429, "headers": headers, "body": wire.error(429, "rate_limit_error")}


# --- 1. 429 with a short Retry-After ----------------------------------------------------------


def test_a_short_retry_after_is_waited_out_on_the_same_target(
    upstream: FakeUpstream, case: Case
) -> None:
    wire, stream = case
    config, primary, backup = chain(upstream, wire)
    upstream.script(primary, rate_limited(wire, "2"))
    clock = FakeClock()
    with request_log() as log, gateway(config, clock=clock) as url:
        response = ask(url, wire, stream)
        [line] = log.wait(1)
    assert wire.text(response, stream) == healthy_text(stream)
    assert clock.slept == [2.0]  # the Retry-After, waited out before the second call
    assert len(upstream.calls(primary)) == 2 and upstream.calls(backup) == []
    assert response.headers["x-routatic-target"] == PRIMARY
    assert response.headers["x-routatic-attempts"] == "2"
    assert attempts(line) == [
        (PRIMARY, "transient", "rate_limited"),
        (PRIMARY, "success", "retried"),
    ]
    assert line["attempts"][1]["via"] == "retried"


# --- 2. persistent 429 -------------------------------------------------------------------------


def test_a_long_retry_after_moves_on_and_opens_the_breaker_at_once(
    upstream: FakeUpstream, case: Case
) -> None:
    wire, stream = case
    config, primary, backup = chain(upstream, wire)
    upstream.script(primary, rate_limited(wire, "30"), rate_limited(wire, "30"))
    clock = FakeClock()
    with gateway(config, clock=clock) as url:
        first = ask(url, wire, stream)
        second = ask(url, wire, stream)
        clock.now += 31
        probed = ask(url, wire, stream)
    assert wire.text(first, stream) == wire.text(second, stream) == healthy_text(stream)
    assert clock.slept == []  # 30 s is longer than retry.max_wait: not waited out
    assert first.headers["x-routatic-fallback"] == f"{PRIMARY}=rate_limited"
    assert second.headers["x-routatic-fallback"] == f"{PRIMARY}=breaker_open"
    # One call opened it; the request after the Retry-After probes (and meets the 2nd 429).
    assert len(upstream.calls(primary)) == 2
    assert probed.headers["x-routatic-fallback"] == f"{PRIMARY}=rate_limited"
    assert len(upstream.calls(backup)) == 3


def test_a_429_without_retry_after_opens_the_breaker_on_the_second(
    upstream: FakeUpstream, case: Case
) -> None:
    wire, stream = case
    config, primary, backup = chain(upstream, wire)
    upstream.script(primary, rate_limited(wire, None), rate_limited(wire, None))
    with gateway(config, clock=FakeClock()) as url:
        served = [ask(url, wire, stream) for _ in range(3)]
    assert [wire.text(r, stream) for r in served] == [healthy_text(stream)] * 3
    assert len(upstream.calls(primary)) == 2  # not retried without a stated wait
    assert served[2].headers["x-routatic-fallback"] == f"{PRIMARY}=breaker_open"
    assert len(upstream.calls(backup)) == 3


# --- 3. one 500 --------------------------------------------------------------------------------


def test_one_500_is_mended_by_a_retry_and_opens_nothing(upstream: FakeUpstream, case: Case) -> None:
    wire, stream = case
    config, primary, backup = chain(upstream, wire)
    upstream.script(primary, {"status": 500, "body": wire.error(500)})
    clock = FakeClock()
    with request_log() as log, gateway(config, clock=clock) as url:
        response = ask(url, wire, stream)
        status = httpx.get(f"{url}/status").json()
        again = ask(url, wire, stream)
        [line, _] = log.wait(2)
    assert wire.text(response, stream) == healthy_text(stream)
    assert response.headers["x-routatic-target"] == PRIMARY
    [pause] = clock.slept
    assert 0.1 <= pause <= 0.5  # a short jittered pause
    assert attempts(line) == [(PRIMARY, "transient", "status_500"), (PRIMARY, "success", "retried")]
    assert [b["state"] for b in status["breakers"]] == ["closed"]  # backup/backup-model
    assert again.headers["x-routatic-attempts"] == "1"
    assert len(upstream.calls(primary)) == 3 and upstream.calls(backup) == []


# --- 4. persistent 503 -------------------------------------------------------------------------


def test_a_persistent_503_costs_two_calls_then_the_breaker_skips_it(
    upstream: FakeUpstream, case: Case
) -> None:
    wire, stream = case
    config, primary, backup = chain(upstream, wire)
    upstream.script(primary, *[{"status": 503, "body": wire.error(503)}] * 3)
    clock = FakeClock()
    with request_log() as log, gateway(config, clock=clock) as url:
        first = ask(url, wire, stream)
        second = ask(url, wire, stream)
        clock.now += 31  # the breaker's wait (at most 30 s) is over
        probed = ask(url, wire, stream)
        lines = log.wait(3)
    assert [wire.text(r, stream) for r in (first, second, probed)] == [healthy_text(stream)] * 3
    assert attempts(lines[0]) == [
        (PRIMARY, "transient", "status_503"),
        (PRIMARY, "transient", "status_503"),
        ("backup/backup-model", "success", "ok"),
    ]
    assert first.headers["x-routatic-attempts"] == "3"
    assert second.headers["x-routatic-fallback"] == f"{PRIMARY}=breaker_open"
    assert second.headers["x-routatic-attempts"] == "1"
    # The probe is one call, never retried: 2 + 1 calls in all.
    assert len(upstream.calls(primary)) == 3
    assert attempts(lines[2])[0] == (PRIMARY, "transient", "status_503")
    assert len(upstream.calls(backup)) == 3


# --- 5. TCP reset ------------------------------------------------------------------------------


@pytest.mark.parametrize("resets", [1, 2])
def test_a_reset_connection_is_retried_once_then_moves_on(
    upstream: FakeUpstream, case: Case, resets: int
) -> None:
    wire, stream = case
    if stream:
        healthy = http_answer("text/event-stream", "".join(wire.stream()).encode())
    else:
        healthy = http_answer("application/json", wire.whole())
    resetter = Resetter(resets, healthy)
    try:
        config, _, backup = chain(upstream, wire, primary_url=resetter.url)
        with gateway(config, clock=FakeClock()) as url:
            response = ask(url, wire, stream)
    finally:
        resetter.close()
    assert wire.text(response, stream) == healthy_text(stream)
    assert resetter.connections == 2  # the call and its retry
    served = PRIMARY if resets == 1 else "backup/backup-model"
    assert response.headers["x-routatic-target"] == served
    assert len(upstream.calls(backup)) == (resets - 1)


# --- 11. a stream without [DONE] ----------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES, ids=[w.name for w in WIRES])
def test_a_stream_complete_but_for_its_last_event_is_a_whole_answer(
    upstream: FakeUpstream, wire: Wire
) -> None:
    """No `[DONE]` (OpenAI) or `message_stop` (Anthropic) after the finish reason and usage."""
    config, primary, backup = chain(upstream, wire)
    upstream.script(primary, {"sse": wire.stream()[:-1]})
    with request_log() as log, gateway(config, clock=FakeClock()) as url:
        response = ask(url, wire, True)
        [line] = log.wait(1)
    assert wire.text(response, True) == words(3)  # ends as the protocol says, no error event
    assert attempts(line) == [(PRIMARY, "success", "ok")]
    assert line["tokens"]["output"] == 3
    assert len(upstream.calls(primary)) == 1 and upstream.calls(backup) == []


# --- 12. context too long on the first target -----------------------------------------------------


def too_long(wire: Wire) -> dict[str, Any]:
    if wire.name == "anthropic":
        message = "prompt is too long: 250000 tokens > 200000 maximum"
        return {"status": 400, "body": wire.error(400, "invalid_request_error", message)}
    message = "This model's maximum context length is 128000 tokens."
    return {"status": 400, "body": wire.error(400, "context_length_exceeded", message)}


def test_context_too_long_moves_on_to_a_target_known_to_hold_more(
    upstream: FakeUpstream, case: Case
) -> None:
    wire, stream = case
    config, primary, backup = chain(
        upstream, wire, backup_models={"backup-model": {"context": 1_000_000}}
    )
    upstream.script(primary, too_long(wire))
    with request_log() as log, gateway(config, clock=FakeClock()) as url:
        response = ask(url, wire, stream)
        [line] = log.wait(1)
    assert wire.text(response, stream) == healthy_text(stream)
    assert response.headers["x-routatic-target"] == "backup/backup-model"
    assert attempts(line) == [
        (PRIMARY, "client", "context_too_long"),
        ("backup/backup-model", "success", "ok"),
    ]
    assert len(upstream.calls(primary)) == 1 and len(upstream.calls(backup)) == 1


def test_context_too_long_goes_back_when_no_target_is_known_to_hold_more(
    upstream: FakeUpstream, case: Case
) -> None:
    wire, stream = case
    config, primary, backup = chain(upstream, wire)
    answer = too_long(wire)
    upstream.script(primary, answer)
    with gateway(config, clock=FakeClock()) as url:
        response = ask(url, wire, stream)
    assert response.status_code == 400  # as it came: Claude Code compacts on it
    assert response.text == answer["body"]
    assert upstream.calls(backup) == []


# --- 13. a content filter ------------------------------------------------------------------------


def refusal(wire: Wire, stream: bool) -> dict[str, Any]:
    if wire.name == "anthropic":
        if stream:
            events = wire.stream(0)
            events = [events[0], *events[-2:]]  # message_start, message_delta, message_stop
            events[1] = events[1].replace('"end_turn"', '"refusal"')
            return {"sse": events}
        body = json.loads(wire.whole())
        body.update(content=[], stop_reason="refusal")
        return {"status": 200, "json": body}
    if stream:
        events = wire.stream(0)
        events[1] = events[1].replace('"stop"', '"content_filter"')
        return {"sse": events}
    body = json.loads(wire.whole())
    body["choices"][0].update(message={"role": "assistant", "content": ""})
    body["choices"][0]["finish_reason"] = "content_filter"
    return {"status": 200, "json": body}


def test_a_content_filter_refusal_is_relayed_as_sent(upstream: FakeUpstream, case: Case) -> None:
    wire, stream = case
    config, primary, backup = chain(upstream, wire)
    upstream.script(primary, refusal(wire, stream))
    with request_log() as log, gateway(config, clock=FakeClock()) as url:
        response = ask(url, wire, stream)
        [line] = log.wait(1)
    assert wire.text(response, stream) == ""
    expected = "refusal" if wire.name == "anthropic" else "content_filter"
    assert wire.stop_reason(response, stream) == expected
    assert line["stop_reason"] == expected
    assert attempts(line) == [(PRIMARY, "success", "ok")]  # never retried, never hidden
    assert len(upstream.calls(primary)) == 1 and upstream.calls(backup) == []


# --- 15. a primary that flaps ------------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES, ids=[w.name for w in WIRES])
def test_a_flapping_primary_is_left_alone_then_back_within_30_s(
    upstream: FakeUpstream, wire: Wire
) -> None:
    """Down for 60 s under 20 requests (one every 3 s), then up again."""
    config, primary, backup = chain(upstream, wire)
    upstream.script(primary, *[{"status": 503, "body": wire.error(503)}] * 40)
    clock = FakeClock()
    start = clock.now
    with gateway(config, clock=clock) as url:
        for n in range(20):
            clock.now = max(clock.now, start + 3 * n)
            assert wire.text(ask(url, wire, False), False) == healthy_text(False)
        during = len(upstream.calls(primary))
        upstream.clear(primary)  # recovered at 60 s
        recovered_at = start + 60
        back_at = None
        for n in range(20, 40):
            clock.now = max(clock.now, start + 3 * n)
            if ask(url, wire, False).headers["x-routatic-target"] == PRIMARY:
                back_at = clock.now
                break
    assert during * 3 <= 20  # at most one primary call per three requests
    assert back_at is not None and back_at - recovered_at <= 30
    assert len(upstream.calls(backup)) >= 20


# --- panic: a lone target is never locked out by failures alone ----------------------------------


def test_a_lone_target_open_on_failures_still_gets_the_request(
    upstream: FakeUpstream, case: Case
) -> None:
    wire, stream = case
    config, prefix = lone(upstream, wire)
    upstream.script(prefix, *[{"status": 503, "body": wire.error(503)}] * 2)
    with request_log() as log, gateway(config, clock=FakeClock()) as url:
        failed = ask(url, wire, stream)
        panicked = ask(url, wire, stream)
        lines = log.wait(2)
    assert failed.status_code == 503
    assert wire.text(panicked, stream) == healthy_text(stream)
    assert attempts(lines[1]) == [
        (f"lone/{MODEL}", "skipped", "breaker_open"),
        (f"lone/{MODEL}", "success", "ok"),
    ]
    assert len(upstream.calls(prefix)) == 3


def test_a_lone_target_told_to_wait_is_not_called_early(upstream: FakeUpstream) -> None:
    wire = WIRES[0]
    config, prefix = lone(upstream, wire)
    upstream.script(prefix, rate_limited(wire, "60"))
    with gateway(config, clock=FakeClock()) as url:
        first = ask(url, wire, False)
        second = ask(url, wire, False)
    assert first.status_code == 429 and second.status_code == 503  # at once, without a call
    assert 55 <= int(second.headers["retry-after"]) <= 60
    assert len(upstream.calls(prefix)) == 1


# --- 8, 9, 10, 14. a stream broken after its commit: cut, stalled, malformed ------------------


def broken_after(wire: Wire, sent: int, then: str) -> dict[str, Any]:
    """A 60-word stream that delivers `sent` words, then breaks as `then` says."""
    events = wire.stream(60)
    head = 3 if wire.name == "anthropic" else 1  # message_start, ping, block start | role
    answer: dict[str, Any] = {"sse": events[: head + sent]}
    if then == "malformed":
        name = "event: content_block_delta\n" if wire.name == "anthropic" else ""
        answer["sse"].append(name + 'data: {"choices": [{"delta": {"content": "wor\n\n')
        answer["then"] = "hang"
    else:
        answer["then"] = then
    return answer


def continuation_asked(call: dict[str, Any]) -> str:
    body = json.loads(call["body"])
    last = body["messages"][-1]
    assert last["role"] == "user"  # never an assistant prefill
    assert all(m["role"] != "assistant" for m in body["messages"])
    content: str = last["content"]
    return content


@pytest.mark.parametrize("then", ["break", "hang", "malformed"], ids=["cut", "stall", "malformed"])
@pytest.mark.parametrize("wire", WIRES, ids=[w.name for w in WIRES])
def test_a_stream_broken_after_its_commit_is_continued_on_the_next_target(
    upstream: FakeUpstream, wire: Wire, then: str
) -> None:
    config, primary, backup = chain(upstream, wire, idle_timeout="300ms")
    upstream.script(primary, broken_after(wire, 40, then))
    with request_log() as log, gateway(config, clock=FakeClock()) as url:
        response = ask(url, wire, True)
        [line] = log.wait(1)
    # One well-formed answer: the 40 words, then the continuation (the fake's 3 words).
    assert wire.text(response, True) == words(40) + words(3)
    [asked] = upstream.calls(backup)
    assert words(40).strip() in continuation_asked(asked)
    assert len(upstream.calls(primary)) == 1
    assert [(a["target"], a["outcome"]) for a in line["attempts"]] == [
        (PRIMARY, "transient"),  # it broke after its commit
        ("backup/backup-model", "success"),
    ]
    assert line["attempts"][1]["reason"] == "rescued"
    if wire.name == "anthropic":
        assert response.text.count("event: message_start") == 1
        assert response.text.count("event: content_block_start") == 1  # the text goes on
        assert '"output_tokens":' in response.text.split("message_delta")[-1]


def test_a_rescue_asks_in_a_user_turn_every_target_accepts(upstream: FakeUpstream) -> None:
    """The backup refuses assistant prefill (as current Claude models do): a rescue never
    sends one, so it is served."""
    wire = WIRES[0]
    config, primary, backup = chain(upstream, wire)
    upstream.script(primary, broken_after(wire, 40, "break"))
    with gateway(config, clock=FakeClock()) as url:
        response = ask(url, wire, True)
    assert wire.text(response, True).startswith(words(40))
    body = json.loads(upstream.calls(backup)[0]["body"])
    assert body["messages"][-1]["role"] == "user" and body["stream"] is True


def test_a_stream_that_cannot_be_rescued_ends_with_the_error_event(upstream: FakeUpstream) -> None:
    wire = WIRES[0]
    config, primary, backup = chain(upstream, wire, rescue=False)
    upstream.script(primary, broken_after(wire, 40, "break"))
    with gateway(config, clock=FakeClock()) as url:
        response = ask(url, wire, True)
    last = response.text.strip().split("\n\n")[-1]
    assert last.startswith("event: error\n")
    assert upstream.calls(backup) == []
