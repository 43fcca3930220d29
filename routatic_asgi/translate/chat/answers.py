"""Non-streamed answers: a Chat Completion to the pivot (an Anthropic Message) and back.

Pure functions of a parsed body. A body that is not the expected shape raises
`TranslationError`, so the relay can treat that answer as the upstream's failure instead of
handing the client something it cannot read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from routatic_asgi.translate.pivot import (
    TranslationError,
    parse,
    tool_arguments,
    tool_id,
)
from routatic_asgi.translate.pivot import message as pivot_message

__all__ = [
    "TranslationError",
    "anthropic_usage",
    "assistant_parts",
    "finish_reason",
    "openai_usage",
    "stop_reason",
    "to_anthropic_message",
    "to_openai_completion",
]

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def stop_reason(finish: Any, has_tools: bool) -> str:
    """OpenAI finish_reason → Anthropic stop_reason, decided by the calls actually made: some
    servers say `stop` with tool calls, and `tool_use` without one would leave a client
    waiting for a call that never comes."""
    if has_tools:
        return "tool_use"
    reason = _STOP_REASONS.get(str(finish), "end_turn")
    return "end_turn" if reason == "tool_use" else reason


def finish_reason(stop: Any) -> str:
    return _FINISH_REASONS.get(str(stop), "stop")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def anthropic_usage(usage: Any) -> dict[str, int]:
    """OpenAI usage → Anthropic's: cached prompt tokens read from cache, the rest as input."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    cached = cached or _int(usage.get("prompt_cache_hit_tokens"))  # DeepSeek's own field
    prompt = _int(usage.get("prompt_tokens"))
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": _int(usage.get("completion_tokens")),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def openai_usage(usage: Any) -> dict[str, Any]:
    """Anthropic usage → OpenAI's: every input token, cached or not, counts as prompt."""
    usage = usage if isinstance(usage, dict) else {}
    cached = _int(usage.get("cache_read_input_tokens"))
    prompt = (
        _int(usage.get("input_tokens")) + cached + _int(usage.get("cache_creation_input_tokens"))
    )
    completion = _int(usage.get("output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def reasoning_of(message: Mapping[str, Any]) -> str:
    """The reasoning text of an OpenAI message or delta (`reasoning_content` or `reasoning`)."""
    for field in ("reasoning_content", "reasoning"):
        value = message.get(field)
        if isinstance(value, str) and value:
            return value
    return ""


def to_anthropic_message(body: bytes) -> bytes:
    """A Chat Completion as an Anthropic Message: thinking, then text, then tool_use blocks."""
    completion = parse(body)
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise TranslationError("the upstream's completion has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise TranslationError("the upstream's completion has no message")
    seed = str(completion.get("id", ""))
    content: list[dict[str, Any]] = []
    reasoning = reasoning_of(message)
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content") or message.get("refusal")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for position, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        content.append(
            {
                "type": "tool_use",
                "id": tool_id(call.get("id"), seed, position),
                "name": str(function.get("name", "")),
                "input": tool_arguments(function.get("arguments")),
            }
        )
    has_tools = any(block["type"] == "tool_use" for block in content)
    stop = stop_reason(choice.get("finish_reason"), has_tools)
    usage = anthropic_usage(completion.get("usage"))
    result = pivot_message(seed, str(completion.get("model", "")), content, stop, usage)
    return orjson.dumps(result)


def assistant_parts(content: list[Any]) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """An Anthropic assistant turn's texts, reasoning and OpenAI `tool_calls`, in order."""
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {"name": str(block.get("name", "")), "arguments": arguments},
                }
            )
    return texts, reasoning, calls


def to_openai_completion(body: bytes, created: int) -> bytes:
    """An Anthropic Message as a Chat Completion (thinking as `reasoning_content`)."""
    message = parse(body)
    content = message.get("content")
    if not isinstance(content, list):
        raise TranslationError("the upstream's message has no content list")
    texts, reasoning, calls = assistant_parts(content)
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        reply["tool_calls"] = calls
    if reasoning:
        reply["reasoning_content"] = "".join(reasoning)
    result = {
        "id": str(message.get("id", "")),
        "object": "chat.completion",
        "created": created,
        "model": str(message.get("model", "")),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": finish_reason(message.get("stop_reason")),
                "logprobs": None,
            }
        ],
        "usage": openai_usage(message.get("usage")),
    }
    return orjson.dumps(result)
