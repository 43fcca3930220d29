"""Non-streamed Responses API answers: a Response to the pivot (an Anthropic Message) and back.

`to_pivot_message` reads a Responses target's answer; `to_response` writes the Response a
Responses client gets. Both ways: usage (`input_tokens` include cached ones in Responses,
not in the pivot), stop reasons (`status: incomplete` with `max_output_tokens` ⇄
`max_tokens`), item ids (stable: derived from the response id and the item's position).
Pure; an answer that is not a Response raises `TranslationError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from routatic_asgi.translate.pivot import (
    TranslationError,
    as_dict,
    parse,
    tool_arguments,
    tool_id,
)
from routatic_asgi.translate.pivot import message as pivot_message
from routatic_asgi.translate.responses.reasoning import responses_signature, to_encrypted
from routatic_asgi.translate.responses.request_to_pivot import namespaced

__all__ = [
    "function_call_item",
    "item_id",
    "output_items",
    "pivot_usage",
    "reasoning_item",
    "response_id",
    "response_object",
    "response_usage",
    "status_of",
    "stop_reason_of",
    "to_pivot_message",
    "to_response",
]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def pivot_usage(usage: Any) -> dict[str, int]:
    """Responses usage → the pivot's: cached input read from cache, the rest as input."""
    usage = as_dict(usage)
    cached = _int(as_dict(usage.get("input_tokens_details")).get("cached_tokens"))
    return {
        "input_tokens": max(_int(usage.get("input_tokens")) - cached, 0),
        "output_tokens": _int(usage.get("output_tokens")),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def response_usage(usage: Any) -> dict[str, Any]:
    """The pivot's usage → Responses': every input token, cached or not, counts as input."""
    usage = as_dict(usage)
    cached = _int(usage.get("cache_read_input_tokens"))
    prompt = (
        _int(usage.get("input_tokens")) + cached + _int(usage.get("cache_creation_input_tokens"))
    )
    output = _int(usage.get("output_tokens"))
    reasoning = _int(as_dict(usage.get("output_tokens_details")).get("reasoning_tokens"))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + output,
    }


def stop_reason_of(response: Mapping[str, Any], has_tools: bool) -> str:
    if has_tools:
        return "tool_use"
    reason = as_dict(response.get("incomplete_details")).get("reason")
    if response.get("status") == "incomplete" and reason == "content_filter":
        return "refusal"
    if response.get("status") == "incomplete":
        return "max_tokens"
    return "end_turn"


def status_of(stop_reason: Any) -> tuple[str, dict[str, str] | None]:
    """(status, incomplete_details) of a Response, from the pivot's stop reason."""
    if stop_reason in ("max_tokens", "model_context_window_exceeded"):
        return "incomplete", {"reason": "max_output_tokens"}
    if stop_reason == "refusal":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def _item_blocks(item: Mapping[str, Any], seed: str, position: int) -> list[dict[str, Any]]:
    kind = item.get("type")
    if kind == "message":
        blocks = []
        for part in item.get("content") or ():
            text = as_dict(part).get("text") or as_dict(part).get("refusal")
            if isinstance(text, str) and text:
                blocks.append({"type": "text", "text": text})
        return blocks
    if kind == "function_call":
        return [
            {
                "type": "tool_use",
                "id": tool_id(item.get("call_id"), seed, position),
                "name": str(item.get("name", "")),
                "input": tool_arguments(item.get("arguments")),
            }
        ]
    if kind == "reasoning":
        summary = "\n\n".join(str(as_dict(p).get("text", "")) for p in item.get("summary") or ())
        encrypted = item.get("encrypted_content")
        signature = (
            responses_signature(str(item.get("id") or f"rs_{position}"), encrypted)
            if isinstance(encrypted, str) and encrypted
            else ""
        )
        return [{"type": "thinking", "thinking": summary, "signature": signature}]
    return []  # hosted tool calls (web search...) have no pivot block


