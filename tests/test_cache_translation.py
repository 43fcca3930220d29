"""Cache-aware translation: prompt_cache_key, kept and dropped cache_control, automatic
breakpoints, and cached tokens reaching every client in its own usage shape."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from routatic_asgi.attempt import InboundRequest, Protocol, Target
from routatic_asgi.config import ProviderConfig, parse_config
from routatic_asgi.errors import ConfigError
from routatic_asgi.session import Session, session_of
from routatic_asgi.translate.anthropic.breakpoints import LIMIT, with_breakpoints
from routatic_asgi.translate.translation import Translation
from tests.fake_clock import FakeClock
from tests.prefix_cache import PrefixCache
from tests.resilience_kit import app_for, client_for

SESSION = {"x-claude-code-session-id": "4c2a9e7f-session"}
SYSTEM = "You are a careful coding agent. " * 100
EPHEMERAL = {"type": "ephemeral"}
ENDPOINTS = {"anthropic": "messages", "openai": "chat_completions", "responses": "responses"}

pytestmark = pytest.mark.anyio


def inbound(protocol: Protocol, payload: dict[str, Any], headers: dict[str, str]) -> Any:
    request = InboundRequest(
        protocol,
        ENDPOINTS[protocol],
        json.dumps(payload).encode(),
        payload,
        "m",
        False,  # type: ignore[arg-type]
    )
    sent = [(k.encode(), v.encode()) for k, v in headers.items()]
    request.session = session_of(sent, payload)
    return request


def provider(protocol: str, **options: Any) -> ProviderConfig:
    base = "http://t" if protocol == "anthropic" else "http://t/v1"
    return ProviderConfig.model_validate(
        {"protocol": protocol, "base_url": base, "keys": ["k"], **options}
    )


def sent(
    client: Protocol, payload: dict[str, Any], target: Protocol, headers: Any = None, **options: Any
) -> dict[str, Any]:
    """The body a translated request sends its target."""
    request = inbound(client, payload, headers if headers is not None else SESSION)
    config = provider(target, **options)
    to = Target(
        "t",
        target,
        "m",
        config.base_url,
        cache_control=config.cache_control,
        auto_cache=config.auto_cache,
    )
    translation = Translation(request, to)
    body: dict[str, Any] = json.loads(translation.request_body())
    return body


CLAUDE_CODE = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 64,
    "system": [
        {"type": "text", "text": "attribution"},
        {"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL},
    ],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "read the file"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "read", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "data",
                 "cache_control": EPHEMERAL},
                {"type": "text", "text": "now fix it", "cache_control": EPHEMERAL},
            ],
        },
    ],
}  # fmt: skip


@pytest.mark.parametrize("target", ["openai", "responses"])
def test_openai_protocol_targets_get_the_session_as_prompt_cache_key(target: Protocol) -> None:
    body = sent("anthropic", CLAUDE_CODE, target)
    assert body["prompt_cache_key"] == Session("4c2a9e7f-session", "x").cache_key
    assert "4c2a9e7f" not in json.dumps(body)  # the session itself never leaves


@pytest.mark.parametrize(("client", "target"), [("openai", "responses"), ("responses", "openai")])
def test_a_clients_own_prompt_cache_key_goes_on_as_it_is(
    client: Protocol, target: Protocol
) -> None:
    chat = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}
    payload = chat if client == "openai" else {"model": "gpt-5", "input": "hi"}
    body = sent(client, {**payload, "prompt_cache_key": "thread-7"}, target, headers={})
    assert body["prompt_cache_key"] == "thread-7"


@pytest.mark.parametrize("client", ["openai", "responses"])
def test_an_anthropic_target_gets_no_prompt_cache_key(client: Protocol) -> None:
    chat = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}
    payload = chat if client == "openai" else {"model": "gpt-5", "input": "hi"}
    body = sent(client, {**payload, "prompt_cache_key": "thread-7"}, "anthropic", headers={})
    assert "thread-7" not in json.dumps(body) and "cache_control" in json.dumps(body)


@pytest.mark.parametrize("target", ["openai", "responses"])
def test_cache_control_is_dropped_for_targets_not_marked_to_honour_it(target: Protocol) -> None:
    assert "cache_control" not in json.dumps(sent("anthropic", CLAUDE_CODE, target))


def test_cache_control_reaches_a_chat_target_marked_to_honour_it() -> None:
    body = sent("anthropic", CLAUDE_CODE, "openai", cache_control=True)
    system, user, assistant, tool, last = body["messages"]
    assert system["content"] == [
        {"type": "text", "text": "attribution"},
        {"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL},
    ]
    assert user["content"] == "read the file"  # no breakpoint: still a plain string
    assert tool["content"] == [{"type": "text", "text": "data", "cache_control": EPHEMERAL}]
    assert last["content"] == [{"type": "text", "text": "now fix it", "cache_control": EPHEMERAL}]
    assert assistant["tool_calls"][0]["id"] == "toolu_1"


def breakpoints(body: dict[str, Any]) -> list[str]:
    """Where a body's breakpoints are, as readable paths."""
    found = [f"tools.{i}" for i, t in enumerate(body.get("tools", [])) if "cache_control" in t]
    system = body.get("system")
    if isinstance(system, list):
        found += [f"system.{i}" for i, b in enumerate(system) if "cache_control" in b]
    for i, message in enumerate(body["messages"]):
        content = message["content"]
        if isinstance(content, list):
            found += [f"messages.{i}.{j}" for j, b in enumerate(content) if "cache_control" in b]
    return found


