"""Chat Completions requests from the pivot: what a Chat Completions target is sent.

`to_openai` turns a pivot (Anthropic Messages) body into a Chat Completions body, asking for
reasoning in the target's own terms (`dialect_of`). A pure function of a parsed body: fields
with no counterpart are dropped (docs/compat-matrix.md says which), and nothing here raises
on a strange body; it translates what it recognises.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from routatic_asgi.translate.chat.answers import assistant_parts
from routatic_asgi.translate.options import (
    end_user,
    image_url,
    openai_effort,
    openai_tools,
    tool_output,
)
from routatic_asgi.translate.pivot import texts

__all__ = ["Dialect", "dialect_of", "to_openai"]

Dialect = Literal["compatible", "openai", "deepseek", "openrouter"]


def _image_part(block: Mapping[str, Any]) -> dict[str, Any] | None:
    url = image_url(block)
    return None if url is None else {"type": "image_url", "image_url": {"url": url}}


def _user_parts(blocks: list[Any], keep: bool = False) -> list[dict[str, Any]]:
    """Content parts of user blocks; with `keep`, a block's cache_control stays on its part."""
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        before = len(parts)
        if block.get("type") == "image":
            image = _image_part(block)
            if image is not None:
                parts.append(image)
        else:
            parts.extend({"type": "text", "text": text} for text in texts([block]))
        if keep and len(parts) > before and isinstance(block.get("cache_control"), dict):
            parts[-1]["cache_control"] = block["cache_control"]
    return parts


def _user_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A plain string when there are only texts: every OpenAI-compatible server reads that.

    Parts that carry a cache breakpoint stay parts: the breakpoint lives on its part."""
    if all(part["type"] == "text" and "cache_control" not in part for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


def _kept_breakpoint(text: str, block: Any, keep: bool) -> str | list[dict[str, Any]]:
    """`text`, or as one text part with the block's cache_control when it is to be kept."""
    breakpoint = block.get("cache_control") if keep and isinstance(block, dict) else None
    if isinstance(breakpoint, dict) and text:
        return [{"type": "text", "text": text, "cache_control": breakpoint}]
    return text


def _tool_messages(blocks: list[Any], keep: bool) -> Iterator[dict[str, Any]]:
    """One `role: tool` message per tool_result; their images follow in a user message."""
    images: list[dict[str, Any]] = []
    for block in blocks:
        if not (isinstance(block, dict) and block.get("type") == "tool_result"):
            continue
        content = block.get("content")
        text = tool_output(block)
        if isinstance(content, list):
            images.extend(p for p in _user_parts(content) if p["type"] == "image_url")
        yield {
            "role": "tool",
            "tool_call_id": str(block.get("tool_use_id", "")),
            "content": _kept_breakpoint(text, block, keep),
        }
    if images:
        yield {"role": "user", "content": images}


def _user_messages(content: Any, keep: bool) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return [{"role": "user", "content": "\n\n".join(texts(content))}]
    messages = list(_tool_messages(content, keep))
    rest = [b for b in content if not (isinstance(b, dict) and b.get("type") == "tool_result")]
    parts = _user_parts(rest, keep)
    if parts or not messages:
        messages.append({"role": "user", "content": _user_content(parts)})
    return messages


def _assistant_message(content: Any) -> dict[str, Any]:
    if not isinstance(content, list):
        return {"role": "assistant", "content": "\n\n".join(texts(content))}
    written, reasoning, calls = assistant_parts(content)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(written) or None}
    if calls:
        message["tool_calls"] = calls
        # Targets that think (DeepSeek) want the reasoning of tool-call turns back; one whose
        # reasoning was dropped is given it back by reasoning replay (replay.py).
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
    elif message["content"] is None:
        message["content"] = ""
    return message


def _system_message(system: Any, keep: bool) -> dict[str, Any] | None:
    """The system prompt as one message; its breakpoints, when kept, on its parts."""
    if keep and isinstance(system, list):
        parts = _user_parts(system, keep=True)
        if any("cache_control" in part for part in parts):
            return {"role": "system", "content": parts}
    text = "\n\n".join(texts(system))
    return {"role": "system", "content": text} if text else None


def _openai_messages(payload: Mapping[str, Any], keep: bool = False) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = _system_message(payload.get("system"), keep)
    if system is not None:
        messages.append(system)
    for message in payload.get("messages") or ():
        if not isinstance(message, dict):
            continue
        role, content = message.get("role"), message.get("content")
        if role == "assistant":
            messages.append(_assistant_message(content))
        elif role == "system":
            messages.append({"role": "system", "content": "\n\n".join(texts(content))})
        else:
            messages.extend(_user_messages(content, keep))
    return messages


def _openai_tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in tools if isinstance(tools, list) else ():
        # Anthropic's server tools (web search, code execution...) have no input_schema.
        if not isinstance(tool, dict) or "input_schema" not in tool:
            continue
        function: dict[str, Any] = {
            "name": tool.get("name", ""),
            "parameters": tool["input_schema"],
        }
        if tool.get("description"):
            function["description"] = tool["description"]
        if tool.get("strict") is True:
            function["strict"] = True
        out.append({"type": "function", "function": function})
    return out


def dialect_of(model: str, base_url: str) -> Dialect:
    """Which options an OpenAI-protocol target understands, from its URL and model."""
    url = base_url.lower()
    if "openrouter.ai" in url:
        return "openrouter"
    if "deepseek" in f"{model} {url}".lower():
        return "deepseek"
    if "api.openai.com" in url:
        return "openai"  # its reasoning models refuse max_tokens
    return "compatible"


def _reasoning_option(body: dict[str, Any], effort: str | None, dialect: Dialect) -> None:
    if dialect == "deepseek":  # thinks unless told not to; `thinking` says whether
        body["thinking"] = {"type": "enabled" if effort else "disabled"}
    if effort is None:
        return
    if dialect == "openrouter":
        body["reasoning"] = {"effort": effort}
    else:
        body["reasoning_effort"] = effort


def to_openai(
    payload: Mapping[str, Any],
    model: str,
    *,
    reasoning: bool = True,
    dialect: Dialect = "compatible",
    breakpoints: bool = False,
) -> dict[str, Any]:
    """An Anthropic Messages body as a Chat Completions body for `model`.

    `reasoning=False` asks for no reasoning; `dialect` picks how reasoning is asked for
    (`reasoning_effort`, DeepSeek's `thinking`, OpenRouter's `reasoning`) and OpenAI's own
    API gets `max_completion_tokens`. `breakpoints` keeps the body's `cache_control` on the
    content parts it marks, for targets that honour it (OpenRouter); else it is dropped.
    """
    messages = _openai_messages(payload, keep=breakpoints)
    body: dict[str, Any] = {"model": model, "messages": messages}
    if "max_tokens" in payload:
        limit = "max_completion_tokens" if dialect == "openai" else "max_tokens"
        body[limit] = payload["max_tokens"]
    for field in ("temperature", "top_p"):
        if field in payload:
            body[field] = payload[field]
    if payload.get("stop_sequences"):
        body["stop"] = list(payload["stop_sequences"])
    openai_tools(body, payload, _openai_tools(payload.get("tools")), nested=True)
    user = end_user(payload)
    if user is not None:
        body["user"] = user
    _reasoning_option(body, openai_effort(payload) if reasoning else None, dialect)
    if payload.get("stream") is True:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body
