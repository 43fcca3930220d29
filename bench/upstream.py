"""A fast local provider for the benchmark, run as its own process.

    python bench/upstream.py [--port 0] [--hold 3.0]

A raw asyncio protocol on uvloop speaking just enough HTTP/1.1 (keep-alive, content-length
requests) to answer canned Anthropic and OpenAI responses as fast as Python can:

- `POST .../v1/messages`: a message, or with `"stream": true` a 20-delta SSE stream (chunked).
- `POST .../chat/completions`: a chat completion, or a 20-chunk stream ending in `[DONE]`.
- a path starting `/hold/`: the stream sends its first content, then waits `--hold` seconds
  before the rest (to hold many streams open at once).
- `POST /v1/traces`: an OTLP/HTTP trace export, taken and dropped.

It prints its port on stdout once listening. It never parses JSON and never logs a request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from typing import Any

DELTAS = 20
MODEL = "claude-bench-1"


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _message(content: list[Any], stop: str | None, output: int) -> dict[str, Any]:
    return {
        "id": "msg_bench01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": output},
    }


def anthropic_events() -> tuple[list[bytes], list[bytes]]:
    """The stream as (head up to the first delta, the rest)."""
    head = [
        _event("message_start", {"type": "message_start", "message": _message([], None, 1)}),
        _event("ping", {"type": "ping"}),
        _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    deltas = [
        _event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": f"word{n} "},
            },
        )
        for n in range(DELTAS)
    ]
    tail = [
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": DELTAS},
            },
        ),
        _event("message_stop", {"type": "message_stop"}),
    ]
    return [*head, deltas[0]], [*deltas[1:], *tail]


def openai_events() -> tuple[list[bytes], list[bytes]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {
            "id": "chatcmpl-bench01",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

    head = [chunk({"role": "assistant", "content": ""}), chunk({"content": "word0 "})]
    rest = [chunk({"content": f"word{n} "}) for n in range(1, DELTAS)]
    usage = json.dumps(
        {
            "id": "chatcmpl-bench01",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": MODEL,
            "choices": [],
            "usage": {"prompt_tokens": 25, "completion_tokens": DELTAS, "total_tokens": 45},
        },
        separators=(",", ":"),
    ).encode()
    rest += [chunk({}, "stop"), b"data: " + usage + b"\n\n", b"data: [DONE]\n\n"]
    return head, rest


def _chunked(events: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)


def _plain(body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nrequest-id: req_bench01\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )


_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\nrequest-id: req_bench01\r\ntransfer-encoding: chunked\r\n\r\n"
)
_LAST_CHUNK = b"0\r\n\r\n"

ANTHROPIC_JSON = _plain(
    json.dumps(
        _message([{"type": "text", "text": "Hello from the bench upstream."}], "end_turn", 7),
        separators=(",", ":"),
    ).encode()
)
OPENAI_JSON = _plain(
    json.dumps(
        {
            "id": "chatcmpl-bench01",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 25, "completion_tokens": 7, "total_tokens": 32},
        },
        separators=(",", ":"),
    ).encode()
)
_A_HEAD, _A_REST = anthropic_events()
_O_HEAD, _O_REST = openai_events()
ANTHROPIC_STREAM = (_SSE_HEAD + _chunked(_A_HEAD), _chunked(_A_REST) + _LAST_CHUNK)
OPENAI_STREAM = (_SSE_HEAD + _chunked(_O_HEAD), _chunked(_O_REST) + _LAST_CHUNK)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
# An OTLP/HTTP trace export accepted (an empty ExportTraceServiceResponse).
TRACES_TAKEN = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
)


class Provider(asyncio.Protocol):
    hold = 3.0

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[: end + 2]).lower()
            at = head.find(b"\r\ncontent-length:")
            length = int(head[at + 17 : head.find(b"\r\n", at + 2)]) if at >= 0 else 0
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            self.answer(head[: head.find(b"\r\n")], body)

    def answer(self, line: bytes, body: bytes) -> None:
        assert self.transport is not None
        path = line.split(b" ", 2)[1]
        stream = b'"stream":true' in body or b'"stream": true' in body
        if path.endswith(b"/v1/messages"):
            parts = ANTHROPIC_STREAM if stream else (ANTHROPIC_JSON, b"")
        elif path.endswith(b"/chat/completions"):
            parts = OPENAI_STREAM if stream else (OPENAI_JSON, b"")
        elif path == b"/v1/traces":
            self.transport.write(TRACES_TAKEN)
            return
        else:
            self.transport.write(NOT_FOUND)
            return
        if stream and path.startswith(b"/hold/"):
            self.transport.write(parts[0])
            asyncio.get_running_loop().call_later(self.hold, self._finish, parts[1])
            return
        self.transport.write(parts[0] + parts[1])

    def _finish(self, rest: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(rest)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Provider, "127.0.0.1", port, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hold", type=float, default=3.0)
    args = parser.parse_args()
    Provider.hold = args.hold
    try:
        import uvloop
    except ImportError:
        print("uvloop is not installed: the upstream runs on asyncio", file=sys.stderr)
        asyncio.run(serve(args.port))
        return
    uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
