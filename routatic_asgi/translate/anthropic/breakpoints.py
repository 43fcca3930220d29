"""Automatic prompt-cache breakpoints for requests translated to an Anthropic target.

OpenAI and Responses clients have no way to mark what to cache, and Anthropic caches a
prompt only up to a block marked `cache_control`. So a translated request without a single
breakpoint gets them where a conversation's stable prefix ends: the last tool, the system
prompt, and the last block of the last two user turns (the newest writes the cache; the one
before reads what the previous turn wrote). Four in all, Anthropic's limit. Pure: it never
raises, never changes the caller's objects, and leaves a request that has a breakpoint as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["LIMIT", "with_breakpoints"]

LIMIT = 4  # breakpoints Anthropic accepts in one request
_EPHEMERAL = {"type": "ephemeral"}
# Blocks Anthropic lets carry cache_control (thinking blocks may not).
_MARKABLE = frozenset({"text", "image", "document", "tool_use", "tool_result", "search_result"})


def with_breakpoints(body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` with breakpoints on tools, system and the last user turns, when it has none."""
    out = dict(body)
    if _has_breakpoint(body):
        return out
    budget = LIMIT
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[-1], dict):
        out["tools"] = [*tools[:-1], {**tools[-1], "cache_control": _EPHEMERAL}]
        budget -= 1
    system = _marked(body.get("system"))
    if system is not None:
        out["system"] = system
        budget -= 1
    messages = body.get("messages")
    if isinstance(messages, list):
        out["messages"] = _mark_last_user_turns(messages, min(budget, 2))
    return out


def _mark_last_user_turns(messages: list[Any], count: int) -> list[Any]:
    marked = list(messages)
    for index in range(len(marked) - 1, -1, -1):
        if count <= 0:
            break
        message = marked[index]
        if not (isinstance(message, dict) and message.get("role") == "user"):
            continue
        content = _marked(message.get("content"))
        if content is not None:
            marked[index] = {**message, "content": content}
            count -= 1
    return marked


def _marked(content: Any) -> list[Any] | None:
    """Content (a string or blocks) with its last markable block marked; None if none is."""
    if isinstance(content, str):
        if not content:
            return None
        return [{"type": "text", "text": content, "cache_control": _EPHEMERAL}]
    if not isinstance(content, list):
        return None
    for index in range(len(content) - 1, -1, -1):
        block = content[index]
        if isinstance(block, dict) and _markable(block):
            return [*content[:index], {**block, "cache_control": _EPHEMERAL}, *content[index + 1 :]]
    return None


def _markable(block: Mapping[str, Any]) -> bool:
    kind = block.get("type")
    if kind == "text":
        return bool(block.get("text"))  # an empty text block may not carry cache_control
    return kind in _MARKABLE


def _has_breakpoint(body: Mapping[str, Any]) -> bool:
    if "cache_control" in body:
        return True
    blocks: list[Any] = []
    for field in ("tools", "system"):
        value = body.get(field)
        if isinstance(value, list):
            blocks.extend(value)
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            blocks.extend(content)
    return any(isinstance(block, dict) and "cache_control" in block for block in blocks)