TOOL = {"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}
CHAT_TURNS = {
    "model": "gpt-5",
    "tools": [TOOL, {**TOOL, "function": {**TOOL["function"], "name": "write"}}],
    "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "three"},
    ],
}
RESPONSES_TURNS = {
    "model": "gpt-5",
    "instructions": SYSTEM,
    "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "one"}]},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "ok"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "two"}]},
    ],
}  # fmt: skip


def test_requests_from_openai_clients_get_automatic_breakpoints_on_anthropic() -> None:
    body = sent("openai", CHAT_TURNS, "anthropic")
    assert breakpoints(body) == ["tools.1", "system.0", "messages.2.0", "messages.4.0"]
    assert body["messages"][4]["content"][0]["text"] == "three"
    assert len(breakpoints(body)) == LIMIT


def test_requests_from_responses_clients_get_automatic_breakpoints_on_anthropic() -> None:
    body = sent("responses", RESPONSES_TURNS, "anthropic")
    assert breakpoints(body) == ["system.0", "messages.0.0", "messages.2.0"]


def test_auto_cache_off_sends_no_breakpoints() -> None:
    body = sent("openai", CHAT_TURNS, "anthropic", auto_cache=False)
    assert "cache_control" not in json.dumps(body)


def test_automatic_breakpoints_respect_what_is_there_and_what_may_carry_one() -> None:
    marked = {"model": "m", "system": [{"type": "text", "text": "s", "cache_control": EPHEMERAL}],
              "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    assert with_breakpoints(marked) == marked  # the client's own: left alone
    thinking = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": ""}]},
            {"role": "user", "content": [{"type": "text", "text": "a"},
                                         {"type": "thinking", "thinking": "t", "signature": "s"}]},
        ],
    }  # fmt: skip
    body = with_breakpoints(thinking)
    assert breakpoints(body) == ["messages.1.0"]  # not the thinking block, not an empty text
    assert "cache_control" not in json.dumps(thinking)  # the caller's body is untouched


def test_cache_options_are_checked_against_the_protocol() -> None:
    with pytest.raises(ConfigError, match="cache_control: true is for protocol: openai"):
        parse_config(
            {"providers": {"a": {"protocol": "anthropic", "base_url": "http://a",
                                 "auth": "none", "cache_control": True}},
             "routes": [{"match": "*", "chain": ["a/m"]}]},
            env={},
        )  # fmt: skip
    with pytest.raises(ConfigError, match="auto_cache is for protocol: anthropic"):
        parse_config(
            {"providers": {"o": {"protocol": "openai", "base_url": "http://o/v1",
                                 "auth": "none", "auto_cache": "off"}},
             "routes": [{"match": "*", "chain": ["o/m"]}]},
            env={},
        )  # fmt: skip
    assert provider("anthropic", auto_cache="off").auto_cache is False


# --- cached tokens in every client's shape ---------------------------------------------------

