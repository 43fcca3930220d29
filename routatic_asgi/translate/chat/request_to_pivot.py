"""Chat Completions requests to the pivot: what a Chat Completions client asked for.

`to_anthropic` turns a Chat Completions body into a pivot (Anthropic Messages) body: system and
developer turns become `system`, tool messages become `tool_result` blocks, and
`reasoning_effort` becomes a thinking budget. A pure function of a parsed body: fields with
no counterpart are dropped (docs/compat-matrix.md says which), and nothing here raises.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from routatic_asgi.translate.options import pivot_thinking, pivot_tool, pivot_tools, sampling
from routatic_asgi.translate.pivot import texts, tool_arguments

__all__ = ["DEFAULT_MAX_TOKENS", "to_anthropic"]

DEFAULT_MAX_TOKENS = 8192  # Anthropic requires max_tokens; OpenAI clients often omit it
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)


def _image_block(part: Mapping[str, Any]) -> dict[str, Any] | None:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        return None
    match = _DATA_URL.fullmatch(url)
    if match:
        source = {"type": "base64", "media_type": match["type"], "data": match["data"]}
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI content (a string or parts) as Anthropic blocks; empty texts are left out."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        text = part.get("text") if kind == "text" else part.get("refusal")
        if kind in ("text", "refusal") and text:
            blocks.append({"type": "text", "text": str(text)})
        elif kind == "image_url":
            image = _image_block(part)
            if image is not None:
                blocks.append(image)
    return blocks


def _assistant_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    # reasoning_content has no signature, so it is not sent to Anthropic (see continuity).
    blocks = _blocks(message.get("content"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        blocks.append(
            {
                "type": "tool_use",
                "id": str(call.get("id", "")),
                "name": str(function.get("name", "")),
                "input": tool_arguments(function.get("arguments")),
            }
        )
    return blocks


def _tool_result(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    text = content if isinstance(content, str) else "\n\n".join(texts(content))
    return {
        "type": "tool_result",
        "tool_use_id": str(message.get("tool_call_id", "")),
        "content": text,
    }


def _anthropic_messages(messages: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """(messages, system texts): system and developer turns move to the top-level system."""
    turns: list[dict[str, Any]] = []
    system: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(t for t in texts(message.get("content")) if t)
            continue
        if role == "assistant":
            role, blocks = "assistant", _assistant_blocks(message)
        elif role == "tool":
            role, blocks = "user", [_tool_result(message)]
        else:
            role, blocks = "user", _blocks(message.get("content"))
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns, system


def _anthropic_tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in tools if isinstance(tools, list) else ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict):
            out.append(pivot_tool(str(function.get("name", "")), function))
    return out


def to_anthropic(payload: Mapping[str, Any], model: str, reasoning: bool = True) -> dict[str, Any]:
    """An OpenAI Chat Completions body as an Anthropic Messages body for `model`."""
    turns, system = _anthropic_messages(list(payload.get("messages") or ()))
    max_tokens = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if not isinstance(max_tokens, int):
        max_tokens = DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if system:
        body["system"] = [{"type": "text", "text": text} for text in system]
    stop = payload.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    pivot_tools(body, _anthropic_tools(payload.get("tools")), payload)
    if payload.get("user"):
        body["metadata"] = {"user_id": str(payload["user"])}
    effort = payload.get("reasoning_effort") if reasoning else None
    sampling(body, payload, pivot_thinking(effort, max_tokens, turns))
    if payload.get("stream") is True:
        body["stream"] = True
    return body
