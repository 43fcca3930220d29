"""Request options the two OpenAI protocols map to and from the pivot the same way.

Chat Completions and Responses differ in their envelopes but agree on the options a request
carries: how hard to reason (`reasoning_effort` / `reasoning.effort` ⇄ a thinking budget),
which tool to use (`tool_choice`, `parallel_tool_calls` ⇄ `tool_choice` with
`disable_parallel_tool_use`), function tools' names, schemas and `strict`, sampling, images,
and who the end user is. One function each, used by both packages. Pure; never raises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from routatic_asgi.translate.pivot import as_dict, texts, thinking_on

__all__ = [
    "end_user",
    "image_url",
    "openai_effort",
    "openai_tools",
    "pivot_thinking",
    "pivot_tool",
    "pivot_tools",
    "sampling",
    "tool_output",
]

# The pivot's output_config.effort → an OpenAI reasoning effort.
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
# An OpenAI reasoning effort → a thinking budget.
_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
_SMALLEST_BUDGET = 1024  # Anthropic refuses less
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def openai_effort(pivot: Mapping[str, Any]) -> str | None:
    """The OpenAI reasoning effort a pivot request asks for; None when it does not think."""
    if not thinking_on(pivot):
        return None
    config = pivot.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if effort in _EFFORTS:
        return _EFFORTS[str(effort)]
    budget = pivot["thinking"].get("budget_tokens")
    if not isinstance(budget, int):
        return "medium"
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


def pivot_thinking(effort: Any, max_tokens: int, turns: list[Any]) -> dict[str, Any] | None:
    """The pivot's `thinking` for an OpenAI reasoning effort, or None.

    None too in the middle of a tool loop whose assistant turn has no thinking block: a turn
    translated from OpenAI carries none Anthropic signed, and Anthropic requires the turn a
    tool loop continues to open with one."""
    if effort not in _BUDGETS:
        return None
    last = turns[-1] if turns else None
    if last and last["role"] == "user" and any(b["type"] == "tool_result" for b in last["content"]):
        previous = turns[-2]["content"] if len(turns) > 1 else []
        if not any(b.get("type") in ("thinking", "redacted_thinking") for b in previous):
            return None
    budget = min(_BUDGETS[str(effort)], max_tokens - 1)
    return {"type": "enabled", "budget_tokens": budget} if budget >= _SMALLEST_BUDGET else None


def sampling(body: dict[str, Any], payload: Mapping[str, Any], thinking: Any) -> None:
    """`thinking` on the pivot body, or else the client's temperature (at most 1, as Anthropic
    wants) and top_p: Anthropic allows neither with thinking."""
    if thinking is not None:
        body["thinking"] = thinking
        return
    if isinstance(payload.get("temperature"), int | float):
        body["temperature"] = min(float(payload["temperature"]), 1.0)
    if isinstance(payload.get("top_p"), int | float):
        body["top_p"] = payload["top_p"]


def openai_tools(
    body: dict[str, Any], pivot: Mapping[str, Any], tools: list[Any], *, nested: bool
) -> None:
    """`tools`, and the pivot's tool_choice as OpenAI's `tool_choice` and
    `parallel_tool_calls`, on an OpenAI body. A named tool is `{"type": "function", "function":
    {"name"}}` in Chat Completions (`nested`), `{"type": "function", "name"}` in Responses."""
    if not tools:
        return
    body["tools"] = tools
    choice = as_dict(pivot.get("tool_choice"))
    kind = choice.get("type")
    if kind == "tool":
        name = str(choice.get("name", ""))
        named = {"function": {"name": name}} if nested else {"name": name}
        body["tool_choice"] = {"type": "function", **named}
    elif kind in _TOOL_CHOICES:
        body["tool_choice"] = _TOOL_CHOICES[kind]
    if choice.get("disable_parallel_tool_use"):
        body["parallel_tool_calls"] = False


def pivot_tools(
    body: dict[str, Any], tools: list[dict[str, Any]], payload: Mapping[str, Any]
) -> None:
    """`tools` on a pivot body, with the OpenAI request's tool_choice (Chat's `{"function":
    {"name"}}` or Responses' `{"name"}`) and parallel_tool_calls as the pivot's tool_choice."""
    if not tools:
        return
    body["tools"] = tools
    choice, parallel = payload.get("tool_choice"), payload.get("parallel_tool_calls")
    if isinstance(choice, dict) and choice.get("type", "function") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        mapped: dict[str, Any] = {"type": "tool", "name": str(name or "")}
    elif choice in ("none", "auto", "required"):
        mapped = {"type": {"required": "any"}.get(choice, choice)}
    elif parallel is False:
        mapped = {"type": "auto"}
    else:
        return
    if parallel is False and mapped["type"] != "none":
        mapped["disable_parallel_tool_use"] = True
    body["tool_choice"] = mapped


def pivot_tool(name: str, function: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI function (its parameters, description, strict) as a pivot tool."""
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    converted: dict[str, Any] = {"name": name, "input_schema": schema}
    if function.get("description"):
        converted["description"] = function["description"]
    if function.get("strict") is True:
        converted["strict"] = True
    return converted


def image_url(block: Mapping[str, Any]) -> str | None:
    """A pivot image block's source as the URL both OpenAI protocols take (data: or https:)."""
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    if source.get("type") == "url":
        return str(source.get("url", ""))
    return None


def tool_output(block: Mapping[str, Any]) -> str:
    """A tool_result block's text; OpenAI tool outputs have no error flag, so a failure says
    so in words."""
    text = "\n\n".join(texts(block.get("content")))
    return "Error: " + text if block.get("is_error") else text


def end_user(pivot: Mapping[str, Any]) -> str | None:
    """The OpenAI `user` for a pivot request's `metadata.user_id`: a hash, never the id itself.

    Claude Code's user_id is a JSON string naming the device, the account and the session;
    none of that is for another provider. A stable hash still lets the provider's abuse
    monitoring tell one end user from another."""
    metadata = pivot.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(user_id, str) or not user_id:
        return None
    return "user-" + hashlib.sha256(user_id.encode()).hexdigest()[:32]
