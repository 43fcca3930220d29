"""Responses API streams to the pivot: a Responses target's events, as pivot (Anthropic) events.

`ResponsesToAnthropic` reads the TARGET's events (`response.*`, as the SSE framer cut them)
and writes pivot events: text deltas as a text block, reasoning-summary deltas as a thinking
block (whose signature carries the item's `encrypted_content`, so it can go back to the
Responses target and nowhere else), function calls as tool_use blocks, and
`response.completed`/`response.incomplete` as `message_delta` + `message_stop`.
`response.failed` and `error` are the target's failure. State is one small object per stream;
nothing is buffered for later.
"""

from __future__ import annotations

from typing import Any

from routatic_asgi.errors import anthropic_error_body
from routatic_asgi.sse import Event, encode_event
from routatic_asgi.translate.codec import EventKind, stream_error_event
from routatic_asgi.translate.pivot import Blocks, as_dict, keepalive, load, message_start, tool_id
from routatic_asgi.translate.responses.answers import pivot_usage, stop_reason_of
from routatic_asgi.translate.responses.reasoning import responses_signature
from routatic_asgi.translate.responses.stream import END, FAILED, HOLD

__all__ = ["ResponsesToAnthropic"]


class ResponsesToAnthropic:
    def __init__(self) -> None:
        self.seen = False
        self.committed = False
        self._started = self._closed = False
        self._id = ""
        self._blocks = Blocks()  # keyed by the item id whose block is open
        self._kind = ""
        self._tools = 0
        self._arguments = False  # the open tool block got argument deltas

    def kind(self, event: Event) -> EventKind:
        self.seen = True
        name = _name(event)
        if name in END:
            return EventKind.END
        if name in FAILED:
            return EventKind.END if self.committed else EventKind.ERROR
        if name is None or (name in HOLD and not self.committed):
            return EventKind.HOLD
        self.committed = True
        return EventKind.CONTENT

    def translate(self, event: Event) -> bytes:
        payload = load(event.data) if event.data else None
        if payload is None:
            return keepalive(event)
        name = _name(event) or str(payload.get("type", ""))
        out = [self._start(payload)]
        if name in FAILED:
            out.append(self._failed(payload))
        elif name in END:
            out.append(self._close(as_dict(payload.get("response"))))
        else:
            out.append(self._content(name, payload))
        return b"".join(out)

    def finish(self) -> bytes:
        return b""

    def error_event(self, message: str) -> bytes:
        self._closed = True
        return stream_error_event("anthropic", message)

    # -- writing events -------------------------------------------------------------------

    def _start(self, payload: dict[str, Any]) -> bytes:
        if self._started:
            return b""
        self._started = True
        response = as_dict(payload.get("response"))
        self._id = str(response.get("id") or "msg_translated")
        return message_start(self._id, str(response.get("model", "")))

    def _content(self, name: str, payload: dict[str, Any]) -> bytes:
        key = str(payload.get("item_id", ""))
        if name == "response.output_text.delta" and payload.get("delta"):
            opened = self._block(key, "text", {"type": "text", "text": ""})
            return opened + self._blocks.delta(
                {"type": "text_delta", "text": str(payload["delta"])}
            )
        if name == "response.reasoning_summary_text.delta" and payload.get("delta"):
            block = {"type": "thinking", "thinking": "", "signature": ""}
            opened = self._block(key, "thinking", block)
            return opened + self._blocks.delta(
                {"type": "thinking_delta", "thinking": str(payload["delta"])}
            )
        if name == "response.reasoning_summary_part.added" and self._blocks.open == key:
            return self._blocks.delta({"type": "thinking_delta", "thinking": "\n\n"})
        if name == "response.output_item.added":
            return self._item_added(as_dict(payload.get("item")))
        if name == "response.function_call_arguments.delta" and self._blocks.open == key:
            self._arguments = True
            return self._blocks.delta(
                {"type": "input_json_delta", "partial_json": str(payload.get("delta", ""))}
            )
        if name == "response.output_item.done":
            return self._item_done(as_dict(payload.get("item")))
        return b""

    def _item_added(self, item: dict[str, Any]) -> bytes:
        if item.get("type") != "function_call":
            return b""
        block = {
            "type": "tool_use",
            "id": tool_id(item.get("call_id"), self._id, self._tools),
            "name": _flat_name(item),
            "input": {},
        }
        self._tools += 1
        self._arguments = False
        return self._block(str(item.get("id", "")), "tool", block, force=True)

    def _item_done(self, item: dict[str, Any]) -> bytes:
        kind, key, out = item.get("type"), str(item.get("id", "")), b""
        if kind == "function_call" and self._blocks.open == key and not self._arguments:
            arguments = str(item.get("arguments") or "")
            if arguments:
                out = self._blocks.delta({"type": "input_json_delta", "partial_json": arguments})
        if kind == "reasoning":
            encrypted = item.get("encrypted_content")
            if isinstance(encrypted, str) and encrypted:
                block = {"type": "thinking", "thinking": "", "signature": ""}
                out = self._block(key, "thinking", block)
                signature = responses_signature(key or "rs_unknown", encrypted)
                out += self._blocks.delta({"type": "signature_delta", "signature": signature})
        if self._blocks.open == key:
            out += self._blocks.stop()
        return out

    def _block(self, key: str, kind: str, block: dict[str, Any], *, force: bool = False) -> bytes:
        if self._blocks.open == key and self._kind == kind and not force:
            return b""
        self._kind = kind
        return self._blocks.start(key, block)

    def _close(self, response: dict[str, Any]) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        stop = stop_reason_of(response, self._tools > 0)
        return self._blocks.end(stop, pivot_usage(response.get("usage")))

    def _failed(self, payload: dict[str, Any]) -> bytes:
        self._closed = True
        error = as_dict(as_dict(payload.get("response")).get("error")) or payload
        message = str(error.get("message") or "the upstream's response failed")
        code = str(error.get("code") or "")
        status = 529 if "overload" in code else 429 if "rate_limit" in code else 500
        body = anthropic_error_body(status, message)
        return encode_event("error", body)


def _name(event: Event) -> str | None:
    if event.name:
        return event.name
    if not event.data:
        return None
    # A server that writes bare `data:` lines: the type is in the body.
    payload = load(event.data)
    return str(payload.get("type")) if payload and payload.get("type") else None


def _flat_name(item: dict[str, Any]) -> str:
    name, namespace = str(item.get("name", "")), item.get("namespace")
    return f"{namespace}__{name}" if isinstance(namespace, str) and namespace else name
