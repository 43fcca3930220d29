"""Micro-benchmark: the SSE framer's cost grows with the bytes fed, never with their square.

    python bench/framer.py

It frames an event that never ends (what a runaway upstream sends) in 64 KiB chunks, the
transport's read size, up to 4, 8 and 16 MiB, and a normal 20-delta stream, and prints the
time per MiB of each. Linear framing keeps the per-MiB time flat as the event grows; the
16 MiB run ends with the framer refusing the event (EventTooLarge), as the relay sees it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from routatic_asgi.sse import EventTooLarge, SSEFramer
from tests.fake_upstream import anthropic_stream

MIB = 1024 * 1024
CHUNK = 64 * 1024


def unterminated(mib: int) -> float:
    framer = SSEFramer()
    chunk = b"x" * CHUNK
    start = time.perf_counter()
    framer.feed(b"event: content_block_delta\ndata: ")
    try:
        for _ in range(mib * MIB // CHUNK):
            framer.feed(chunk)
    except EventTooLarge:
        pass
    return time.perf_counter() - start


def normal(mib: int) -> float:
    stream = "".join(anthropic_stream("claude-x", deltas=20)).encode()
    wire = stream * (mib * MIB // len(stream))
    chunks = [wire[i : i + CHUNK] for i in range(0, len(wire), CHUNK)]
    framer = SSEFramer()
    start = time.perf_counter()
    for chunk in chunks:
        framer.feed(chunk)
    return time.perf_counter() - start


def main() -> None:
    for mib in (4, 8, 16):
        seconds = unterminated(mib)
        print(f"unterminated event, {mib:2d} MiB: {seconds * 1000:8.1f} ms  "
              f"({seconds * 1000 / mib:.2f} ms/MiB)")  # fmt: skip
    seconds = normal(16)
    print(
        f"20-delta streams,   16 MiB: {seconds * 1000:8.1f} ms  ({seconds * 1000 / 16:.2f} ms/MiB)"
    )


if __name__ == "__main__":
    main()
