"""Canary secrets: every key the gateway holds, looked for everywhere it could leak.

An adversarial upstream echoes whatever credential it was sent in its error bodies and in an
error event after its stream's content. The keys (configured, proxy, printed by a
`key_command`, and one short enough that it used to slip past debug capture) must appear in
no client answer, log record, `/metrics`, `/status`, debug capture file, nor in what any
other provider received. Configuration errors must not print them either.
"""

from __future__ import annotations

import gzip
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from routatic_asgi.errors import ConfigError
from routatic_asgi.redaction import Redactor
from tests.conftest import gateway_config, run, write
from tests.fake_clock import FakeClock
from tests.fake_upstream import openai_stream, sse_event
from tests.resilience_kit import REQUEST, Body, Upstreams, app_for, client_for, healthy, sse

FIRST = "sk-first-canary-7f3a9c"
SECOND = "sk-second-canary-4b1e"
SHORT = "Qx7Zp2"  # under 8 characters: capture used to leave such keys in place
COMMANDED = "rk-command-canary-0e5d"
THIRD = "sk-third-canary-c81d"
PROXY = "rk-proxy-canary-91c2"
OWNER = {
    FIRST: "first.test",
    SECOND: "second.test",
    SHORT: "lone.test",
    COMMANDED: "cmd.test",
    THIRD: "third.test",
}
CANARIES = [FIRST, SECOND, SHORT, COMMANDED, THIRD, PROXY]


def credential(request: httpx.Request) -> str:
    value = request.headers.get("x-api-key") or request.headers.get("authorization", "")
    return value.removeprefix("Bearer ")


def echo_error(status: int, *, gzipped: bool = False) -> Any:
    """An error that quotes the key it was sent, in its body and in a header of its own;
    `gzipped`: compressed, though the gateway asked for no encoding."""

    async def answer(request: httpx.Request) -> httpx.Response:
        message = f"invalid request for key {credential(request)}"
        body = json.dumps({"type": "error", "error": {"type": "api_error", "message": message}})
        data = body.encode()
        headers = {"content-type": "application/json", "x-echo": credential(request)}
        if gzipped:
            data = gzip.compress(data)
            headers["content-encoding"] = "gzip"
        return httpx.Response(status, headers=headers, stream=Body(data))

    return answer


async def echo_in_stream(request: httpx.Request) -> httpx.Response:
    start = {"id": "m", "type": "message", "role": "assistant", "content": [], "model": "m"}
    events = [
        sse_event("message_start", {"type": "message_start", "message": start}),
        sse_event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}}),
        sse_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": "hi"}}),
        sse_event("error", {"type": "error", "error": {
            "type": "api_error", "message": f"stream broke for key {credential(request)}"}}),
    ]  # fmt: skip
    return sse(Body("".join(events).encode()))


async def echo_in_chat_stream(request: httpx.Request) -> httpx.Response:
    """An OpenAI stream whose error chunk, after its content, quotes the key."""
    events = openai_stream("m", deltas=1)[:2]
    error = {"error": {"message": f"stream broke for key {credential(request)}"}}
    events.append(f"data: {json.dumps(error)}\n\n")
    return sse(Body("".join(events).encode()))


async def echo_before_content(request: httpx.Request) -> httpx.Response:
    """A stream whose first event is an error quoting the key."""
    error = {"type": "error", "error": {"type": "overloaded_error",
                                        "message": f"overloaded for key {credential(request)}"}}
    body = f"event: error\ndata: {json.dumps(error)}\n\n"
    return sse(Body(body.encode()))


def canary_config() -> Any:
    command = f"{shlex.quote(sys.executable)} -c 'print(\"{COMMANDED}\")'"
    return gateway_config(
        {
            "first": {"protocol": "anthropic", "base_url": "http://first.test", "keys": [FIRST]},
            "second": {"protocol": "openai", "base_url": "http://second.test/v1", "keys": [SECOND]},
            "lone": {"protocol": "anthropic", "base_url": "http://lone.test", "keys": [SHORT]},
            "cmd": {"protocol": "openai", "base_url": "http://cmd.test/v1", "key_command": command},
            "third": {"protocol": "openai", "base_url": "http://third.test/v1", "keys": [THIRD]},
        },
        [
            {"match": "third-*", "chain": ["third/m"]},
            {"match": "lone-*", "chain": ["lone/m"]},
            {"match": "cmd-*", "chain": ["cmd/m"]},
            {"match": "client-*", "chain": ["first/client", "second/m"]},
            {"match": "stream-*", "chain": ["first/stream", "second/m"]},
            {"match": "gzip-*", "chain": ["first/gzip"]},
            {"match": "early-*", "chain": ["first/early"]},
            {"match": "*", "chain": ["first/m", "second/m"]},
        ],
        server={"keys": [PROXY]},
        resilience={"retry": {"attempts": 0}},  # each scripted answer is one request's
    )


# What the canary test asks, in order: a name for each answer, the model (None: REQUEST's),
# and whether it streams.
ASKS = [
    ("fallback", None, False),
    ("client_error", "client-m", False),
    ("stream", "stream-m", True),
    ("lone", "lone-m", False),
    ("key_command", "cmd-m", False),
    ("gzip", "gzip-m", False),
    ("early", "early-m", True),
    ("translated_stream", "third-m", True),
    ("translated_gzip", "third-m", False),
]