PATHS = {
    "anthropic": "/v1/messages",
    "openai": "/v1/chat/completions",
    "responses": "/v1/responses",
}


def client_body(protocol: str, stream: bool) -> dict[str, Any]:
    if protocol == "anthropic":
        body: dict[str, Any] = {"model": "m", "max_tokens": 64, "system": SYSTEM,
                                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    elif protocol == "openai":
        body = {"model": "m", "messages": [{"role": "system", "content": SYSTEM},
                                           {"role": "user", "content": "hi"}]}  # fmt: skip
        if stream:
            body["stream_options"] = {"include_usage": True}
    else:
        body = {"model": "m", "instructions": SYSTEM, "input": "hi"}
    return {**body, "stream": True} if stream else body


def cached_tokens(protocol: str, response: httpx.Response, stream: bool) -> int:
    """The cached input tokens a client of `protocol` reads from its answer."""
    if not stream:
        usage = response.json()["usage"]
    else:
        usages = [_usage(protocol, json.loads(line[6:])) for line in response.text.splitlines()
                  if line.startswith("data: {")]  # fmt: skip
        usage = [u for u in usages if u][-1]
    if protocol == "anthropic":
        return int(usage["cache_read_input_tokens"])
    if protocol == "openai":
        return int(usage["prompt_tokens_details"]["cached_tokens"])
    return int(usage["input_tokens_details"]["cached_tokens"])


def _usage(protocol: str, event: dict[str, Any]) -> dict[str, Any] | None:
    if protocol == "anthropic":
        usage = event.get("usage") or event.get("message", {}).get("usage")
        return usage if usage and "cache_read_input_tokens" in usage else None
    if protocol == "openai":
        return event.get("usage")
    return event["response"].get("usage") if event["type"] == "response.completed" else None


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("target", ["anthropic", "openai", "responses"])
@pytest.mark.parametrize("client", ["anthropic", "openai", "responses"])
async def test_cached_tokens_reach_every_client_in_its_own_shape(
    client: str, target: str, stream: bool
) -> None:
    clock = FakeClock()
    fake = PrefixCache(clock)
    base = "http://t" if target == "anthropic" else "http://t/v1"
    config = parse_config(
        {"providers": {"t": {"protocol": target, "base_url": base, "keys": ["sk-t-0001"]}},
         "routes": [{"match": "*", "chain": ["t/m"]}]},
        env={},
    )  # fmt: skip
    async with client_for(app_for(config, fake, clock)) as http:
        answers = [
            await http.post(PATHS[client], json=client_body(client, stream), headers=SESSION)
            for _ in range(2)
        ]
    assert [a.status_code for a in answers] == [200, 200], answers[-1].text
    assert fake.served[1].cached > 0
    assert [cached_tokens(client, a, stream) for a in answers] == [0, fake.served[1].cached]


# --- passthrough: byte for byte, and warm by affinity alone -------------------------------------


@pytest.mark.parametrize("protocol", ["anthropic", "openai", "responses"])
async def test_passthrough_adds_no_cache_hint_and_stays_warm_by_affinity(protocol: str) -> None:
    """A same-protocol request goes byte for byte: no prompt_cache_key, no breakpoint added.
    Its session still keeps one key of the pool, so its next turn reads that key's cache."""
    clock = FakeClock()
    fake = PrefixCache(clock)
    bodies: list[bytes] = []

    async def upstream(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return await fake(request)

    base = "http://t" if protocol == "anthropic" else "http://t/v1"
    keys = ["sk-t-0001", "sk-t-0002", "sk-t-0003"]
    config = parse_config(
        {"providers": {"t": {"protocol": protocol, "base_url": base, "keys": keys}},
         "routes": [{"match": "*", "chain": ["t/{model}"]}]},
        env={},
    )  # fmt: skip
    first = json.dumps(client_body(protocol, stream=False)).encode()
    async with client_for(app_for(config, upstream, clock)) as http:
        for _ in range(3):  # no session header, no prompt_cache_key: the first turns name it
            answer = await http.post(
                PATHS[protocol], content=first, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 200, answer.text
    assert bodies == [first] * 3
    assert len({served.key for served in fake.served}) == 1
    assert [served.cached for served in fake.served][1:] == [fake.served[0].prompt] * 2
