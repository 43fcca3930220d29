"""Hostile and buggy client input: a 400 in the caller's envelope naming the field, before any
upstream call, on every kind of route; never a 5xx, never a logged traceback.

Every route kind is in one configuration: passthrough, a renamed model, Anthropic client on
an OpenAI target and the reverse, count_tokens answered by the local estimate, and routes
chosen by `when:` traits. Known bad inputs are listed; hypothesis then puts arbitrary JSON
at every field the gateway reads, on both endpoints and every route kind.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routatic_asgi.shapes import MAX_DEPTH, may_nest_too_deep, too_deep
from tests.conftest import gateway_config
from tests.fake_clock import FakeClock
from tests.resilience_kit import Upstreams, app_for, client_for

CONFIG = gateway_config(
    {
        "pass": {"protocol": "anthropic", "base_url": "http://pass.test", "auth": "passthrough"},
        "claude": {"protocol": "anthropic", "base_url": "http://claude.test", "keys": ["sk-c1"]},
        "oai": {
            "protocol": "openai",
            "base_url": "http://oai.test/v1",
            "keys": ["sk-o1"],
            "models": {"small": {"vision": False, "context": 50}},
        },
    },
    [
        {"match": "renamed-*", "chain": ["pass/claude-renamed"]},
        {"match": "a2o-*", "chain": ["oai/gpt-x"]},
        {"match": "o2a-*", "chain": ["claude/claude-x"]},
        {"match": "count-*", "chain": ["oai/gpt-x"]},
        {"match": "traits-*", "when": {"thinking": True}, "chain": ["oai/gpt-x"]},
        {"match": "traits-*", "when": {"tokens_over": 5}, "chain": ["claude/claude-x"]},
        {"match": "traits-*", "chain": ["pass/{model}"]},
        {"match": "*", "chain": ["pass/{model}", "oai/gpt-x"]},
    ],
)
# (path, model) for every route kind; count_tokens with an OpenAI-only route is estimated.
ANTHROPIC_ROUTES = [
    ("/v1/messages", "claude-pass"),
    ("/v1/messages", "renamed-model"),
    ("/v1/messages", "a2o-model"),
    ("/v1/messages", "traits-model"),
    ("/v1/messages/count_tokens", "count-model"),
    ("/v1/messages/count_tokens", "claude-pass"),
]
OPENAI_ROUTES = [
    ("/v1/chat/completions", "o2a-model"),
    ("/v1/chat/completions", "gpt-pass"),
    ("/v1/chat/completions", "traits-model"),
]

ANTHROPIC_BODY: dict[str, Any] = {
    "model": "claude-pass",
    "max_tokens": 2048,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look."},
                IMAGE := {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hm", "signature": ""},
                {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a.py"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "x"}],
                },
            ],
        },
    ],
    "tools": [{"name": "read", "description": "Reads.", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "output_config": {"effort": "high"},
    "metadata": {"user_id": "u1"},
    "stop_sequences": ["END"],
    "temperature": 0.5,
}
OPENAI_BODY: dict[str, Any] = {
    "model": "o2a-model",
    "max_tokens": 100,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "read", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "x"},
    ],
    "tools": [{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}],
    "tool_choice": "auto",
    "stop": ["END"],
    "reasoning_effort": "low",
    "stream_options": {"include_usage": True},
}

# What clients were seen to send wrong, with the field the answer must name.
ANTHROPIC_CASES = [
    ({"messages": 5}, "messages"),
    ({"stop_sequences": 5}, "stop_sequences"),
    ({"output_config": {"effort": ["high"]}}, "output_config.effort"),
    (
        {"messages": [{"role": "user", "content": [{"type": "hologram"}]}]},
        "messages.0.content.0.type",
    ),
    (
        {"messages": [{"role": "user", "content": [{"text": "no type"}]}]},
        "messages.0.content.0.type",
    ),
    ({"messages": [{"role": "user", "content": [5]}]}, "messages.0.content.0"),
    ({"messages": [{"role": 5, "content": "hi"}]}, "messages.0.role"),
    ({"system": {"text": "hi"}}, "system"),
    ({"tools": [{"name": "t", "input_schema": "object"}]}, "tools.0.input_schema"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"thinking": {"type": "enabled", "budget_tokens": "lots"}}, "thinking.budget_tokens"),
    ({"max_tokens": "8"}, "max_tokens"),
    ({"stream": "yes"}, "stream"),
    ({"metadata": {"user_id": {"id": 1}}}, "metadata.user_id"),
    ({"model": "m" * 257}, "model"),
    ({"model": "claude-pass\r\nx-injected: 1"}, "model"),
    ({"model": "claude\x00pass"}, "model"),
    ({"model": ["claude-pass"]}, "model"),
]
OPENAI_CASES = [
    ({"messages": 5}, "messages"),
    ({"stop": 5}, "stop"),
    ({"reasoning_effort": []}, "reasoning_effort"),
    ({"messages": [{"role": "assistant", "tool_calls": 5}]}, "messages.0.tool_calls"),
    (
        {"messages": [{"role": "user", "content": [{"type": "hologram"}]}]},
        "messages.0.content.0.type",
    ),
    ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    (
        {"messages": [{"role": "tool", "content": "x", "tool_call_id": 7}]},
        "messages.0.tool_call_id",
    ),
    ({"tools": [{"type": "function", "function": {"name": 5}}]}, "tools.0.function.name"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"max_completion_tokens": -1}, "max_completion_tokens"),
    ({"model": "g" * 300}, "model"),
    ({"model": "gpt\nforged log line"}, "model"),
]


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": [value]} if depth % 2 else [value]
    return value


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


class Rig:
    """The gateway over scripted healthy upstreams, driven from synchronous tests."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.upstreams = Upstreams()
        self.app = app_for(CONFIG, self.upstreams, FakeClock())
        self.client = client_for(self.app)

    def send(self, method: str, path: str, **options: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, path, **options))

    def post(self, path: str, body: Any) -> httpx.Response:
        content = json.dumps(body).encode()
        headers = {"content-type": "application/json", "x-api-key": "sk-ant-client"}
        return self.send("POST", path, content=content, headers=headers)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self.app.aclose())


