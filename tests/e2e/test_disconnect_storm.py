"""Many clients hanging up at once: each one's upstream connection closes within 100 ms.

300 streams are opened through `routatic-asgi serve`, each committed (its first event relayed) and
then held open by an upstream that never ends; the clients all hang up together. The fake
upstream notes when it saw each of its connections close, on the same monotonic clock, and is
not asked for them until all have closed (answering a poll would hold its own loop up).

Each hang-up closes its upstream socket in the server's I/O callback for the lost connection
(connections.py), with a shutdown that reaches the wire at once (http11_connection.py): the
closings do not wait for the requests of earlier hang-ups to unwind.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import FakeUpstream, one_provider
from tests.e2e.serving import serve
from tests.fake_upstream import anthropic_stream

STREAMS = 300
WITHIN = 0.1  # seconds from a client's hang-up to its upstream connection closing

# A latency bound means nothing on a machine whose cores are all taken by something else.
pytestmark = pytest.mark.skipif(
    os.getloadavg()[0] > (os.cpu_count() or 1),
    reason=f"the machine is busy (load average {os.getloadavg()[0]:.1f} on "
    f"{os.cpu_count()} cores): 100 ms latencies cannot be measured",
)


def open_stream(host: str, port: int, body: bytes) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def committed(sock: socket.socket) -> None:
    """Read until the stream's first content event has arrived: the answer has committed."""
    seen = b""
    while b"content_block_start" not in seen:
        part = sock.recv(65536)
        assert part, "the gateway closed the stream"
        seen += part
    assert seen.startswith(b"HTTP/1.1 200")


def test_300_clients_hanging_up_at_once_close_their_upstream_connections(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    prefix = upstream.provider()
    config = one_provider(tmp_path, upstream.url(prefix))
    events = anthropic_stream("claude-x", deltas=1)[:4]
    upstream.script(prefix, *[{"sse": events, "then": "hang"} for _ in range(STREAMS)])
    body = json.dumps(
        {"model": "claude-x", "max_tokens": 8, "stream": True,
         "messages": [{"role": "user", "content": "hi"}]}
    ).encode()  # fmt: skip
    with serve("--config", str(config)) as server:  # a process of its own: the clients' hang-ups
        # are not held up waiting for the server's thread to let go of the interpreter
        address = urlsplit(server.url)
        assert address.hostname is not None and address.port is not None
        streams = [open_stream(address.hostname, address.port, body) for _ in range(STREAMS)]
        try:
            for sock in streams:
                committed(sock)
        finally:
            hung_up = []
            for sock in streams:
                sock.close()
                hung_up.append(time.monotonic())
        calls = upstream.disconnected(prefix, count=STREAMS)
    assert len(calls) == STREAMS
    assert all("disconnected_at" in call for call in calls), "some were never closed"
    # Which upstream call served which client is not known: the last hang-up bounds them all,
    # and each closing follows its own hang-up.
    closed = sorted(call["disconnected_at"] for call in calls)
    lags = [close - hang for close, hang in zip(closed, hung_up, strict=True)]
    median, slowest = statistics.median(lags) * 1000, max(lags) * 1000
    assert max(lags) < WITHIN, f"closings: median {median:.0f} ms, slowest {slowest:.0f} ms"
