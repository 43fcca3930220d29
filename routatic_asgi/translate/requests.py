"""Request bodies: Anthropic Messages ⇄ OpenAI Chat Completions.

`to_openai` turns an Anthropic client's body into one for an OpenAI-protocol target;
`to_anthropic` turns an OpenAI client's body into one for an Anthropic target. Both are pure
functions of a parsed body. Fields with no counterpart are dropped (docs/compat-matrix.md says
which); nothing here raises on a strange body, it translates what it recognises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import orjson

from routatic_asgi.translate.continuity import thinking_on

__all__ = ["DEFAULT_MAX_TOKENS", "Dialect", "dialect_of", "to_anthropic", "to_openai"]

Dialect = Literal["openai", "deepseek", "openrouter"]

DEFAULT_MAX_TOKENS = 8192  # Anthropic requires max_tokens; OpenAI clients often omit it
TOOL_ERROR_PREFIX = "Error: "

# Anthropic thinking budget ⇄ OpenAI reasoning_effort.
_EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)


# --- Anthropic client → OpenAI target ------------------------------------------------------


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    out = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text":
            out.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") == "document":
            out.extend(_document_text(block))
    return out


def _document_text(block: Mapping[str, Any]) -> list[str]:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "text":
        return [str(source.get("data", ""))]
    return ["[a document was omitted: this provider cannot read it]"]


def _image_part(block: Mapping[str, Any]) -> dict[str, Any] | None:
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _user_parts(blocks: list[Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "image":
            image = _image_part(block)
            if image is not None:
                parts.append(image)
        else:
            parts.extend({"type": "text", "text": text} for text in _texts([block]))
    return parts


def _user_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A plain string when there are only texts: every OpenAI-compatible server reads that."""
    if all(part["type"] == "text" for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


def _tool_messages(blocks: list[Any]) -> Iterator[dict[str, Any]]:
    """One `role: tool` message per tool_result; their images follow in a user message."""
    images: list[dict[str, Any]] = []
    for block in blocks:
        if not (isinstance(block, dict) and block.get("type") == "tool_result"):
            continue
        content = block.get("content")
        text = "\n\n".join(_texts(content))
        if block.get("is_error"):
            text = TOOL_ERROR_PREFIX + text
        if isinstance(content, list):
            images.extend(p for p in _user_parts(content) if p["type"] == "image_url")
        yield {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text}
    if images:
        yield {"role": "user", "content": images}


def _user_messages(content: Any) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return [{"role": "user", "content": "\n\n".join(_texts(content))}]
    messages = list(_tool_messages(content))
    rest = [b for b in content if not (isinstance(b, dict) and b.get("type") == "tool_result")]
    parts = _user_parts(rest)
    if parts or not messages:
        messages.append({"role": "user", "content": _user_content(parts)})
    return messages


def _assistant_message(content: Any, placeholder: bool) -> dict[str, Any]:
    if not isinstance(content, list):
        return {"role": "assistant", "content": "\n\n".join(_texts(content))}
    texts, reasoning, calls = [], [], []
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
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
        # DeepSeek's thinking mode requires the reasoning of tool-call turns to come back.
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
        elif placeholder:
            message["reasoning_content"] = _no_reasoning(calls)
    elif message["content"] is None:
        message["content"] = ""
    return message


def _no_reasoning(calls: list[dict[str, Any]]) -> str:
    """Stands in for reasoning another model never gave. Unique per turn (it names the call
    ids): DeepSeek is known to collapse into empty answers on a repeated placeholder."""
    named = ", ".join(f"{c['function']['name']} ({c['id']})" for c in calls)
    return f"(No reasoning was recorded for this turn, which called {named}.)"


def _openai_messages(payload: Mapping[str, Any], placeholder: bool) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = "\n\n".join(_texts(payload.get("system")))
    if system:
        messages.append({"role": "system", "content": system})
    for message in payload.get("messages") or ():
        if not isinstance(message, dict):
            continue
        role, content = message.get("role"), message.get("content")
        if role == "assistant":
            messages.append(_assistant_message(content, placeholder))
        elif role == "system":
            messages.append({"role": "system", "content": "\n\n".join(_texts(content))})
        else:
            messages.extend(_user_messages(content))
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
        out.append({"type": "function", "function": function})
    return out


def _openai_tool_choice(choice: Any) -> Any:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))


def _reasoning_effort(payload: Mapping[str, Any]) -> str | None:
    if not thinking_on(payload):
        return None
    config = payload.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if effort in _EFFORTS:
        return _EFFORTS[str(effort)]
    budget = payload["thinking"].get("budget_tokens")
    if not isinstance(budget, int):
        return "medium"
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