@pytest.fixture(scope="module")
def rig(loop: asyncio.AbstractEventLoop) -> Iterator[Rig]:
    rig = Rig(loop)
    yield rig
    rig.close()


def assert_envelope(response: httpx.Response, openai: bool) -> dict[str, Any]:
    body = response.json()
    if openai:
        assert set(body) == {"error"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["type"]
    else:
        assert body["type"] == "error", body
        assert isinstance(body["error"]["message"], str) and body["error"]["type"]
    error: dict[str, Any] = body["error"]
    return error


def assert_refused(rig: Rig, response: httpx.Response, field: str, openai: bool) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["x-should-retry"] == "false"
    error = assert_envelope(response, openai)
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(f"{field}: "), error["message"]
    if openai:
        assert error["param"] == field


@pytest.mark.parametrize(("path", "model"), ANTHROPIC_ROUTES)
@pytest.mark.parametrize(("change", "field"), ANTHROPIC_CASES, ids=[f for _, f in ANTHROPIC_CASES])
def test_bad_anthropic_fields_are_refused_naming_the_field(
    rig: Rig, path: str, model: str, change: dict[str, Any], field: str
) -> None:
    calls = len(rig.upstreams.calls)
    response = rig.post(path, {**ANTHROPIC_BODY, "model": model, **change})
    assert_refused(rig, response, field, openai=False)
    assert len(rig.upstreams.calls) == calls
    assert "injected" not in "".join(response.headers.keys())


@pytest.mark.parametrize(("path", "model"), OPENAI_ROUTES)
@pytest.mark.parametrize(("change", "field"), OPENAI_CASES, ids=[f for _, f in OPENAI_CASES])
def test_bad_openai_fields_are_refused_naming_the_field(
    rig: Rig, path: str, model: str, change: dict[str, Any], field: str
) -> None:
    calls = len(rig.upstreams.calls)
    response = rig.post(path, {**OPENAI_BODY, "model": model, **change})
    assert_refused(rig, response, field, openai=True)
    assert len(rig.upstreams.calls) == calls


@pytest.mark.parametrize(("path", "model"), ANTHROPIC_ROUTES + OPENAI_ROUTES)
@pytest.mark.parametrize("where", ["metadata", "tools", "messages"])
def test_nesting_deeper_than_the_limit_is_refused(
    rig: Rig, path: str, model: str, where: str
) -> None:
    base = OPENAI_BODY if path.endswith("completions") else ANTHROPIC_BODY
    calls = len(rig.upstreams.calls)
    response = rig.post(path, {**base, "model": model, where: nested(300)})
    assert response.status_code == 400
    assert response.headers["x-should-retry"] == "false"
    message = assert_envelope(response, path.endswith("completions"))["message"]
    assert f"deeper than {MAX_DEPTH}" in message
    assert len(rig.upstreams.calls) == calls


def test_the_depth_limit_is_exact() -> None:
    def lists(depth: int) -> Any:
        value: Any = 0
        for _ in range(depth):
            value = [value]
        return value

    assert not too_deep(lists(MAX_DEPTH))
    assert too_deep(lists(MAX_DEPTH + 1))
    assert too_deep({"a": lists(MAX_DEPTH)})


def test_the_depth_check_is_spared_only_for_a_body_that_cannot_nest_that_deep() -> None:
    """The shortest body nested one level too deep, and one whose brackets are all in a
    string, are still checked; a body too short or with too few brackets to nest that deep
    need not be."""
    deepest = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    assert may_nest_too_deep(deepest) and too_deep(orjson.loads(deepest))
    assert not may_nest_too_deep(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b" ")
    in_text = b'{"model":"m","text":"' + b"[" * (MAX_DEPTH + 1) + b"x" * 200 + b'"}'
    assert may_nest_too_deep(in_text) and not too_deep(orjson.loads(in_text))
    few = b'{"model":"m","messages":[{"role":"user","content":"' + b"x" * 4000 + b'"}]}'
    assert not may_nest_too_deep(few)


def test_good_requests_pass_on_every_route_kind(rig: Rig) -> None:
    for path, model in ANTHROPIC_ROUTES:
        assert rig.post(path, {**ANTHROPIC_BODY, "model": model}).status_code == 200, path
    for path, model in OPENAI_ROUTES:
        assert rig.post(path, {**OPENAI_BODY, "model": model}).status_code == 200, path


@pytest.mark.parametrize(
    "query",
    ["limit=%C2%B2", "limit=" + "9" * 4000, "limit=0", "limit=1001", "limit=-1", "limit=1e3"],
)
def test_bad_models_paging_is_refused_naming_limit(rig: Rig, query: str) -> None:
    response = rig.send("GET", f"/v1/models?{query}", headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 400
    assert response.headers["x-should-retry"] == "false"
    assert assert_envelope(response, openai=False)["message"].startswith("limit: ")


def test_a_model_name_reaches_response_headers_escaped(rig: Rig) -> None:
    response = rig.post("/v1/messages", {**ANTHROPIC_BODY, "model": "claude-ünïcode %0d"})
    assert response.status_code == 200
    target = response.headers["x-routatic-target"]
    assert target == "pass/claude-%C3%BCn%C3%AFcode %250d"
    assert target.isascii()


def test_a_request_no_target_can_serve_is_a_400_saying_why(rig: Rig) -> None:
    config = gateway_config(
        {"oai": CONFIG.providers["oai"].model_dump(mode="json") | {"keys": ["sk-o1"]}},
        [{"match": "*", "chain": ["oai/small"]}],
    )
    upstreams = Upstreams()
    client = client_for(app_for(config, upstreams, FakeClock()))
    images = rig.loop.run_until_complete(
        client.post(
            "/v1/messages", json={**ANTHROPIC_BODY, "messages": ANTHROPIC_BODY["messages"][:1]}
        )
    )
    assert images.status_code == 400
    assert images.headers["x-should-retry"] == "false"
    assert "oai/small cannot read images" in images.json()["error"]["message"]
    long = rig.loop.run_until_complete(
        client.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "word " * 400}]},
        )
    )
    assert long.status_code == 400
    assert "prompt is too long" in long.json()["error"]["message"]
    assert upstreams.calls == []
    rig.loop.run_until_complete(client.aclose())


