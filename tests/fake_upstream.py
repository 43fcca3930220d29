"""A scriptable fake provider for end-to-end tests, run as its own process.

    python tests/fake_upstream.py        # binds 127.0.0.1:0, prints the port, serves

Every path prefix is a provider of its own (`http://127.0.0.1:PORT/<prefix>`). A test queues
answers for a prefix with `POST /_script/<prefix>`, drops what is still queued with
`POST /_clear/<prefix>`, and reads what the prefix received with `GET /_calls/<prefix>`;
`GET /_disconnected/<prefix>` answers the same once the prefix's last call has seen its
client go away (with `?count=N`: once N of its calls have), or after 5 s. With nothing queued a prefix answers like a healthy provider
of the protocol the path implies (`/v1/messages`, `/chat/completions`, `/responses`). Answers:

    {"status": 429, "headers": {...}, "body": "..."}             a plain answer ("json": {...}
                                                                  for a JSON one; "gzip": true
                                                                  compresses it)
    {"sse": ["event: ...\\ndata: ...\\n\\n", ...], "then": "hang"}  a stream, then hang or "break"
    {"hang": true}                                                never answer
    {..., "deepseek_thinking": true}                             the answer, unless an assistant
                                                                  tool-call turn lacks its
                                                                  reasoning_content: then
                                                                  DeepSeek's 400
    {"sse": [...], "hold": "g1", "rest": [...]}                  a stream that pauses after
                                                                  "sse" until POST /_release/g1,
                                                                  then sends "rest"
    {"flood": {"head": "...", "chunk": "...", "bytes": N}, "headers": {...}}
                                                                  head, then chunk again and again
                                                                  up to N bytes (null: until the
                                                                  client goes), then "then"
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import time
from collections import defaultdict, deque
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

QUEUES: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
CALLS: dict[str, list[dict[str, Any]]] = defaultdict(list)
DISCONNECTED: list[asyncio.Event] = []  # set, and replaced, at each recorded disconnect
GATES: dict[str, asyncio.Event] = defaultdict(asyncio.Event)  # "hold" streams wait on these


def anthropic_message(model: str, text: str = "Hello from the fake upstream.") -> dict[str, Any]:
    return {
        "id": "msg_fake01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 7},
    }


def sse_event(name: str, data: dict[str, Any]) -> str:
    """One server-sent event, its JSON written compactly as the Anthropic API writes it."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


Block = tuple[dict[str, Any], list[dict[str, Any]]]  # a content block, and its deltas


