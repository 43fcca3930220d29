"""Responses API streams from the pivot: pivot (Anthropic) events as a Responses client's events.

`AnthropicToResponses` writes what the openai SDK and Codex parse: `response.created` and
`response.in_progress`, then per output item `response.output_item.added` → its part, text,
arguments or reasoning-summary events → `response.output_item.done`, and last
`response.completed` (or `response.incomplete`) with the whole response and its usage. Every
event has a `sequence_number`; item ids are stable across an item's events. A failure after
the commit ends the stream with `response.failed`.

The Responses protocol repeats each item's whole text in its `.done` events and the whole
output in `response.completed`, and clients rely on both: the openai SDK's final response
(`get_final_response()`, `output_text`) is the `response.completed` one, and Codex keeps the
items of `response.output_item.done`. So this codec keeps the output so far, and nothing
else, up to `KEPT_LIMIT` characters per stream (each item counting `ITEM_COST` beside its
text): no model writes that much in one answer, and a stream that does (a runaway upstream)
keeps its memory bounded — its deltas still go through whole, while the text those events
repeat is cut at the limit and items past it are left out of `response.completed`.
"""

from __future__ import annotations

from typing import Any

import orjson

from routatic_asgi.sse import Event, encode_event
from routatic_asgi.translate.codec import PivotEvents
from routatic_asgi.translate.pivot import as_dict, keepalive, load
from routatic_asgi.translate.responses.answers import (
    function_call_item,
    item_id,
    reasoning_item,
    response_id,
    response_object,
    response_usage,
    status_of,
)
from routatic_asgi.translate.responses.request_to_pivot import namespaced

__all__ = ["ITEM_COST", "KEPT_LIMIT", "AnthropicToResponses", "failed_event"]

KEPT_LIMIT = 4 * 1024 * 1024  # characters of output kept to repeat in .done and completed
ITEM_COST = 256  # what one finished item counts against KEPT_LIMIT beside its text


def failed_event(response: dict[str, Any], sequence: int, message: str) -> bytes:
    """`response.failed`: the response so far, with the error that ended it."""
    failed = {**response, "status": "failed"}
    failed["error"] = {"code": "server_error", "message": message}
    body = {"type": "response.failed", "sequence_number": sequence, "response": failed}
    return encode_event("response.failed", orjson.dumps(body))


class _Item:
    __slots__ = ("block", "index", "item", "kind", "parts")

    def __init__(self, kind: str, index: int, item: dict[str, Any], block: dict[str, Any]) -> None:
        self.kind, self.index, self.item, self.block = kind, index, item, block
        self.parts: list[str] = []


