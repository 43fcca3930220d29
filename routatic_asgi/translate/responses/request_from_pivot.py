"""Responses API requests from the pivot: what a Responses target (OpenAI) is sent.

`to_responses` turns a pivot (Anthropic Messages) body into a `POST /responses` body:
`system` becomes `instructions`; turns become `input` items (messages with `input_text`,
`input_image` and `output_text` parts, `function_call`, `function_call_output`, and the
`reasoning` items a Responses target issued, with their `encrypted_content`); thinking
becomes `reasoning.effort`; `max_tokens` becomes `max_output_tokens`. It is always stateless
(`store: false`, encrypted reasoning included) so a conversation can move and come back.
`stop_sequences` and `top_k` have no counterpart and are dropped. Pure; never raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from routatic_asgi.translate.options import (
    end_user,
    image_url,
    openai_effort,
    openai_tools,
    tool_output,
)
from routatic_asgi.translate.pivot import texts
from routatic_asgi.translate.responses.reasoning import from_responses_signature

__all__ = ["to_responses"]


def _image_part(block: Mapping[str, Any]) -> dict[str, Any] | None:
    url = image_url(block)
    return None if url is None else {"type": "input_image", "image_url": url, "detail": "auto"}


def _user_items(content: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(content, list):
        yield {"type": "message", "role": "user", "content": "\n\n".join(texts(content))}
        return
    parts: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            yield {
                "type": "function_call_output",
                "call_id": str(block.get("tool_use_id", "")),
                "output": tool_output(block),
            }
        elif block.get("type") == "image":
            image = _image_part(block)
            if image is not None:
                parts.append(image)
        else:
            parts.extend({"type": "input_text", "text": text} for text in texts([block]))
    if parts:
        yield {"type": "message", "role": "user", "content": parts}


def _assistant_items(content: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(content, list):
        content = [{"type": "text", "text": "\n\n".join(texts(content))}]
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            yield {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": str(block["text"])}],
            }
        elif kind == "tool_use":
            yield {
                "type": "function_call",
                "call_id": str(block.get("id", "")),
                "name": str(block.get("name", "")),
                "arguments": orjson.dumps(block.get("input") or {}).decode(),
            }
        elif kind == "thinking":
            # Only reasoning a Responses target issued goes back, with its encrypted content.
            issued = from_responses_signature(str(block.get("signature") or ""))
            if issued is not None:
                summary = [{"type": "summary_text", "text": str(block.get("thinking", ""))}]
                yield {
                    "type": "reasoning",
                    "id": issued[0],
                    "summary": summary if summary[0]["text"] else [],
                    "encrypted_content": issued[1],
                }


def _input(messages: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        role, content = message.get("role"), message.get("content")
        if role == "assistant":
            items.extend(_assistant_items(content))
        elif role == "system":
            items.append(
                {"type": "message", "role": "developer", "content": "\n\n".join(texts(content))}
            )
        else:
            items.extend(_user_items(content))
    return items


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict) or "input_schema" not in tool:
            continue  # Anthropic's server tools have no Responses counterpart here
        converted: dict[str, Any] = {
            "type": "function",
            "name": str(tool.get("name", "")),
            "parameters": tool["input_schema"],
            "strict": tool.get("strict") is True,
        }
        if tool.get("description"):
            converted["description"] = tool["description"]
        out.append(converted)
    return out


def _text_format(pivot: Mapping[str, Any]) -> dict[str, Any] | None:
    config = pivot.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if (
        isinstance(fmt, dict)
        and fmt.get("type") == "json_schema"
        and isinstance(fmt.get("schema"), dict)
    ):
        return {"format": {"type": "json_schema", "name": "output", "schema": fmt["schema"]}}
    return None


def to_responses(pivot: Mapping[str, Any], model: str, *, reasoning: bool = True) -> dict[str, Any]:
    """A pivot body as a Responses API body for `model`."""
    body: dict[str, Any] = {"model": model, "input": _input(pivot.get("messages")), "store": False}
    instructions = "\n\n".join(text for text in texts(pivot.get("system")) if text)
    if instructions:
        body["instructions"] = instructions
    if isinstance(pivot.get("max_tokens"), int):
        body["max_output_tokens"] = pivot["max_tokens"]
    for field in ("temperature", "top_p"):
        if field in pivot:
            body[field] = pivot[field]
    openai_tools(body, pivot, _tools(pivot.get("tools")), nested=False)
    user = end_user(pivot)
    if user is not None:
        body["user"] = user
    text = _text_format(pivot)
    if text is not None:
        body["text"] = text
    effort = openai_effort(pivot) if reasoning else None
    if effort is not None:
        body["reasoning"] = {"effort": effort, "summary": "auto"}
        body["include"] = ["reasoning.encrypted_content"]
    if pivot.get("stream") is True:
        body["stream"] = True
    return body
