"""Reasoning replay for Chat Completions targets that want their reasoning back.

DeepSeek's thinking mode (and any model marked `reasoning_replay: true`) refuses a request
whose assistant tool-call turns lack the `reasoning_content` it wrote for them, and most
Chat clients drop that field. `ReasoningLog` reads what a target reasoned before its tool
calls, from its answer or its stream's chunks, for the caller to keep by tool call id;
`missing_reasoning` names the tool-call turns of a body that lack reasoning, and
`restore_reasoning` puts back what was kept, or a short note as the last resort. Pure: no
I/O; memory per stream is bounded by `REASONING_LIMIT`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routatic_asgi.sse import Event
from routatic_asgi.translate.chat.answers import reasoning_of
from routatic_asgi.translate.pivot import as_dict, load, tool_id

__all__ = [
    "REASONING_LIMIT",
    "ReasoningLog",
    "call_key",
    "missing_reasoning",
    "no_reasoning",
    "restore_reasoning",
]

REASONING_LIMIT = 256 * 1024  # characters of one turn's reasoning kept; the rest is cut
CALLS_LIMIT = 128  # tool calls of one answer whose reasoning is kept


def call_key(raw: Any) -> str | None:
    """A tool call id as every protocol carries it on (`tool_id`'s alphabet), or None."""
    return tool_id(raw, "", 0) if isinstance(raw, str) and raw else None


def _calls(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    calls = message.get("tool_calls")
    return [call for call in calls if isinstance(call, dict)] if isinstance(calls, list) else []


def _needs_reasoning(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and message.get("role") == "assistant"
        and bool(_calls(message))
        and not reasoning_of(message)
    )


def missing_reasoning(body: Mapping[str, Any]) -> list[str]:
    """The tool call ids of the assistant tool-call turns that carry no reasoning."""
    wanted: list[str] = []
    for message in body.get("messages") or ():
        if _needs_reasoning(message):
            keys = (call_key(call.get("id")) for call in _calls(message))
            wanted.extend(key for key in keys if key is not None)
    return wanted


def no_reasoning(calls: list[Mapping[str, Any]]) -> str:
    """Stands in for reasoning nobody kept. Unique per turn (it names the call ids): DeepSeek
    is known to collapse into empty answers on a repeated placeholder."""
    named = ", ".join(
        f"{as_dict(c.get('function')).get('name', '')} ({c.get('id')})" for c in calls
    )
    return f"(No reasoning was recorded for this turn, which called {named}.)"


def restore_reasoning(body: dict[str, Any], kept: Mapping[str, str]) -> bool:
    """Give each assistant tool-call turn without reasoning what was kept for one of its calls,
    else the note of `no_reasoning`. Whether anything changed."""
    changed = False
    for message in body.get("messages") or ():
        if not _needs_reasoning(message):
            continue
        calls = _calls(message)
        found = (kept.get(call_key(call.get("id")) or "") for call in calls)
        message["reasoning_content"] = next((text for text in found if text), no_reasoning(calls))
        changed = True
    return changed


class ReasoningLog:
    """What a Chat Completions target reasoned before the tool calls of one answer."""

    __slots__ = ("calls", "parts", "size")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.calls: list[str] = []

    def answer(self, body: bytes) -> None:
        """Read a whole (non-streamed) completion."""
        self._read(load(body), "message")

    def event(self, event: Event) -> None:
        """Read one chunk of a stream."""
        if event.data and event.data != b"[DONE]":
            self._read(load(event.data), "delta")

    def kept(self) -> dict[str, str]:
        """The reasoning by tool call id; nothing when the answer had no calls or no reasoning."""
        if not self.parts:
            return {}
        reasoning = "".join(self.parts)
        return dict.fromkeys(self.calls, reasoning)

    def _read(self, payload: dict[str, Any] | None, field: str) -> None:
        choices = payload.get("choices") if payload else None
        if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
            return
        message = as_dict(choices[0].get(field))
        text = reasoning_of(message)
        if text and self.size < REASONING_LIMIT:
            text = text[: REASONING_LIMIT - self.size]
            self.parts.append(text)
            self.size += len(text)
        for call in _calls(message):
            key = call_key(call.get("id"))
            if key is not None and key not in self.calls and len(self.calls) < CALLS_LIMIT:
                self.calls.append(key)
