"""An upstream that sends garbage, events that never end, endless holds and giant bodies.

Whatever it sends, the gateway's memory and work stay bounded, and the client gets what the
commit point promises: before the commit the next target serves; after it, a well-formed
error event or chunk ends the 200 stream. Never a 200 cut in the middle of its body, never a
traceback; a broken answer is logged as an upstream error, once.
"""

from __future__ import annotations

import json
import logging
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FakeUpstream, RequestLines, gateway_config, one_provider
from tests.e2e.serving import gateway, serve
from tests.fake_upstream import anthropic_message, anthropic_stream

MIB = 1024 * 1024
ASK = {"model": "claude-x", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}
COMMITTED = "".join(anthropic_stream("claude-x", deltas=1)[:4])  # through the first delta
NEVER_ENDS = "event: content_block_delta\ndata: "


def two_targets(upstream: FakeUpstream, first: str = "anthropic") -> tuple[Any, str, str]:
    one, two = upstream.provider(), upstream.provider()
    protocol = {"protocol": first, "base_url": upstream.url(one), "keys": ["sk-first-00001"]}
    if first == "openai":
        protocol["base_url"] += "/v1"
    config = gateway_config(
        {
            "first": protocol,
            "second": {"protocol": "anthropic", "base_url": upstream.url(two), "auth": "none"},
        },
        [{"match": "*", "chain": ["first/{model}", "second/{model}"]}],
        # Each hostile answer is one fallback, or one error event after the commit.
        resilience={"retry": {"attempts": 0}, "rescue": False},
    )
    return config, one, two


def stream(url: str, body: dict[str, Any], path: str = "/v1/messages") -> httpx.Response:
    with httpx.stream("POST", url + path, json={**body, "stream": True}, timeout=30) as response:
        response.read()
    return response


@pytest.fixture
def logs() -> Iterator[list[logging.LogRecord]]:
    """Every record the gateway and the server log at WARNING and above."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.WARNING)
    loggers = [logging.getLogger(name) for name in ("routatic_asgi", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    yield records
    for logger in loggers:
        logger.removeHandler(handler)


def no_tracebacks(records: list[logging.LogRecord]) -> None:
    assert [r.getMessage() for r in records if r.exc_info] == []


def test_an_event_that_never_ends_falls_back_before_the_commit(
    upstream: FakeUpstream, logs: list[logging.LogRecord]
) -> None:
    config, one, _ = two_targets(upstream)
    head = anthropic_stream("claude-x")[0] + NEVER_ENDS
    upstream.script(one, {"flood": {"head": head, "chunk": "x" * 65536, "bytes": 24 * MIB}})
    with gateway(config) as url:
        response = stream(url, ASK)
    assert response.status_code == 200
    assert response.headers["x-routatic-target"] == "second/claude-x"
    assert response.headers["x-routatic-fallback"] == "first/claude-x=event_too_large"
    assert response.text.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert "disconnected_at" in upstream.disconnected(one)[-1]  # its connection was closed
    no_tracebacks(logs)


def test_endless_holds_before_content_fall_back(upstream: FakeUpstream) -> None:
    config, one, _ = two_targets(upstream)
    ping = 'event: ping\ndata: {"type": "ping"}\n\n'
    head = anthropic_stream("claude-x")[0]
    upstream.script(one, {"flood": {"head": head, "chunk": ping * 200, "bytes": None}})
    with gateway(config) as url:
        response = stream(url, ASK)
    assert response.headers["x-routatic-fallback"] == "first/claude-x=event_too_large"
    assert "disconnected_at" in upstream.disconnected(one)[-1]


def test_an_event_that_never_ends_after_the_commit_ends_in_an_error_event_within_bounded_memory(
    upstream: FakeUpstream,
    logs: list[logging.LogRecord],
    request_lines: RequestLines,
) -> None:
    config, one, _ = two_targets(upstream)
    head = COMMITTED + NEVER_ENDS
    upstream.script(one, {"flood": {"head": head, "chunk": "x" * 65536, "bytes": 32 * MIB}})
    with gateway(config) as url:
        tracemalloc.start()
        try:
            response = stream(url, ASK)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status_code == 200
    assert response.text.startswith(COMMITTED)
    error = response.text.removeprefix(COMMITTED)
    assert error.startswith("event: error\ndata: ")
    assert json.loads(error.split("data: ", 1)[1])["error"]["type"] == "api_error"
    # The framer held at most its 16 MiB limit; the old framer held all 32 MiB, twice over.
    assert peak < 24 * MIB, f"{peak / MIB:.1f} MiB at peak"
    warnings = [r.getMessage() for r in logs if r.name == "routatic_asgi"]
    assert warnings == [
        "the answer from first/claude-x broke off after it had begun: event_too_large"
    ]
    no_tracebacks(logs)
    line = request_lines.of("claude-x")
    assert (line["status"], line["outcome"]) == (200, "upstream_error")
    assert line["attempts"] == [
        {
            "target": "first/claude-x",
            "credential": "first#0",
            "outcome": "transient",
            "reason": "event_too_large",
            "status": 200,
        }
    ]


def openai_chunk(delta: Any) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": None}
    return "data: " + json.dumps({"id": "c1", "model": "m", "choices": [choice]}) + "\n\n"


@pytest.mark.parametrize("committed", [False, True], ids=["before", "after"])
def test_a_malformed_chunk_on_a_translated_stream_is_an_upstream_failure(
    upstream: FakeUpstream,
    logs: list[logging.LogRecord],
    request_lines: RequestLines,
    committed: bool,
) -> None:
    """An OpenAI-protocol target's `tool_calls: 5`, read for an Anthropic client."""
    config, one, _ = two_targets(upstream, first="openai")
    events = [openai_chunk({"role": "assistant"})]
    if committed:
        events.append(openai_chunk({"content": "Hello"}))
    events += [openai_chunk({"tool_calls": 5}), openai_chunk({"content": "more"})]
    upstream.script(one, {"sse": events})
    with gateway(config) as url:
        response = stream(url, ASK)
    assert response.status_code == 200
    if committed:
        assert response.headers["x-routatic-target"] == "first/claude-x"
        assert '"text":"Hello"' in response.text
        assert response.text.endswith("\n\n")
        last = response.text.rstrip("\n").rsplit("\n\n", 1)[-1]
        assert last.startswith("event: error\ndata: ")
        assert "more" not in response.text
        line = request_lines.of("claude-x")
        assert line["outcome"] == "upstream_error"
        assert line["attempts"][0]["reason"] == "malformed_event"
    else:
        assert response.headers["x-routatic-fallback"] == "first/claude-x=malformed_event"
        assert response.headers["x-routatic-target"] == "second/claude-x"
    no_tracebacks(logs)


