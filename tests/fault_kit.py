"""What the fault suite (tests/e2e/test_faults.py) shares: the two wires and a TCP resetter
(the request log's lines: conftest.request_log).

A `Wire` is one client protocol served by a provider of the same protocol: how to ask, how
to configure the provider, how to script the fake provider's answers, and how to read the
answer the client got — failing the test when a stream is not well formed and complete.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Any

import httpx

from tests.fake_upstream import (
    anthropic_message,
    anthropic_stream,
    openai_completion,
    openai_stream,
)

MODEL = "claude-sonnet-4-6"


def words(count: int, start: int = 0) -> str:
    """The text of the fake provider's stream of `count` deltas."""
    return "".join(f"word{n} " for n in range(start, start + count))


@dataclass(frozen=True)
class Wire:
    name: str  # the protocol of the client and of both providers

    @property
    def path(self) -> str:
        return "/v1/messages" if self.name == "anthropic" else "/v1/chat/completions"

    def body(self, stream: bool, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": MODEL,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "count for me"}],
            **extra,
        }
        if stream:
            body["stream"] = True
        return body

    def provider(self, base_url: str) -> dict[str, Any]:
        suffix = "" if self.name == "anthropic" else "/v1"
        return {"protocol": self.name, "base_url": base_url + suffix, "auth": "none"}

    def stream(self, deltas: int = 3) -> list[str]:
        """The fake provider's complete stream of `deltas` words."""
        if self.name == "anthropic":
            return anthropic_stream(MODEL, deltas)
        return openai_stream(MODEL, deltas)

    def whole(self) -> bytes:
        """The fake provider's healthy non-streamed answer."""
        if self.name == "anthropic":
            return json.dumps(anthropic_message(MODEL)).encode()
        return json.dumps(openai_completion(MODEL)).encode()

    def error(self, status: int, kind: str = "api_error", message: str = "boom") -> str:
        if self.name == "anthropic":
            return json.dumps({"type": "error", "error": {"type": kind, "message": message}})
        return json.dumps({"error": {"type": kind, "message": message, "code": kind}})

    def text(self, response: httpx.Response, stream: bool) -> str:
        """The answer's text; fails unless it is a complete, well-formed answer."""
        assert response.status_code == 200, response.text
        if not stream:
            payload = response.json()
            if self.name == "anthropic":
                return "".join(b.get("text", "") for b in payload["content"])
            content: str = payload["choices"][0]["message"]["content"]
            return content
        events = [e for e in response.text.split("\n\n") if e.strip()]
        if self.name == "anthropic":
            return _anthropic_text(events)
        return _openai_text(events)

    def stop_reason(self, response: httpx.Response, stream: bool) -> str | None:
        if not stream:
            payload = response.json()
            if self.name == "anthropic":
                return str(payload["stop_reason"])
            return str(payload["choices"][0]["finish_reason"])
        found = None
        for event in response.text.split("\n\n"):
            for line in event.splitlines():
                if line.startswith("data: {"):
                    data = json.loads(line[6:])
                    found = _stop_of(data) or found
        return found


def _stop_of(data: dict[str, Any]) -> str | None:
    if data.get("type") == "message_delta":
        reason = data["delta"].get("stop_reason")
        return str(reason) if reason else None
    for choice in data.get("choices") or []:
        if choice.get("finish_reason"):
            return str(choice["finish_reason"])
    return None


def _anthropic_text(events: list[str]) -> str:
    names = [e.split("\n")[0].removeprefix("event: ") for e in events]
    assert "error" not in names, events[-1]
    assert names[0] == "message_start" and names.count("message_start") == 1, names
    assert names[-1] == "message_stop", names
    text = []
    for event in events:
        data = json.loads(event.split("data: ", 1)[1])
        delta = data.get("delta", {})
        if data["type"] == "content_block_delta" and delta.get("type") == "text_delta":
            text.append(delta["text"])
    return "".join(text)


def _openai_text(events: list[str]) -> str:
    assert events[-1] == "data: [DONE]", events[-1]
    assert events.count("data: [DONE]") == 1
    text = []
    for event in events[:-1]:
        data = json.loads(event.removeprefix("data: "))
        assert "error" not in data, data
        for choice in data["choices"]:
            text.append(choice["delta"].get("content") or "")
    return "".join(text)


WIRES = [Wire("anthropic"), Wire("openai")]


class Resetter:
    """A loopback server that reads each request, then resets the connection (TCP RST)
    for the first `resets` connections and answers with `healthy` after that."""

    def __init__(self, resets: int, healthy: bytes) -> None:
        self.resets, self.healthy = resets, healthy
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                _read_request(conn)
                self.connections += 1
                if self.connections <= self.resets:
                    # Linger 0: close() sends RST, as a crashed peer or a middlebox would.
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    conn.sendall(self.healthy)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.sock.close()
        self.thread.join(timeout=5)


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


def http_answer(content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body