def to_pivot_message(body: bytes) -> bytes:
    """A Response as a pivot Message: reasoning as thinking, messages as text, calls as tool_use."""
    response = parse(body)
    output = response.get("output")
    if not isinstance(output, list):
        raise TranslationError("the upstream's response has no output list")
    if response.get("status") == "failed":
        raise TranslationError("the upstream's response failed")
    seed = str(response.get("id", ""))
    content: list[dict[str, Any]] = []
    for position, item in enumerate(output):
        content.extend(_item_blocks(as_dict(item), seed, position))
    has_tools = any(block["type"] == "tool_use" for block in content)
    stop = stop_reason_of(response, has_tools)
    usage = pivot_usage(response.get("usage"))
    message = pivot_message(seed, str(response.get("model", "")), content, stop, usage)
    return orjson.dumps(message)


def item_id(prefix: str, seed: str, index: int) -> str:
    """An item id stable across an item's events and the final response: `msg_<seed>_<n>`."""
    return f"{prefix}_{seed}_{index}"


def output_items(
    content: list[Any], seed: str, names: Mapping[str, tuple[str, str]]
) -> list[dict[str, Any]]:
    """The pivot's content blocks as Responses output items (consecutive texts in one message)."""
    items: list[dict[str, Any]] = []
    for block in content:
        block = as_dict(block)
        kind = block.get("type")
        index = len(items)
        if kind == "text":
            part = {"type": "output_text", "text": str(block.get("text", "")), "annotations": []}
            if items and items[-1]["type"] == "message":
                items[-1]["content"].append(part)
                continue
            items.append(
                {
                    "type": "message",
                    "id": item_id("msg", seed, index),
                    "status": "completed",
                    "role": "assistant",
                    "content": [part],
                }
            )
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            items.append(function_call_item(block, seed, index, "completed", arguments, names))
        elif kind in ("thinking", "redacted_thinking"):
            items.append(reasoning_item(block, seed, index, str(block.get("thinking", ""))))
    return items


def function_call_item(
    block: Mapping[str, Any],
    seed: str,
    index: int,
    status: str,
    arguments: str,
    names: Mapping[str, tuple[str, str]],
) -> dict[str, Any]:
    """A function_call item; a flattened namespace tool's call named as the client knows it."""
    name = str(block.get("name", ""))
    item = {
        "type": "function_call",
        "id": item_id("fc", seed, index),
        "call_id": str(block.get("id", "")),
        "name": name,
        "arguments": arguments,
        "status": status,
    }
    if name in names:
        item["namespace"], item["name"] = names[name]
    return item


def reasoning_item(block: Mapping[str, Any], seed: str, index: int, text: str) -> dict[str, Any]:
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {
        "type": "reasoning",
        "id": item_id("rs", seed, index),
        "summary": summary,
        "encrypted_content": to_encrypted(block),
    }


_ECHOED = (
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "previous_response_id",
    "reasoning",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "truncation",
    "user",
)
_DEFAULTS: dict[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "store": False,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
    "user": None,
}


def response_object(
    response_id: str, model: str, created: int, request: Mapping[str, Any], status: str
) -> dict[str, Any]:
    """A Response in `status`, echoing the request's settings as OpenAI does."""
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [],
        "usage": None,
    }
    for field in _ECHOED:
        response[field] = request.get(field, _DEFAULTS[field])
    return response


def response_id(message_id: str) -> str:
    bare = message_id.removeprefix("msg_") or "translated"
    return f"resp_{bare}"


def to_response(body: bytes, request: Mapping[str, Any], created: int) -> bytes:
    """A pivot Message as the Response a Responses client reads."""
    message = parse(body)
    content = message.get("content")
    if not isinstance(content, list):
        raise TranslationError("the upstream's message has no content list")
    rid = response_id(str(message.get("id", "")))
    seed = rid.removeprefix("resp_")
    status, incomplete = status_of(message.get("stop_reason"))
    response = response_object(rid, str(message.get("model", "")), created, request, status)
    response["incomplete_details"] = incomplete
    response["output"] = output_items(content, seed, namespaced(request.get("tools")))
    response["usage"] = response_usage(message.get("usage"))
    return orjson.dumps(response)