def dialect_of(model: str, base_url: str) -> Dialect:
    """Which reasoning option an OpenAI-protocol target understands, from its URL and model."""
    if "openrouter.ai" in base_url.lower():
        return "openrouter"
    if "deepseek" in f"{model} {base_url}".lower():
        return "deepseek"
    return "openai"


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
    dialect: Dialect = "openai",
) -> dict[str, Any]:
    """An Anthropic Messages body as a Chat Completions body for `model`.

    `reasoning=False` asks for no reasoning; `dialect` picks how reasoning is asked for
    (`reasoning_effort`, DeepSeek's `thinking`, OpenRouter's `reasoning`).
    """
    messages = _openai_messages(payload, placeholder=dialect == "deepseek")
    body: dict[str, Any] = {"model": model, "messages": messages}
    if "max_tokens" in payload:
        body["max_tokens"] = payload["max_tokens"]
    for field in ("temperature", "top_p"):
        if field in payload:
            body[field] = payload[field]
    if payload.get("stop_sequences"):
        body["stop"] = list(payload["stop_sequences"])
    tools = _openai_tools(payload.get("tools"))
    if tools:
        body["tools"] = tools
        choice = payload.get("tool_choice")
        mapped = _openai_tool_choice(choice)
        if mapped is not None:
            body["tool_choice"] = mapped
        if isinstance(choice, dict) and choice.get("disable_parallel_tool_use"):
            body["parallel_tool_calls"] = False
    metadata = payload.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id"):
        body["user"] = str(metadata["user_id"])
    _reasoning_option(body, _reasoning_effort(payload) if reasoning else None, dialect)
    if payload.get("stream") is True:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


# --- OpenAI client → Anthropic target ------------------------------------------------------


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


def _tool_input(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


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
                "input": _tool_input(function.get("arguments")),
            }
        )
    return blocks


def _tool_result(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    text = content if isinstance(content, str) else "\n\n".join(_texts(content))
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
            system.extend(t for t in _texts(message.get("content")) if t)
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
        if not isinstance(function, dict):
            continue
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        converted = {"name": function.get("name", ""), "input_schema": schema}
        if function.get("description"):
            converted["description"] = function["description"]
        out.append(converted)
    return out


def _anthropic_tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name", "") if isinstance(function, dict) else ""
        mapped: dict[str, Any] = {"type": "tool", "name": name}
    elif choice in ("none", "auto", "required"):
        mapped = {"type": {"required": "any"}.get(choice, choice)}
    elif parallel is False:
        mapped = {"type": "auto"}
    else:
        return None
    if parallel is False and mapped["type"] != "none":
        mapped["disable_parallel_tool_use"] = True
    return mapped


def _thinking(payload: Mapping[str, Any], max_tokens: int, turns: list[Any]) -> Any:
    effort = payload.get("reasoning_effort")
    if effort not in _EFFORT_BUDGETS:
        return None
    # An assistant tool-call turn translated from OpenAI has no thinking block, and Anthropic
    # requires one to open the turn a tool loop continues: no thinking in the middle of a loop.
    if (
        turns
        and turns[-1]["role"] == "user"
        and any(block["type"] == "tool_result" for block in turns[-1]["content"])
    ):
        return None
    budget = min(_EFFORT_BUDGETS[str(effort)], max_tokens - 1)
    return {"type": "enabled", "budget_tokens": budget} if budget >= 1024 else None


def to_anthropic(
    payload: Mapping[str, Any], model: str, *, reasoning: bool = True
) -> dict[str, Any]:
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
    tools = _anthropic_tools(payload.get("tools"))
    if tools:
        body["tools"] = tools
        choice = _anthropic_tool_choice(
            payload.get("tool_choice"), payload.get("parallel_tool_calls")
        )
        if choice is not None:
            body["tool_choice"] = choice
    if payload.get("user"):
        body["metadata"] = {"user_id": str(payload["user"])}
    thinking = _thinking(payload, max_tokens, turns) if reasoning else None
    if thinking is not None:
        body["thinking"] = thinking  # Anthropic allows neither temperature nor top_p with it
    else:
        if isinstance(payload.get("temperature"), int | float):
            body["temperature"] = min(float(payload["temperature"]), 1.0)
        if "top_p" in payload:
            body["top_p"] = payload["top_p"]
    if payload.get("stream") is True:
        body["stream"] = True
    return body