def test_a_canary_key_leaks_nowhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    upstreams = Upstreams()
    upstreams.script("first.test", echo_error(500))  # falls back: second serves
    upstreams.script("first.test", echo_error(400))  # the first target's client error
    upstreams.script("first.test", echo_in_stream)  # an error event after the commit
    upstreams.script("lone.test", echo_error(429))  # a lone target's error
    upstreams.script("cmd.test", echo_error(503))  # a lone target on a key_command key
    upstreams.script("first.test", echo_error(400, gzipped=True))  # compressed all the same
    upstreams.script("first.test", echo_before_content)  # a lone stream's error before content
    upstreams.script("third.test", echo_in_chat_stream)  # translated: an error chunk
    upstreams.script("third.test", echo_error(400, gzipped=True))  # translated, compressed
    app = app_for(canary_config(), upstreams, FakeClock(), debug_capture=tmp_path / "capture")
    seen: list[str] = []

    async def drive() -> None:
        async with client_for(app) as client:
            key = {"x-routatic-key": PROXY}
            answers = {}
            for name, model, stream in ASKS:
                body = {**REQUEST, "model": model or REQUEST["model"]}
                body |= {"stream": True} if stream else {}
                answers[name] = await client.post("/v1/messages", json=body, headers=key)
            answers["metrics"] = await client.get("/metrics")
            answers["status"] = await client.get("/status", headers=key)
            for name, answer in answers.items():
                seen.append(f"{name} {answer.status_code} {answer.headers} {answer.text}")
            assert answers["fallback"].status_code == 200
            assert answers["client_error"].status_code == 400
            assert "[redacted]" in answers["client_error"].text
            assert "[redacted]" in answers["stream"].text
            assert answers["lone"].status_code == 429 and "[redacted]" in answers["lone"].text
            assert "[redacted]" in answers["key_command"].text
            assert answers["gzip"].status_code == 400 and "[redacted]" in answers["gzip"].text
            assert answers["early"].status_code >= 500
            assert "[redacted]" in answers["translated_stream"].text
            assert answers["translated_gzip"].status_code == 400
            assert "[redacted]" in answers["translated_gzip"].text
        await app.aclose()

    with caplog.at_level(logging.DEBUG):
        anyio.run(drive)

    assert upstreams.count("cmd.test") == 1  # the key_command key was really used
    assert upstreams.count("third.test") == 2
    places = {"client answers, /metrics, /status": "\n".join(seen)}
    places["logs"] = "\n".join(record.getMessage() for record in caplog.records)
    places["debug capture"] = "\n".join(p.read_text() for p in (tmp_path / "capture").iterdir())
    for place, text in places.items():
        for canary in CANARIES:
            assert canary not in text, f"{canary} in {place}"
    for call in upstreams.calls:
        sent = json.dumps(call.headers.multi_items()) + call.content.decode()
        for canary in CANARIES:
            if OWNER.get(canary) != call.url.host:
                assert canary not in sent, f"{canary} sent to {call.url.host}"


def test_healthy_answers_are_untouched() -> None:
    upstreams = Upstreams()
    upstreams.script("first.test", healthy)
    app = app_for(canary_config(), upstreams, FakeClock())

    async def drive() -> httpx.Response:
        async with client_for(app) as client:
            answer = await client.post(
                "/v1/messages", json=REQUEST, headers={"x-routatic-key": PROXY}
            )
        await app.aclose()
        return answer

    assert anyio.run(drive).json()["content"][0]["text"] == "Hello from the fake upstream."


def test_the_redactor_replaces_every_key_whole_and_learns_new_ones() -> None:
    redactor = Redactor(["sk-abc", "sk-abcdef", " ", ""])
    assert redactor.body(b"a sk-abcdef b sk-abc c") == b"a [redacted] b [redacted] c"
    assert redactor.text("nothing here") == "nothing here"
    redactor.add("tok-42")
    assert redactor.text("tok-42!") == "[redacted]!"
    assert not Redactor([" "])


SECRET_FIELDS = [
    ("providers.p.keys", "providers:\n  p: {protocol: openai, base_url: 'http://p/v1', keys: [{k: CANARY}]}"),
    ("providers.p.base_url", "providers:\n  p: {protocol: openai, base_url: 'ftp://u:CANARY@h/v1', auth: none}"),
    ("providers.p.base_url", "providers:\n  p: {protocol: openai, base_url: 'http://h/v1/chat/completions?key=CANARY', auth: none}"),
    ("state", "state: 'mysql://u:CANARY@db:3306'\nproviders:\n  p: {protocol: openai, base_url: 'http://p/v1', auth: none}"),
    ("state", "state: 'redis://u:CANARY@db:6379/0?staleness=CANARY'\nproviders:\n  p: {protocol: openai, base_url: 'http://p/v1', auth: none}"),
    ("server.keys", "server: {keys: [[CANARY]]}\nproviders:\n  p: {protocol: openai, base_url: 'http://p/v1', auth: none}"),
    ("providers.p.headers", "providers:\n  p: {protocol: openai, base_url: 'http://p/v1', auth: none, headers: {authorization: [CANARY]}}"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "text"), SECRET_FIELDS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(SECRET_FIELDS)]
)
def test_configuration_errors_never_print_a_secret(tmp_path: Path, field: str, text: str) -> None:
    canary = "sk-config-canary-5a8e"
    text = text.replace("CANARY", canary) + "\nroutes: [{match: '*', chain: [p/m]}]\n"
    path = write(tmp_path, text)
    result = run("check", "--config", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert field.rsplit(".", 1)[-1] in result.stdout + result.stderr  # it says where
    assert canary not in result.stdout + result.stderr
    with pytest.raises(ConfigError) as caught:
        from routatic_asgi.config import load_config

        load_config(path)
    assert canary not in str(caught.value)
