"""A fake provider that caches prompt prefixes per account, as Anthropic and OpenAI do.

An `httpx.MockTransport` handler for every protocol (`/v1/messages`, `/chat/completions`,
`/responses`), streamed or not. A request's prompt is cut into units (tools and system, then each message);
it reads from the cache the longest run of leading units that the *same key* sent within
`ttl` seconds, and writes the rest. Usage comes back in the protocol's own shape: Anthropic's
`cache_read_input_tokens`/`cache_creation_input_tokens` beside the uncached `input_tokens`,
OpenAI's `prompt_tokens` with `prompt_tokens_details.cached_tokens`, Responses'
`input_tokens` with `input_tokens_details.cached_tokens`. A revoked key gets 401.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fake_upstream import (
    anthropic_message,
    anthropic_stream,
    openai_completion,
    responses_response,
    responses_stream,
)
from tests.resilience_kit import Body, respond, sse


@dataclass
class Served:
    key: str
    prompt: int  # every input token
    cached: int  # of which read from the cache
    session: str = ""  # the x-claude-code-session-id the gateway forwarded


def _units(body: dict[str, Any]) -> list[str]:
    """The prompt's cacheable units, without the breakpoints that move from turn to turn."""
    head = {k: body.get(k) for k in ("tools", "system", "instructions") if body.get(k)}
    turns = body.get("messages") or body.get("input") or []
    return [_canonical(head), *(_canonical(turn) for turn in turns)]


def _canonical(node: Any) -> str:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "cache_control"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(node), sort_keys=True)


def _tokens(unit: str) -> int:
    return len(unit) // 4 + 1


@dataclass
class PrefixCache:
    clock: Callable[[], float]
    ttl: float = 300.0
    revoked: set[str] = field(default_factory=set)
    served: list[Served] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _seen: dict[tuple[str, str], float] = field(default_factory=dict)

    def lookup(self, key: str, body: dict[str, Any]) -> Served:
        now, prompt, cached, reading = self.clock(), 0, 0, True
        digest = hashlib.sha256()
        for unit in _units(body):
            digest.update(unit.encode())
            prefix = (key, digest.hexdigest())
            tokens = _tokens(unit)
            prompt += tokens
            seen = self._seen.get(prefix)
            reading = reading and seen is not None and now - seen <= self.ttl
            cached += tokens if reading else 0
            self._seen[prefix] = now
        return Served(key, prompt, cached)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("x-api-key") or request.headers["authorization"][7:]
        if key in self.revoked:
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            return respond(401, {"type": "error", "error": error})
        body = json.loads(request.content)
        self.requests.append(body)
        served = self.lookup(key, body)
        served.session = request.headers.get("x-claude-code-session-id", "")
        self.served.append(served)
        model = body.get("model", "")
        if request.url.path.endswith("/chat/completions"):
            return _openai(model, served, stream=body.get("stream") is True)
        if request.url.path.endswith("/responses"):
            return _responses(model, served, stream=body.get("stream") is True)
        return _anthropic(model, served, stream=body.get("stream") is True)


def _anthropic_usage(served: Served) -> dict[str, int]:
    return {
        "input_tokens": 0,
        "cache_read_input_tokens": served.cached,
        "cache_creation_input_tokens": served.prompt - served.cached,
        "output_tokens": 7,
    }


def _anthropic(model: str, served: Served, *, stream: bool) -> httpx.Response:
    if not stream:
        return respond(200, {**anthropic_message(model), "usage": _anthropic_usage(served)})
    events = anthropic_stream(model)
    start = json.loads(events[0].split("data: ", 1)[1])
    start["message"]["usage"] = {**_anthropic_usage(served), "output_tokens": 1}
    events[0] = f"event: message_start\ndata: {json.dumps(start)}\n\n"
    return _sse("".join(events))


def _openai_usage(served: Served) -> dict[str, Any]:
    return {
        "prompt_tokens": served.prompt,
        "completion_tokens": 7,
        "total_tokens": served.prompt + 7,
        "prompt_tokens_details": {"cached_tokens": served.cached},
    }


def _openai(model: str, served: Served, *, stream: bool) -> httpx.Response:
    if not stream:
        return respond(200, {**openai_completion(model), "usage": _openai_usage(served)})
    base = {"id": "chatcmpl-c", "object": "chat.completion.chunk", "created": 1, "model": model}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": _openai_usage(served)},
    ]
    text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return _sse(text)


def _responses_usage(served: Served) -> dict[str, Any]:
    return {
        "input_tokens": served.prompt,
        "input_tokens_details": {"cached_tokens": served.cached},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": served.prompt + 7,
    }


def _responses(model: str, served: Served, *, stream: bool) -> httpx.Response:
    if not stream:
        return respond(200, {**responses_response(model), "usage": _responses_usage(served)})
    events = []
    for event in responses_stream(model):
        name, _, data = event.partition("\ndata: ")
        payload = json.loads(data)
        if payload["type"] == "response.completed":
            payload["response"]["usage"] = _responses_usage(served)
        events.append(f"{name}\ndata: {json.dumps(payload)}\n\n")
    return _sse("".join(events))


def _sse(text: str) -> httpx.Response:
    """A stream the relay reads as from the network."""
    return sse(Body(text.encode()))
