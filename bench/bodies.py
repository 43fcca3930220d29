"""The request bodies the bench sends: a short message, streamed or not, a Claude Code-shaped
200 KB request and a streamed OpenAI Responses request.
"""

from __future__ import annotations

import json
from typing import Any


def message(model: str, *, stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello."}],
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def claude_code_request(size: int = 200_000) -> bytes:
    """A body shaped like Claude Code's late in a session: a long system prompt, 25 tools
    with schemas, and tool_use / tool_result turns until it is `size` bytes. Its structure,
    not just its size, is what costs a JSON parser."""
    schema = {
        "type": "object",
        "properties": {
            f"arg{n}": {"type": "string", "description": "an argument " * 3} for n in range(6)
        },
        "required": ["arg0"],
    }
    tools = [
        {"name": f"tool_{n}", "description": "Does a thing. " * 20, "input_schema": schema}
        for n in range(25)
    ]
    messages: list[dict[str, Any]] = []
    system = [{"type": "text", "text": "You are Claude Code. " * 200}]
    body = {"model": "claude-bench-1", "max_tokens": 64, "system": system, "tools": tools}
    body["messages"] = messages
    turn = 0
    while len(json.dumps(body, separators=(",", ":"))) < size:
        result = {
            "type": "tool_result",
            "tool_use_id": f"toolu_{turn}",
            "content": "output\n" * 120,
        }
        use = {
            "type": "tool_use",
            "id": f"toolu_{turn + 1}",
            "name": "tool_3",
            "input": {"arg0": "a.py"},
        }
        messages.append({"role": "user", "content": [result]})
        messages.append(
            {"role": "assistant", "content": [{"type": "text", "text": "Next. " * 20}, use]}
        )
        turn += 2
    messages.append({"role": "user", "content": "Say hello."})
    return json.dumps(body, separators=(",", ":")).encode()


def responses_request() -> bytes:
    """A streamed OpenAI Responses API request for the Anthropic passthrough route."""
    body = {"model": "claude-bench-1", "input": "Say hello.", "max_output_tokens": 64}
    return json.dumps({**body, "stream": True}, separators=(",", ":")).encode()
