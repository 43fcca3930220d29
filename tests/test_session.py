"""Session identity: what each client already sends, never a credential, hashed when shown."""

from __future__ import annotations

import json
from typing import Any

import pytest

from routatic_asgi.session import Session, session_of

SYSTEM = "You are a coding agent."
FIRST = {"role": "user", "content": "fix the failing test"}


def headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(name.replace("_", "-").encode(), value.encode()) for name, value in values.items()]


@pytest.mark.parametrize(
    ("sent", "body", "key", "source"),
    [
        (headers(x_claude_code_session_id="cc-1"), {}, "cc-1", "x-claude-code-session-id"),
        (headers(session_id="codex-1"), {}, "codex-1", "session-id"),
        (headers(x_session_id="oc-1"), {}, "oc-1", "x-session-id"),
        ([], {"prompt_cache_key": "pck-1"}, "pck-1", "prompt_cache_key"),
        ([], {"user": "u-1"}, "u-1", "user"),
        (
            [],
            {"metadata": {"user_id": json.dumps({"device_id": "d", "session_id": "s-new"})}},
            "s-new",
            "metadata.user_id",
        ),
        (
            [],
            {"metadata": {"user_id": "user_abc123_account_1f2e_session_9a8b-7c6d"}},
            "9a8b-7c6d",
            "metadata.user_id",
        ),
    ],
)
def test_each_clients_session_signal_is_the_session(
    sent: list[tuple[bytes, bytes]], body: dict[str, Any], key: str, source: str
) -> None:
    session = session_of(sent, body)
    assert (session.key, session.source) == (key, source)


def test_a_header_wins_over_the_body_and_codex_headers_agree_with_its_cache_key() -> None:
    body = {"prompt_cache_key": "thread-7", "user": "someone"}
    assert session_of(headers(session_id="thread-7"), body).source == "session-id"
    assert session_of([], body).key == session_of(headers(session_id="thread-7"), {}).key


def test_credentials_are_never_the_session() -> None:
    secret = headers(authorization="Bearer sk-secret-0001", x_api_key="sk-ant-0002")
    secret.append((b"x-routatic-key", b"proxy-0003"))
    session = session_of(secret, {"messages": [FIRST]})
    assert session.source == "conversation"
    assert session == session_of([], {"messages": [FIRST]})


def test_without_signals_the_first_turns_name_the_conversation_on_every_turn() -> None:
    first = {"system": SYSTEM, "messages": [FIRST]}
    later = {
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": FIRST["content"]}]},
            {"role": "assistant", "content": "done"},
            {"role": "user", "content": "thanks", "cache_control": {"type": "ephemeral"}},
        ],
    }
    other = {"system": SYSTEM, "messages": [{"role": "user", "content": "write a poem"}]}
    assert session_of([], first).key == session_of([], later).key
    assert session_of([], first).key != session_of([], other).key


def test_chat_and_responses_conversations_hash_their_system_and_first_user_turn() -> None:
    chat = {"messages": [{"role": "system", "content": SYSTEM}, FIRST]}
    chat_later = {"messages": [*chat["messages"], {"role": "assistant", "content": "ok"}]}
    responses = {"instructions": SYSTEM, "input": [{"type": "message", **FIRST}]}
    responses_later = {"instructions": SYSTEM, "input": [*responses["input"], {"type": "x"}]}
    assert session_of([], chat).key == session_of([], chat_later).key
    assert session_of([], responses).key == session_of([], responses_later).key
    assert session_of([], chat).key != session_of([], {"messages": [FIRST]}).key


def test_what_leaves_the_process_is_a_hash_of_the_session() -> None:
    session = Session("0f9c2f7e-private-session", "x-session-id")
    assert "private" not in repr(session)
    assert len(session.hashed) == 16 and session.hashed != session.key
    assert session.cache_key.startswith("routatic-") and "private" not in session.cache_key
    assert Session("another", "x-session-id").hashed != session.hashed