# --- fuzzing --------------------------------------------------------------------------------

BLOCK_TYPES = ["text", "image", "tool_use", "tool_result", "thinking", "document", "image_url", "x"]
KEYS = st.sampled_from(
    ["type", "text", "content", "role", "source", "input", "function", "name", "url", "effort"]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(KEYS | st.text(max_size=4), children, max_size=3)
        | st.fixed_dictionaries({"type": st.sampled_from(BLOCK_TYPES)}, optional={"text": children})
    ),
    max_leaves=8,
)
ANTHROPIC_FIELDS = [
    "model",
    "messages",
    "messages.0",
    "messages.0.role",
    "messages.0.content",
    "messages.0.content.0",
    "messages.0.content.0.type",
    "messages.0.content.1.source",
    "messages.0.content.1.source.data",
    "messages.1.content",
    "messages.1.content.0.signature",
    "messages.1.content.1.input",
    "messages.1.content.1.name",
    "messages.2.content.0.content",
    "messages.2.content.0.content.0",
    "messages.2.content.0.is_error",
    "system",
    "system.0",
    "system.0.text",
    "tools",
    "tools.0",
    "tools.0.input_schema",
    "tools.0.name",
    "tool_choice",
    "tool_choice.type",
    "thinking",
    "thinking.type",
    "thinking.budget_tokens",
    "output_config",
    "output_config.effort",
    "metadata",
    "metadata.user_id",
    "stop_sequences",
    "max_tokens",
    "stream",
    "temperature",
    "top_p",
    "context_management",
]
OPENAI_FIELDS = [
    "model",
    "messages",
    "messages.0",
    "messages.0.content",
    "messages.1.content",
    "messages.1.content.0",
    "messages.1.content.1.image_url",
    "messages.1.content.1.image_url.url",
    "messages.2.tool_calls",
    "messages.2.tool_calls.0",
    "messages.2.tool_calls.0.function",
    "messages.2.tool_calls.0.function.arguments",
    "messages.3.tool_call_id",
    "messages.3.role",
    "tools",
    "tools.0.function",
    "tools.0.function.parameters",
    "tool_choice",
    "stop",
    "reasoning_effort",
    "reasoning",
    "max_tokens",
    "max_completion_tokens",
    "stream",
    "stream_options",
    "temperature",
    "parallel_tool_calls",
    "user",
    "thinking",
]


