"""A request's session: which conversation it continues, from what the client already sends.

Providers cache a conversation's prefix per account, so the requests of one conversation
should keep reaching the same key and target. The session key is read, in this order, from
Claude Code's `x-claude-code-session-id`, Codex's `session-id`, opencode's `x-session-id`,
the body's `prompt_cache_key` (Codex, OpenAI clients), the session part of
`metadata.user_id` (Claude Code), OpenAI's `user`, and failing those a hash of the
conversation's first turns (system and first user message), which every later turn repeats.

Pure: a function of the request's headers and parsed body. It never reads a credential
(`authorization`, `x-api-key`, the proxy key), and the key itself never leaves the process:
logs, spans and upstreams get `Session.hashed` or `Session.cache_key`, one-way hashes of it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["Session", "session_of"]

# Headers clients send once per conversation, first match wins.
_HEADERS = (b"x-claude-code-session-id", b"session-id", b"x-session-id")
# Claude Code before 2.1.3xx: user_<hash>_account_<uuid>_session_<uuid>
_USER_ID_SESSION = re.compile(r"_session_([A-Za-z0-9-]+)$")
_LONGEST = 256  # a longer value is not an id: hashed like the conversation


@dataclass(frozen=True, slots=True)
class Session:
    """Which conversation a request continues. `key` never leaves the process."""

    key: str = field(repr=False)
    source: str  # where it came from: a header name, a body field, or "conversation"
    # For logs and spans: tells sessions apart, and never reveals one. Hashed once here: the
    # routing's hold, the request log and the span each read it.
    hashed: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hashed", _digest("routatic-session", self.key)[:16])

    @property
    def cache_key(self) -> str:
        """The `prompt_cache_key` sent to OpenAI-protocol targets for this session."""
        return "routatic-" + _digest("routatic-cache", self.key)[:32]


def _digest(purpose: str, key: str) -> str:
    return hashlib.sha256(f"{purpose}:{key}".encode()).hexdigest()


def session_of(headers: Iterable[tuple[bytes, bytes]], payload: Mapping[str, Any]) -> Session:
    """The session of a request, from its headers (lower-case names) and parsed body."""
    wanted = dict.fromkeys(_HEADERS, b"")
    for name, value in headers:
        if name in wanted and not wanted[name]:
            wanted[name] = value
    for name in _HEADERS:
        value = wanted[name].strip()
        if value and len(value) <= _LONGEST:
            return Session(value.decode("latin-1"), name.decode())
    for source, value in _body_signals(payload):
        if isinstance(value, str) and value.strip() and len(value) <= _LONGEST:
            return Session(value.strip(), source)
    return Session(_conversation(payload), "conversation")


def _body_signals(payload: Mapping[str, Any]) -> list[tuple[str, Any]]:
    metadata = payload.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    return [
        ("prompt_cache_key", payload.get("prompt_cache_key")),
        ("metadata.user_id", _user_id_session(user_id)),
        ("user", payload.get("user")),
        ("metadata.user_id", user_id),
    ]


def _user_id_session(user_id: Any) -> str | None:
    """The session part of Claude Code's `metadata.user_id`, in either of its forms."""
    if not isinstance(user_id, str):
        return None
    if user_id.startswith("{"):
        try:
            parsed = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return None
        session = parsed.get("session_id") if isinstance(parsed, dict) else None
        return session if isinstance(session, str) else None
    match = _USER_ID_SESSION.search(user_id)
    return match.group(1) if match else None


def _conversation(payload: Mapping[str, Any]) -> str:
    """A hash of what every turn of a conversation repeats: system and first user message.

    Only text counts, so the cache breakpoints a client moves from turn to turn do not change
    it. Anthropic `system`/`messages`, Chat `messages` and Responses `instructions`/`input`.
    """
    parts = [_text(payload.get("system")), _text(payload.get("instructions"))]
    turns = payload.get("messages", payload.get("input"))
    if isinstance(turns, str):
        parts.append(turns)
    elif isinstance(turns, list):
        for turn in turns:
            if not isinstance(turn, dict):
                continue
            role = turn.get("role")
            parts.append(_text(turn.get("content")))
            if role not in ("system", "developer"):
                break
    return "conversation:" + _digest("routatic-conversation", "\x00".join(parts))


def _text(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "\n".join(_text(item) for item in node)
    if isinstance(node, dict):
        text = node.get("text")
        if isinstance(text, str):
            return text
        return _text(node.get("content"))
    return ""
