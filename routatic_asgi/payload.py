"""What a request body asks for, read from either protocol's body: no codec, no I/O.

- `estimate_tokens`: a local estimate of the input tokens, for count_tokens, routes and
  capability checks. No tokenizer: about four characters of ASCII text per token, one token
  per other character (CJK text runs close to that), a flat cost per image and per message.
  Expect it within roughly a third of the provider's figure for English prose and code.
- `request_traits`: what a route's `when:` can ask for (thinking, images, tokens, background).
- `unfit_reason`: whether a model's configured capabilities (`providers.P.models.M`) can
  serve the body at all: images need vision, tools need tools, the estimate must fit the
  context. A model without thinking is still fit: the translation leaves reasoning off.

Pure functions of the parsed body; nothing here keeps what it reads or changes the request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from routatic_asgi.classify import Reason
from routatic_asgi.config import ModelCaps

__all__ = [
    "estimate_tokens",
    "has_images",
    "is_background_model",
    "request_traits",
    "text_tokens",
    "unfit_reason",
]

_BACKGROUND = re.compile(r"haiku", re.IGNORECASE)

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


def _has_image(content: Any) -> bool:
    if not isinstance(content, list):
        return False
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") in ("image", "image_url", "input_image"):
            return True
        if block.get("type") == "tool_result" and _has_image(block.get("content")):
            return True
    return False


def has_images(payload: Mapping[str, Any]) -> bool:
    """Whether any message of an Anthropic, Chat or Responses body carries an image."""
    for messages in (payload.get("messages"), payload.get("input")):
        if isinstance(messages, list) and any(
            isinstance(m, dict) and _has_image(m.get("content")) for m in messages
        ):
            return True
    return False


def unfit_reason(payload: Mapping[str, Any], caps: ModelCaps | None) -> Reason | None:
    """Why a model with `caps` cannot serve this body (`unfit_vision`...), or None if it can."""
    if caps is None:
        return None
    if not caps.vision and has_images(payload):
        return Reason.UNFIT_VISION
    if not caps.tools and payload.get("tools"):
        return Reason.UNFIT_TOOLS
    if caps.context is not None and estimate_tokens(payload) > caps.context:
        return Reason.UNFIT_CONTEXT
    return None


def request_traits(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The traits a route's `when` can ask for, from the parsed body of either protocol.

    `tokens` is the local estimate (an image costs a flat amount, not its base64 size).
    `background` marks the client's small/fast model: Claude Code sends its background work
    (titles, summaries, quick checks) to Haiku.
    """
    return {
        "thinking": _wants_thinking(payload),
        "images": has_images(payload),
        "tokens": estimate_tokens(payload),
        "background": is_background_model(str(payload.get("model", ""))),
    }


def is_background_model(model: str) -> bool:
    return _BACKGROUND.search(model) is not None


def _wants_thinking(payload: Mapping[str, Any]) -> bool:
    thinking = payload.get("thinking")  # Anthropic, and DeepSeek-style OpenAI bodies
    if isinstance(thinking, dict):
        return thinking.get("type") in ("enabled", "adaptive")
    effort = payload.get("reasoning_effort")
    reasoning = payload.get("reasoning")  # OpenRouter's form
    if isinstance(reasoning, dict):
        effort = effort or reasoning.get("effort") or reasoning.get("max_tokens")
    return bool(effort) and effort != "none"