@pytest.mark.parametrize("committed", [False, True], ids=["before", "after"])
def test_a_malformed_event_from_an_anthropic_target_is_an_upstream_failure(
    upstream: FakeUpstream, logs: list[logging.LogRecord], committed: bool
) -> None:
    """An Anthropic target's content block with a string `index`, read for an OpenAI client."""
    one, two = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "first": {"protocol": "anthropic", "base_url": upstream.url(one), "keys": ["sk-a-1"]},
            "second": {"protocol": "openai", "base_url": upstream.url(two) + "/v1", "auth": "none"},
        },
        [{"match": "*", "chain": ["first/{model}", "second/{model}"]}],
        resilience={"rescue": False},  # the error event, not a continuation
    )
    start = anthropic_stream("gpt-x")[0]
    bad = {"type": "content_block_start", "index": "first", "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "read", "input": {}}}  # fmt: skip
    events = [start]
    if committed:
        events += anthropic_stream("gpt-x", deltas=1)[2:4]
    events.append(f"event: content_block_start\ndata: {json.dumps(bad)}\n\n")
    upstream.script(one, {"sse": events, "then": "hang"})
    with gateway(config) as url:
        response = stream(url, CHAT, "/v1/chat/completions")
    assert response.status_code == 200
    if committed:
        last = response.text.rstrip("\n").rsplit("\n\n", 1)[-1]
        assert last.startswith("data: ") and "error" in json.loads(last[6:])
    else:
        assert response.headers["x-routatic-fallback"] == "first/gpt-x=malformed_event"
        assert response.text.endswith("data: [DONE]\n\n")
    no_tracebacks(logs)


def test_a_giant_translated_answer_is_read_with_a_cap(upstream: FakeUpstream) -> None:
    config, one, _ = two_targets(upstream, first="openai")
    flood = {"head": '{"choices":[{"message":{"content":"', "chunk": "x" * 65536, "bytes": 40 * MIB}
    upstream.script(one, {"flood": flood, "headers": {"content-type": "application/json"}})
    with gateway(config) as url:
        response = httpx.post(url + "/v1/messages", json=ASK, timeout=30)
    assert response.status_code == 200
    assert response.headers["x-routatic-fallback"] == "first/claude-x=answer_too_large"
    assert response.json()["content"][0]["text"] == "Hello from the fake upstream."


@pytest.mark.parametrize("answer", [[1, 2], "text"])
def test_a_translated_answer_of_the_wrong_shape_falls_back(
    upstream: FakeUpstream, logs: list[logging.LogRecord], answer: Any
) -> None:
    config, one, _ = two_targets(upstream, first="openai")
    upstream.script(one, {"status": 200, "json": answer})
    with gateway(config) as url:
        response = httpx.post(url + "/v1/messages", json=ASK, timeout=30)
    assert response.status_code == 200
    assert response.headers["x-routatic-fallback"] == "first/claude-x=unreadable_answer"
    no_tracebacks(logs)


def test_a_body_cut_short_before_its_end_falls_back(
    upstream: FakeUpstream, logs: list[logging.LogRecord]
) -> None:
    """A non-streamed answer is read whole before it commits (up to 4 MiB): one cut short
    is the target's failure, not a 200 the client cannot parse."""
    config, one, _ = two_targets(upstream)
    body = json.dumps(anthropic_message("claude-x"))
    flood = {"head": body[:40], "chunk": "x", "bytes": 10}
    headers = {"content-type": "application/json"}
    upstream.script(one, {"flood": flood, "headers": headers, "then": "break"})
    with gateway(config) as url:
        response = httpx.post(url + "/v1/messages", json=ASK, timeout=30)
    assert response.status_code == 200
    assert response.headers["x-routatic-target"] == "second/claude-x"
    assert response.json()["type"] == "message"
    no_tracebacks(logs)


def test_a_large_body_cut_after_the_commit_is_one_warning_and_no_traceback(
    upstream: FakeUpstream,
    logs: list[logging.LogRecord],
    request_lines: RequestLines,
) -> None:
    config, one, _ = two_targets(upstream)
    flood = {"head": '{"type":"message","content":"', "chunk": "x" * 65536, "bytes": 6 * MIB}
    headers = {"content-type": "application/json"}
    upstream.script(one, {"flood": flood, "headers": headers, "then": "break"})
    with gateway(config) as url, pytest.raises(httpx.RemoteProtocolError):
        httpx.post(url + "/v1/messages", json=ASK, timeout=30)
    no_tracebacks(logs)
    warnings = [r.getMessage() for r in logs if r.name == "routatic_asgi"]
    assert warnings == [
        "the answer from first/claude-x broke off after it had begun: protocol_error"
    ]
    line = request_lines.of("claude-x")
    assert (line["status"], line["outcome"]) == (200, "upstream_error")


def test_under_serve_a_body_cut_after_the_commit_is_one_line_on_stderr(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """What the operator reads: the gateway's warning, and not uvicorn's "returned without
    completing response" line beside it; the client still sees the body cut short."""
    prefix = upstream.provider()
    flood = {"head": '{"type":"message","content":"', "chunk": "x" * 65536, "bytes": 6 * MIB}
    headers = {"content-type": "application/json"}
    upstream.script(prefix, {"flood": flood, "headers": headers, "then": "break"})
    config = one_provider(tmp_path, upstream.url(prefix))
    with serve("--config", str(config)) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(server.url + "/v1/messages", json=ASK, timeout=30)
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    said = server.said
    started = next(i for i, line in enumerate(said) if "Uvicorn running" in line)
    served = [line for line in said[started + 1 :] if not line.startswith("INFO:")]
    assert served == [
        "the answer from up/claude-x broke off after it had begun: protocol_error\n"
    ], "".join(said)


def test_a_client_that_hangs_up_mid_stream_is_cancelled_not_served(
    upstream: FakeUpstream, logs: list[logging.LogRecord], request_lines: RequestLines
) -> None:
    config, one, _ = two_targets(upstream)
    upstream.script(one, {"sse": anthropic_stream("claude-hangup")[:4], "then": "hang"})
    body = {**ASK, "model": "claude-hangup", "stream": True}
    with gateway(config) as url:
        with httpx.stream("POST", url + "/v1/messages", json=body, timeout=30) as response:
            next(response.iter_raw())  # the stream has committed; the client goes
        assert "disconnected_at" in upstream.disconnected(one)[-1]
        line = request_lines.of("claude-hangup")
    assert (line["status"], line["outcome"]) == (200, "cancelled")
    assert line["attempts"][0]["outcome"] == "cancelled"
    assert line["attempts"][0]["reason"] == "client_disconnected"
    no_tracebacks(logs)
