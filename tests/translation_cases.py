"""Run a golden fixture of tests/fixtures through the translation, the way the relay would.

A fixture is one JSON file: `direction` (`<client>-to-<target>`, each `anthropic`, `openai`
(Chat Completions) or `responses`; `anthropic-to-openai` is an Anthropic client and a Chat
Completions target), `kind` (request, response, stream, error,
headers, count_tokens), `covers` (compat-matrix row id → the level it shows), `input` and
`expected`. `ROUTATIC_WRITE_GOLDEN=1` rewrites `expected` from the code (review the diff).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from routatic_asgi.attempt import InboundRequest, Target
from routatic_asgi.exchange import exchange_for
from routatic_asgi.payload import estimate_tokens
from routatic_asgi.sse import SSEFramer, parse_event

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1_800_000_000.0


def load(path: Path) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads(path.read_text())
    return fixture


def all_fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("*.json"))


def exchange(fixture: dict[str, Any]) -> Any:
    client, target = fixture["direction"].split("-to-")
    payload = fixture.get("request") or (fixture["input"] if fixture["kind"] == "request" else {})
    empty: dict[str, Any] = {"input": []} if client == "responses" else {"messages": []}
    payload = {"model": "client-model", **empty, **payload}
    endpoint = {"anthropic": "messages", "openai": "chat_completions", "responses": "responses"}[
        client
    ]
    request = InboundRequest(
        client,
        endpoint,
        orjson.dumps(payload),
        payload,
        payload["model"],
        payload.get("stream") is True,
    )
    base = fixture.get("target_base_url") or (
        "http://127.0.0.1:1" + ("" if target == "anthropic" else "/v1")
    )
    model = fixture.get("target_model", "target-model")
    return exchange_for(request, Target("up", target, model, base), now=NOW)


def events(raw: bytes) -> list[Any]:
    """Wire bytes as [event name or null, parsed data or the raw text] for readable fixtures."""
    framer = SSEFramer()
    parsed: list[Any] = []
    for event in framer.feed(raw + b"\n\n" if not raw.endswith(b"\n\n") else raw):
        try:
            data: Any = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            data = event.data.decode() or event.raw.decode().strip()
        parsed.append([event.name, data])
    return parsed


def stream_output(codec: Any, chunks: list[str]) -> bytes:
    """What the relay would send: each framed event's translation, then the end."""
    framer = SSEFramer()
    out: list[bytes] = []
    ended = False
    for chunk in chunks:
        for event in framer.feed(chunk.encode()):
            ended = codec.kind(event).name == "END" or ended
            out.append(codec.translate(event))
    rest = framer.tail()
    if rest.strip():
        event = parse_event(rest + b"\n\n")
        ended = codec.kind(event).name == "END" or ended
        out.append(codec.translate(event))
    out.append(codec.finish())
    if not ended:
        out.append(codec.error_event("the upstream stream ended before it was complete"))
    return b"".join(out)


def run(fixture: dict[str, Any]) -> Any:
    kind = fixture["kind"]
    if kind == "count_tokens":
        return {"input_tokens": estimate_tokens(fixture["input"])}
    translation = exchange(fixture)
    if kind == "request":
        return orjson.loads(translation.request_body())
    if kind == "response":
        return orjson.loads(translation.response_body(orjson.dumps(fixture["input"])))
    if kind == "error":
        status, body = fixture["input"]["status"], fixture["input"]["body"]
        raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
        return {"status": status, "body": orjson.loads(translation.error_body(status, raw))}
    if kind == "headers":
        sent = [name for name in fixture["input"] if translation.forwards(name.encode())]
        added = [[k.decode(), v.decode()] for k, v in translation.extra_headers]
        return {"forwarded": sent, "added": added}
    if kind == "stream":
        return events(stream_output(translation.stream(), fixture["input"]))
    raise ValueError(f"unknown fixture kind {kind!r}")
