"""A local estimate of a request's input tokens, for count_tokens and capability checks.

No tokenizer: about four characters of ASCII text per token, one token per other character
(CJK text runs close to that), a flat cost per image and per message. It is an estimate, not
a count: expect it within roughly a third of the provider's figure for English prose and
code. It never calls anything and never keeps what it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["estimate_tokens", "text_tokens"]

IMAGE_TOKENS = 1600  # Anthropic's cost of a full-size image (about 1.15 megapixels)
MESSAGE_TOKENS = 4  # role and separators
TOOL_TOKENS = 8  # per tool definition, beside its JSON


def text_tokens(text: str) -> int:
    """Tokens in a piece of text: ASCII at four characters a token, others at one each."""
    if not text:
        return 0
    ascii_count = len(text.encode("ascii", "ignore"))
    return (ascii_count + 3) // 4 + (len(text) - ascii_count)


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return text_tokens(content)
    if isinstance(content, list):
        return sum(_block_tokens(block) for block in content)
    return 0


def _block_tokens(block: Any) -> int:
    if isinstance(block, str):
        return text_tokens(block)
    if not isinstance(block, dict):
        return 0
    kind = block.get("type")
    if kind in ("image", "image_url", "input_image", "document"):
        return IMAGE_TOKENS
    total = 0
    for key in ("text", "thinking", "refusal"):
        value = block.get(key)
        if isinstance(value, str):
            total += text_tokens(value)
    if kind == "tool_use":
        total += text_tokens(str(block.get("name", ""))) + _json_tokens(block.get("input"))
    if "content" in block:
        total += _content_tokens(block["content"])
    return total


def _json_tokens(value: Any) -> int:
    if value is None:
        return 0
    return text_tokens(orjson.dumps(value).decode())


def _message_tokens(message: Any) -> int:
    if not isinstance(message, dict):
        return 0
    total = MESSAGE_TOKENS + _content_tokens(message.get("content"))
    for field in ("reasoning_content", "reasoning", "arguments", "output"):
        value = message.get(field)
        if isinstance(value, str):
            total += text_tokens(value)
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            total += _json_tokens(call.get("function"))
    return total


def estimate_tokens(payload: Mapping[str, Any]) -> int:
    """Estimated input tokens of an Anthropic, Chat or Responses request body (parsed)."""
    total = _content_tokens(payload.get("system")) + _content_tokens(payload.get("instructions"))
    items = payload.get("input")  # the Responses API's messages and items
    if isinstance(items, str):
        total += text_tokens(items)
    for messages in (payload.get("messages"), items):
        if isinstance(messages, list):
            total += sum(_message_tokens(message) for message in messages)
    tools = payload.get("tools")
    if isinstance(tools, list):
        total += sum(TOOL_TOKENS + _json_tokens(tool) for tool in tools)
    return max(total, 1)