class AnthropicToResponses(PivotEvents):
    def __init__(self, request: Any, created: int) -> None:
        super().__init__()
        self.request = request if isinstance(request, dict) else {}
        self.created = created
        self.names = namespaced(self.request.get("tools"))
        self._sequence = 0
        self._response: dict[str, Any] = response_object(
            "resp_translated", "", created, self.request, "in_progress"
        )
        self._seed = "translated"
        self._output: list[dict[str, Any]] = []
        self._open: dict[int, _Item] = {}
        self._usage: dict[str, Any] = {}
        self._stop: Any = None
        self._closed = False
        self._kept = 0  # characters kept, against KEPT_LIMIT

    # -- the relay's questions ----------------------------------------------------------

    def translate(self, event: Event) -> bytes:
        name = event.name
        if name == "ping" or name is None:
            return keepalive(event) if name is None else b": ping\n\n"
        if name == "error":
            error = as_dict(as_dict(load(event.data)).get("error"))
            return self.error_event(str(error.get("message") or "the upstream stream failed"))
        if name == "message_stop":
            return self._complete()
        payload = load(event.data)
        if payload is None:
            return b""
        handler = self._HANDLERS.get(name)
        return handler(self, payload) if handler is not None else b""

    def finish(self) -> bytes:
        return b""

    def error_event(self, message: str) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        self._response["output"] = self._output
        return failed_event(self._response, self._next(), message)

    # -- writing events -------------------------------------------------------------------

    def _next(self) -> int:
        sequence = self._sequence
        self._sequence += 1
        return sequence

    def _event(self, kind: str, body: dict[str, Any]) -> bytes:
        body = {"type": kind, "sequence_number": self._next(), **body}
        return encode_event(kind, orjson.dumps(body))

    def _message_start(self, payload: dict[str, Any]) -> bytes:
        message = as_dict(payload.get("message"))
        rid = response_id(str(message.get("id", "")))
        self._seed = rid.removeprefix("resp_")
        self._usage.update(as_dict(message.get("usage")))
        self._response = response_object(
            rid, str(message.get("model", "")), self.created, self.request, "in_progress"
        )
        snapshot = {"response": self._response}
        return self._event("response.created", snapshot) + self._event(
            "response.in_progress", snapshot
        )

    def _block_start(self, payload: dict[str, Any]) -> bytes:
        block = as_dict(payload.get("content_block"))
        kind = block.get("type")
        output_index = len(self._output) + len(self._open)
        if kind == "text":
            item = {
                "type": "message",
                "id": item_id("msg", self._seed, output_index),
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            part = {"type": "output_text", "text": "", "annotations": []}
            opened = self._added(payload, _Item("text", output_index, item, block))
            where = {"item_id": item["id"], "output_index": output_index, "content_index": 0}
            return opened + self._event("response.content_part.added", {**where, "part": part})
        if kind in ("thinking", "redacted_thinking"):
            item = reasoning_item(block, self._seed, output_index, "")
            opened = self._added(payload, _Item(kind, output_index, item, block))
            if kind == "redacted_thinking":
                return opened
            part = {"type": "summary_text", "text": ""}
            where = {"item_id": item["id"], "output_index": output_index, "summary_index": 0}
            return opened + self._event(
                "response.reasoning_summary_part.added", {**where, "part": part}
            )
        if kind == "tool_use":
            item = function_call_item(
                block, self._seed, output_index, "in_progress", "", self.names
            )
            return self._added(payload, _Item("tool", output_index, item, block))
        return b""  # server tool blocks: nothing a Responses client can run

    def _added(self, payload: dict[str, Any], state: _Item) -> bytes:
        self._open[int(payload.get("index", -1))] = state
        body = {"output_index": state.index, "item": state.item}
        return self._event("response.output_item.added", body)

    def _block_delta(self, payload: dict[str, Any]) -> bytes:
        state = self._open.get(int(payload.get("index", -1)))
        delta = as_dict(payload.get("delta"))
        if state is None:
            return b""
        kind, where = delta.get("type"), {"item_id": state.item["id"], "output_index": state.index}
        if kind == "text_delta" and delta.get("text"):
            self._keep(state, str(delta["text"]))
            body = {**where, "content_index": 0, "delta": str(delta["text"]), "logprobs": []}
            return self._event("response.output_text.delta", body)
        if kind == "thinking_delta" and delta.get("thinking"):
            self._keep(state, str(delta["thinking"]))
            body = {**where, "summary_index": 0, "delta": str(delta["thinking"])}
            return self._event("response.reasoning_summary_text.delta", body)
        if kind == "signature_delta":
            state.block = {**state.block, "signature": str(delta.get("signature", ""))}
        if kind == "input_json_delta" and delta.get("partial_json"):
            self._keep(state, str(delta["partial_json"]))
            body = {**where, "delta": str(delta["partial_json"])}
            return self._event("response.function_call_arguments.delta", body)
        return b""

    def _keep(self, state: _Item, text: str) -> None:
        room = KEPT_LIMIT - self._kept
        if room > 0:
            state.parts.append(text[:room])
            self._kept += min(len(text), room)

    def _block_stop(self, payload: dict[str, Any]) -> bytes:
        state = self._open.pop(int(payload.get("index", -1)), None)
        if state is None:
            return b""
        text = "".join(state.parts)
        where = {"item_id": state.item["id"], "output_index": state.index}
        item, out = state.item, b""
        if state.kind == "text":
            part = {"type": "output_text", "text": text, "annotations": []}
            out = self._event(
                "response.output_text.done",
                {**where, "content_index": 0, "text": text, "logprobs": []},
            )
            out += self._event(
                "response.content_part.done", {**where, "content_index": 0, "part": part}
            )
            item = {**item, "status": "completed", "content": [part]}
        elif state.kind == "thinking":
            part = {"type": "summary_text", "text": text}
            out = self._event(
                "response.reasoning_summary_text.done", {**where, "summary_index": 0, "text": text}
            )
            out += self._event(
                "response.reasoning_summary_part.done", {**where, "summary_index": 0, "part": part}
            )
            item = reasoning_item(state.block, self._seed, state.index, text)
        elif state.kind == "tool":
            text = text or "{}"
            body = {**where, "name": item["name"], "arguments": text}
            out = self._event("response.function_call_arguments.done", body)
            item = {**item, "status": "completed", "arguments": text}
        else:
            item = reasoning_item(state.block, self._seed, state.index, "")
        if self._kept + ITEM_COST <= KEPT_LIMIT:
            self._kept += ITEM_COST
            self._output.append(item)
        return out + self._event(
            "response.output_item.done", {"output_index": state.index, "item": item}
        )

    def _message_delta(self, payload: dict[str, Any]) -> bytes:
        usage = as_dict(payload.get("usage"))
        self._usage.update({k: v for k, v in usage.items() if v is not None})
        self._stop = as_dict(payload.get("delta")).get("stop_reason")
        return b""

    def _complete(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        status, incomplete = status_of(self._stop)
        response = {
            **self._response,
            "status": status,
            "incomplete_details": incomplete,
            "output": self._output,
            "usage": response_usage(self._usage),
        }
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return self._event(kind, {"response": response})

    _HANDLERS: dict[str, Any] = {
        "message_start": _message_start,
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "content_block_stop": _block_stop,
        "message_delta": _message_delta,
    }
