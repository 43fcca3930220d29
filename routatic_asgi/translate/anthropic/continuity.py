"""History written by one provider, made acceptable to the next.

Anthropic rejects a thinking block whose signature it did not issue, and reasoning from an
OpenAI-protocol provider has no signature at all (this gateway gives it an empty one). The
rule applied to every request bound for an Anthropic target:

- a `thinking` block is kept only when its signature looks like Anthropic's (non-empty,
  base64, at least 32 characters); every other thinking block is dropped, its text lost to
  that target (`redacted_thinking` is always Anthropic's and stays);
- when the dropped block opened the assistant turn of a tool loop still in progress,
  `thinking` is switched off for that one request (Anthropic requires such a turn to start
  with a thinking block), together with context-management edits that need it.

Pure: it reads a parsed body and returns a new one; it never mutates what it was given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from routatic_asgi.translate.pivot import thinking_on

__all__ = [
    "anthropic_history",
    "has_foreign_thinking",
    "is_anthropic_signature",
    "without_thinking",
]

_SIGNATURE = re.compile(r"[A-Za-z0-9+/_=-]{32,}")


def is_anthropic_signature(signature: Any) -> bool:
    return isinstance(signature, str) and _SIGNATURE.fullmatch(signature) is not None


def _foreign(block: Any) -> bool:
    return (
        isinstance(block, dict)
        and block.get("type") == "thinking"
        and not is_anthropic_signature(block.get("signature"))
    )


def has_foreign_thinking(payload: Mapping[str, Any]) -> bool:
    """Whether any assistant turn carries a thinking block Anthropic would reject."""
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return False
    # Read on every request to an Anthropic target: one loop, no call per block (a long
    # conversation has hundreds).
    for message in messages:
        if not (isinstance(message, dict) and message.get("role") == "assistant"):
            continue
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if (
                    isinstance(block, dict)
                    and block.get("type") == "thinking"
                    and not is_anthropic_signature(block.get("signature"))
                ):
                    return True
    return False


def _strip(message: Any) -> Any:
    if not isinstance(message, dict) or message.get("role") != "assistant":
        return message
    content = message.get("content")
    if not isinstance(content, list):
        return message
    kept = [block for block in content if not _foreign(block)]
    if len(kept) == len(content):
        return message
    return {**message, "content": kept or [{"type": "text", "text": "(no content)"}]}


def _open_tool_loop_lost_thinking(messages: list[Any]) -> bool:
    """The last turn answers tools, and the assistant turn before it had foreign thinking."""
    if len(messages) < 2 or not isinstance(messages[-1], dict):
        return False
    last = messages[-1].get("content")
    if not (
        isinstance(last, list)
        and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in last)
    ):
        return False
    previous = messages[-2]
    if not isinstance(previous, dict) or previous.get("role") != "assistant":
        return False
    content = previous.get("content")
    return isinstance(content, list) and any(_foreign(block) for block in content)


def without_thinking(payload: dict[str, Any]) -> dict[str, Any]:
    """The body with thinking switched off, and the context edits that depend on it."""
    payload = {key: value for key, value in payload.items() if key != "thinking"}
    management = payload.get("context_management")
    if isinstance(management, dict) and isinstance(management.get("edits"), list):
        edits = [
            edit
            for edit in management["edits"]
            if not (isinstance(edit, dict) and "thinking" in str(edit.get("type", "")))
        ]
        if edits:
            payload["context_management"] = {**management, "edits": edits}
        else:
            payload.pop("context_management")
    return payload


def anthropic_history(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The body with foreign thinking dropped, and thinking off where that would now fail."""
    messages = payload.get("messages")
    result = dict(payload)
    if not isinstance(messages, list):
        return result
    result["messages"] = [_strip(message) for message in messages]
    if thinking_on(result) and _open_tool_loop_lost_thinking(messages):
        result = without_thinking(result)
    return result