def anthropic_blocks(
    model: str,
    blocks: list[Block],
    *,
    stop: str = "end_turn",
    tokens: tuple[int, int] = (12, 3),
    message_id: str = "msg_fake01",
    ping: bool = True,
) -> list[str]:
    """An Anthropic stream: message_start (reporting the input of `tokens`), a ping, each
    content block with its deltas, then message_delta (`stop`, the output of `tokens`) and
    message_stop."""
    start = {**anthropic_message(model), "id": message_id, "content": [], "stop_reason": None}
    start["usage"] = {"input_tokens": tokens[0], "output_tokens": 1}
    events = [sse_event("message_start", {"type": "message_start", "message": start})]
    if ping:
        events.append(sse_event("ping", {"type": "ping"}))
    for index, (block, deltas) in enumerate(blocks):
        events.append(sse_event("content_block_start", {"type": "content_block_start",
                                                        "index": index, "content_block": block}))
        for delta in deltas:
            events.append(sse_event("content_block_delta", {"type": "content_block_delta",
                                                            "index": index, "delta": delta}))
        events.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    events += [
        sse_event("message_delta", {"type": "message_delta",
                                    "delta": {"stop_reason": stop, "stop_sequence": None},
                                    "usage": {"output_tokens": tokens[1]}}),
        sse_event("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return events


def anthropic_stream(model: str, deltas: int = 3) -> list[str]:
    """A text answer of `deltas` words, one delta each."""
    words = [{"type": "text_delta", "text": f"word{n} "} for n in range(deltas)]
    return anthropic_blocks(model, [({"type": "text", "text": ""}, words)], tokens=(12, deltas))


def openai_completion(model: str, text: str = "Hello from the fake upstream.") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake01",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    }


def openai_stream(model: str, deltas: int = 3) -> list[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        body = {
            "id": "chatcmpl-fake01",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": f"word{n} "}) for n in range(deltas)]
    events.append(chunk({}, "stop"))
    usage = {
        "id": "chatcmpl-fake01",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": deltas, "total_tokens": 12 + deltas},
    }
    events += [f"data: {json.dumps(usage)}\n\n", "data: [DONE]\n\n"]
    return events


def responses_response(
    model: str,
    text: str = "Hello from the fake upstream.",
    call: tuple[str, str, str] | None = None,
    reasoning: str = "",
) -> dict[str, Any]:
    """A Responses API answer: reasoning (with encrypted content), then text or a call."""
    output: list[dict[str, Any]] = []
    if reasoning:
        summary = [{"type": "summary_text", "text": reasoning}]
        output.append(
            {
                "type": "reasoning",
                "id": "rs_fake01",
                "summary": summary,
                "encrypted_content": "gAAAAfake",
            }
        )
    if call is not None:
        call_id, name, arguments = call
        output.append(
            {
                "type": "function_call",
                "id": "fc_fake01",
                "call_id": call_id,
                "name": name,
                "arguments": arguments,
                "status": "completed",
            }
        )
    else:
        part = {"type": "output_text", "text": text, "annotations": []}
        output.append(
            {
                "type": "message",
                "id": "msg_fake01",
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        )
    return {
        "id": "resp_fake01",
        "object": "response",
        "created_at": 1700000000,
        "status": "completed",
        "model": model,
        "output": output,
        "usage": {
            "input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 19,
        },
    }


def responses_stream(
    model: str,
    deltas: int = 3,
    call: tuple[str, str, str] | None = None,
    reasoning: str = "",
) -> list[str]:
    """A Responses API stream, event for event as OpenAI writes one."""
    sequence = iter(range(1000))

    def event(name: str, data: dict[str, Any]) -> str:
        body = {"type": name, "sequence_number": next(sequence), **data}
        return f"event: {name}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n"

    text = "".join(f"word{n} " for n in range(deltas))
    final = responses_response(model, text, call, reasoning)
    start = {**final, "status": "in_progress", "output": [], "usage": None}
    events = [
        event("response.created", {"response": start}),
        event("response.in_progress", {"response": start}),
    ]
    for index, item in enumerate(final["output"]):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "reasoning":
            events.append(
                event(
                    "response.output_item.added",
                    {"output_index": index, "item": {**item, "summary": []}},
                )
            )
            part: dict[str, Any] = {"type": "summary_text", "text": ""}
            events.append(
                event(
                    "response.reasoning_summary_part.added",
                    {**where, "summary_index": 0, "part": part},
                )
            )
            events.append(
                event(
                    "response.reasoning_summary_text.delta",
                    {**where, "summary_index": 0, "delta": reasoning},
                )
            )
            events.append(
                event(
                    "response.reasoning_summary_text.done",
                    {**where, "summary_index": 0, "text": reasoning},
                )
            )
        elif item["type"] == "function_call":
            events.append(
                event(
                    "response.output_item.added",
                    {
                        "output_index": index,
                        "item": {**item, "arguments": "", "status": "in_progress"},
                    },
                )
            )
            events.append(
                event(
                    "response.function_call_arguments.delta", {**where, "delta": item["arguments"]}
                )
            )
            events.append(
                event(
                    "response.function_call_arguments.done",
                    {**where, "arguments": item["arguments"]},
                )
            )
        else:
            events.append(
                event(
                    "response.output_item.added",
                    {
                        "output_index": index,
                        "item": {**item, "content": [], "status": "in_progress"},
                    },
                )
            )
            part = {"type": "output_text", "text": "", "annotations": []}
            events.append(
                event("response.content_part.added", {**where, "content_index": 0, "part": part})
            )
            for n in range(deltas):
                events.append(
                    event(
                        "response.output_text.delta",
                        {**where, "content_index": 0, "delta": f"word{n} ", "logprobs": []},
                    )
                )
            events.append(
                event(
                    "response.output_text.done",
                    {**where, "content_index": 0, "text": text, "logprobs": []},
                )
            )
            events.append(
                event(
                    "response.content_part.done",
                    {**where, "content_index": 0, "part": {**part, "text": text}},
                )
            )
        events.append(event("response.output_item.done", {"output_index": index, "item": item}))
    events.append(event("response.completed", {"response": final}))
    return events


def default_answer(path: str, request: dict[str, Any]) -> dict[str, Any]:
    model = str(request.get("model", "unknown"))
    if path.endswith("/count_tokens"):
        return {"status": 200, "json": {"input_tokens": 42}}
    if path.endswith("/chat/completions"):
        if request.get("stream"):
            return {"sse": openai_stream(model)}
        return {"status": 200, "json": openai_completion(model)}
    if path.endswith("/responses"):
        if request.get("stream"):
            return {"sse": responses_stream(model)}
        return {"status": 200, "json": responses_response(model)}
    if request.get("stream"):
        return {"sse": anthropic_stream(model)}
    return {"status": 200, "json": anthropic_message(model)}


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def wait_disconnect(receive: Any, call: dict[str, Any]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            call.setdefault("disconnected_at", time.monotonic())  # the protocol may have noted it
            DISCONNECTED[0].set()
            DISCONNECTED[0] = asyncio.Event()
            return


async def accept_lifespan(receive: Any, send: Any) -> None:
    """Answer lifespan startup and shutdown; nothing to set up."""
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


def _gone(prefix: str, count: int | None) -> bool:
    calls = CALLS[prefix]
    if count is None:
        return bool(calls) and "disconnected_at" in calls[-1]
    return sum("disconnected_at" in call for call in calls) >= count


async def until_disconnected(prefix: str, count: int | None = None) -> None:
    deadline = time.monotonic() + 5
    while not _gone(prefix, count):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(DISCONNECTED[0].wait(), remaining)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            await accept_lifespan(receive, send)
        return
    path: str = scope["path"]
    body = await read_body(receive)
    if path.startswith("/_script/"):
        QUEUES["/" + path.removeprefix("/_script/")].extend(json.loads(body))
        await respond(send, 200, {}, b"{}")
        return
    if path.startswith("/_release/"):
        GATES[path.removeprefix("/_release/")].set()
        await respond(send, 200, {}, b"{}")
        return
    if path.startswith("/_clear/"):
        QUEUES["/" + path.removeprefix("/_clear/")].clear()
        await respond(send, 200, {}, b"{}")
        return
    if path.startswith("/_calls/"):
        prefix = "/" + path.removeprefix("/_calls/")
        await respond(send, 200, {}, json.dumps(CALLS[prefix]).encode())
        return
    if path.startswith("/_disconnected/"):
        prefix = "/" + path.removeprefix("/_disconnected/")
        count = scope["query_string"].decode().removeprefix("count=")
        await until_disconnected(prefix, int(count) if count.isdigit() else None)
        await respond(send, 200, {}, json.dumps(CALLS[prefix]).encode())
        return
    prefix = "/" + path.split("/")[1]
    call: dict[str, Any] = {
        "method": scope["method"],
        "path": path.removeprefix(prefix),
        "query": scope["query_string"].decode(),
        "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        "body": body.decode("utf-8", "replace"),
        "started_at": time.monotonic(),
    }
    CALLS[prefix].append(call)
    scope[CALL] = call
    try:
        request = json.loads(body)
    except ValueError:
        request = {}
    queue = QUEUES[prefix]
    answer = queue.popleft() if queue else default_answer(path, request)
    if answer.get("deepseek_thinking") and not reasoning_passed_back(request):
        answer = DEEPSEEK_MISSING_REASONING
    await play(answer, send, receive, call)


# DeepSeek's thinking mode on a tool-call turn whose reasoning_content did not come back.
DEEPSEEK_MISSING_REASONING = {
    "status": 400,
    "json": {
        "error": {
            "message": "The reasoning_content in the thinking mode must be passed back to the API.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request_error",
        }
    },
}


def reasoning_passed_back(request: dict[str, Any]) -> bool:
    """Whether every assistant tool-call turn carries its reasoning_content, as DeepSeek's
    thinking mode requires."""
    return all(
        message.get("reasoning_content")
        for message in request.get("messages") or ()
        if message.get("role") == "assistant" and message.get("tool_calls")
    )


async def play(answer: dict[str, Any], send: Any, receive: Any, call: dict[str, Any]) -> None:
    if answer.get("hang"):
        await wait_disconnect(receive, call)
        return
    headers = dict(answer.get("headers", {}))
    if "flood" in answer:
        await flood(answer, headers, send, receive, call)
        return
    if "sse" in answer:
        headers.setdefault("content-type", "text/event-stream")
        await start(send, answer.get("status", 200), headers)
        for event in answer["sse"]:
            await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
        if "hold" in answer:
            await GATES[answer["hold"]].wait()
            for event in answer.get("rest", []):
                await send(
                    {"type": "http.response.body", "body": event.encode(), "more_body": True}
                )
        then = answer.get("then")
        if then == "hang":
            await wait_disconnect(receive, call)
            return
        if then == "break":
            raise ConnectionResetError("the fake upstream breaks the stream")
        await send({"type": "http.response.body", "body": b""})
        return
    if "json" in answer:
        body = json.dumps(answer["json"]).encode()
        headers.setdefault("content-type", "application/json")
    else:
        body = answer.get("body", "").encode()
    if answer.get("gzip"):  # as a provider that compresses whatever it was asked for
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    await respond(send, answer.get("status", 200), headers, body)


async def flood(
    answer: dict[str, Any], headers: dict[str, str], send: Any, receive: Any, call: dict[str, Any]
) -> None:
    """A body that goes on and on: the head, then one chunk repeated (a giant or endless
    answer, an event that never ends)."""
    spec = answer["flood"]
    headers.setdefault("content-type", "text/event-stream")
    await start(send, answer.get("status", 200), headers)
    await send({"type": "http.response.body", "body": spec["head"].encode(), "more_body": True})
    chunk = spec["chunk"].encode()
    left = spec.get("bytes")
    gone = asyncio.ensure_future(wait_disconnect(receive, call))
    try:
        while (left is None or left > 0) and not gone.done():
            piece = chunk if left is None else chunk[:left]
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            if left is not None:
                left -= len(piece)
            await asyncio.sleep(0)  # let a disconnect be heard
    finally:
        if not gone.done():
            gone.cancel()
    if answer.get("then") == "break":
        raise ConnectionResetError("the fake upstream breaks the stream")
    if not gone.done():
        await send({"type": "http.response.body", "body": b""})


async def start(send: Any, status: int, headers: dict[str, str]) -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def respond(send: Any, status: int, headers: dict[str, str], body: bytes) -> None:
    headers = {"content-type": "application/json", **headers}
    await start(send, status, headers)
    await send({"type": "http.response.body", "body": body})


CALL = "fake.call"  # scope key: the call record, for the protocol to note its disconnect


class NotingProtocol(HttpToolsProtocol):
    """Notes the moment a connection is lost in the I/O callback itself, before any task
    hears of it: the time the gateway closed it, as near as this process can tell."""

    def connection_lost(self, exc: Exception | None) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            call = self.cycle.scope.get(CALL)
            if isinstance(call, dict):
                call.setdefault("disconnected_at", time.monotonic())
        super().connection_lost(exc)


def main() -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, log_level="critical", lifespan="off", http=NotingProtocol)

    async def serve() -> None:
        DISCONNECTED.append(asyncio.Event())
        await uvicorn.Server(config).serve(sockets=[sock])

    asyncio.run(serve())


if __name__ == "__main__":
    main()
