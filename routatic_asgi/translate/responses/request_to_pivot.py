"""Responses API requests to the pivot: what a Responses client (Codex, the SDKs) asked for.

`to_pivot` turns a `POST /v1/responses` body into a pivot (Anthropic Messages) body:
`instructions` and `system`/`developer` messages become `system`; `input` items (messages
with text and image parts, `function_call`, `function_call_output`, `reasoning`) become
turns; function tools (and the tools inside a `namespace`, flattened as `<namespace>__<name>`
and mapped back by `tool_names`) become tools; `reasoning.effort` a thinking budget;
`max_output_tokens` becomes `max_tokens`. Hosted tools (`web_search`, file search...),
`include`, `store`, `prompt_cache_key` have no counterpart and are dropped. Pure; never raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from routatic_asgi.translate.options import pivot_thinking, pivot_tool, pivot_tools, sampling
from routatic_asgi.translate.pivot import as_dict, texts, tool_arguments
from routatic_asgi.translate.responses.reasoning import from_item

__all__ = ["DEFAULT_MAX_TOKENS", "NAMESPACE_SEPARATOR", "flat_tools", "namespaced", "to_pivot"]

DEFAULT_MAX_TOKENS = 8192  # Anthropic requires max_tokens; Responses clients often omit it
NAMESPACE_SEPARATOR = "__"
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text"})


def _part_block(part: Any) -> dict[str, Any] | None:
    if isinstance(part, str):
        return {"type": "text", "text": part} if part else None
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind in _TEXT_PARTS and part.get("text"):
        return {"type": "text", "text": str(part["text"])}
    if kind == "refusal" and part.get("refusal"):
        return {"type": "text", "text": str(part["refusal"])}
    if kind == "input_image":
        return _image_block(part.get("image_url"))
    if kind == "input_file":
        return {"type": "text", "text": "[a file was omitted: this provider cannot read it]"}
    return None


def _image_block(url: Any) -> dict[str, Any] | None:
    if not isinstance(url, str) or not url:
        return None
    if url.startswith("data:") and ";base64," in url:
        media_type, _, data = url[5:].partition(";base64,")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = [_part_block(part) for part in content] if isinstance(content, list) else []
    return [block for block in blocks if block is not None]


def _output_text(output: Any) -> str:
    """A function_call_output's output (a string or parts) as the tool result's text."""
    if isinstance(output, str):
        return output
    return "\n\n".join(text for text in texts(_blocks(output)) if text)


def _turn(item: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """(role, blocks) of one input item; None for what has no pivot counterpart."""
    kind = item.get("type", "message")
    if kind == "message":
        role = "assistant" if item.get("role") == "assistant" else "user"
        return role, _blocks(item.get("content"))
    if kind == "function_call":
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": str(item.get("call_id") or item.get("id") or ""),
            "name": _flat_name(item),
            "input": tool_arguments(item.get("arguments")),
        }
        return "assistant", [block]
    if kind == "function_call_output":
        result: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": str(item.get("call_id", "")),
            "content": _output_text(item.get("output")),
        }
        return "user", [result]
    if kind == "reasoning":
        reasoning = from_item(item)
        return ("assistant", [reasoning]) if reasoning is not None else None
    return None  # hosted tool calls, item references: nothing a non-Responses target can read


def _flat_name(item: Mapping[str, Any]) -> str:
    name, namespace = str(item.get("name", "")), item.get("namespace")
    return (
        f"{namespace}{NAMESPACE_SEPARATOR}{name}"
        if isinstance(namespace, str) and namespace
        else name
    )


def namespaced(tools: Any) -> dict[str, tuple[str, str]]:
    """Flattened tool name → (namespace, name) for the tools a namespace holds."""
    out = {}
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict) and tool.get("type") == "namespace" and tool.get("name"):
            for name, _ in flat_tools(tool.get("tools")):
                out[f"{tool['name']}{NAMESPACE_SEPARATOR}{name}"] = (str(tool["name"]), name)
    return out


def _items(payload: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    items = payload.get("input")
    if isinstance(items, str):
        yield {"type": "message", "role": "user", "content": items}
        return
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict):
            yield item


def _turns(payload: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    turns: list[dict[str, Any]] = []
    system = [str(payload["instructions"])] if payload.get("instructions") else []
    for item in _items(payload):
        if item.get("type", "message") == "message" and item.get("role") in ("system", "developer"):
            system.extend(text for text in texts(_blocks(item.get("content"))) if text)
            continue
        turn = _turn(item)
        if turn is None or not turn[1]:
            continue
        role, blocks = turn
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns, system


def flat_tools(tools: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(name, function tool) of every function tool, a namespace's flattened into its own."""
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "function" and tool.get("name"):
            yield str(tool["name"]), tool
        elif tool.get("type") == "namespace":
            prefix = str(tool.get("name") or "")
            for inner_name, inner in flat_tools(tool.get("tools")):
                yield f"{prefix}{NAMESPACE_SEPARATOR}{inner_name}" if prefix else inner_name, inner


def _pivot_tools(tools: Any) -> list[dict[str, Any]]:
    return [pivot_tool(name, tool) for name, tool in flat_tools(tools)]


def _output_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if (
        isinstance(fmt, dict)
        and fmt.get("type") == "json_schema"
        and isinstance(fmt.get("schema"), dict)
    ):
        return {"format": {"type": "json_schema", "schema": fmt["schema"]}}
    return None


def to_pivot(payload: Mapping[str, Any], model: str, reasoning: bool = True) -> dict[str, Any]:
    """A Responses API body as a pivot (Anthropic Messages) body for `model`."""
    turns, system = _turns(payload)
    max_tokens = payload.get("max_output_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        max_tokens = DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if system:
        body["system"] = [{"type": "text", "text": text} for text in system]
    pivot_tools(body, _pivot_tools(payload.get("tools")), payload)
    if isinstance(payload.get("user"), str) and payload["user"]:
        body["metadata"] = {"user_id": payload["user"]}
    output = _output_format(payload.get("text"))
    if output is not None:
        body["output_config"] = output
    effort = as_dict(payload.get("reasoning")).get("effort") if reasoning else None
    sampling(body, payload, pivot_thinking(effort, max_tokens, turns))
    if payload.get("stream") is True:
        body["stream"] = True
    return body