def put(body: Any, path: str, value: Any) -> None:
    """Set the field at a dotted path, when the path still leads somewhere."""
    parts = path.split(".")
    node = body
    for depth, part in enumerate(parts):
        if isinstance(node, list):
            if not (part.isdigit() and int(part) < len(node)):
                return
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
        else:
            return
        if depth == len(parts) - 1:
            node[key] = value
            return
        node = node[key] if isinstance(node, list) else node.get(key)


def check_answer(rig: Rig, response: httpx.Response, openai: bool, calls: int) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_envelope(response, openai)
        if response.headers.get("x-should-retry") == "false":
            assert len(rig.upstreams.calls) == calls  # refused by the gateway itself


@pytest.mark.parametrize(("path", "model"), ANTHROPIC_ROUTES + OPENAI_ROUTES)
@settings(
    max_examples=int(os.environ.get("FUZZ", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_arbitrary_json_at_any_read_field_never_breaks_the_gateway(
    rig: Rig, caplog: pytest.LogCaptureFixture, path: str, model: str, data: st.DataObject
) -> None:
    openai = path.endswith("completions")
    body = copy.deepcopy(OPENAI_BODY if openai else ANTHROPIC_BODY)
    body["model"] = model
    fields = OPENAI_FIELDS if openai else ANTHROPIC_FIELDS
    for _ in range(data.draw(st.integers(1, 3))):
        put(body, data.draw(st.sampled_from(fields)), data.draw(JSON))
    calls = len(rig.upstreams.calls)
    with caplog.at_level(logging.WARNING):
        response = rig.post(path, body)
    check_answer(rig, response, openai, calls)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


@pytest.mark.parametrize(("path", "model"), ANTHROPIC_ROUTES[:1] + OPENAI_ROUTES[:1])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=JSON)
def test_any_json_body_at_all_is_answered_cleanly(
    rig: Rig, caplog: pytest.LogCaptureFixture, path: str, model: str, body: Any
) -> None:
    if isinstance(body, dict):
        body.setdefault("model", model)
    calls = len(rig.upstreams.calls)
    with caplog.at_level(logging.WARNING):
        response = rig.post(path, body)
    check_answer(rig, response, path.endswith("completions"), calls)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_one_request_is_one_log_line_whatever_it_carries(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    forged = 'x"\n{"actor":"admin","status":200}\r\n\x1b[2J\u2028'
    with caplog.at_level(logging.INFO, logger="routatic_asgi.requests"):
        rig.post("/v1/messages", {**ANTHROPIC_BODY, "model": forged})
        rig.post("/v1/chat/completions", {**OPENAI_BODY, "model": "gpt-" + forged})
        rig.post("/v1/messages", {**ANTHROPIC_BODY, "model": "claude-ok-\u00e9\u2028"})
        rig.send("GET", "/v1/nothing%0a%7B%22actor%22%3A%22admin%22%7D")
    lines = [r.getMessage() for r in caplog.records if r.name == "routatic_asgi.requests"]
    assert len(lines) >= 3
    for line in lines:
        assert "\n" not in line and "\r" not in line and "\x1b" not in line
        assert "\u2028" not in line
        json.loads(line)  # each is one whole JSON object
