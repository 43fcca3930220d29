"""The benchmark's own HTTP/1.1 load generator for what wrk cannot measure, as its own process.

    python bench/loadgen.py ttfb  URL BODY_FILE --requests 2000
    python bench/loadgen.py hold  URL BODY_FILE --streams 1000 --pids 123,456
    python bench/loadgen.py count URL BODY_FILE --requests 2000 --connections 8

- `ttfb`: one keep-alive connection, requests one after another; per request the time to the
  first response byte, to the first content event (`content_block_delta` or a `"content"`
  chunk) and to the end. Prints JSON with p50/p99 of each, in milliseconds.
- `hold`: opens `--streams` streams at once, each on its own connection; once every stream
  has its first content, samples the RSS of `--pids` (and their children), then reads every
  stream to its end. Prints JSON: streams, errors, seconds to open them all, RSS in MB.
- `count`: exactly `--requests` requests over `--connections` keep-alive connections, each
  connection one request after another: a fixed amount of work, for figures counted rather
  than timed (bench/instructions.py). Prints JSON: requests, seconds.

Raw asyncio streams on uvloop, no HTTP library: the client must cost far less than what it
measures. Loopback only; it never retries and it stops by itself (`--timeout`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Any key serves the bench upstream; LiteLLM's proxy takes it as its master key.
KEY = b"sk-bench-00000000000000000000000000000000"
CONTENT_MARKERS = (b"content_block_delta", b'"content":"w')


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, url: str, body: bytes) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.request = (
            b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
            b"anthropic-version: 2023-06-01\r\nx-api-key: %s\r\n"
            b"content-length: %d\r\n\r\n%s"
            % (parts.path.encode(), parts.netloc.encode(), KEY, len(body), body)
        )

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def exchange(self, first_content: asyncio.Event | None = None) -> tuple[float, ...]:
        """(first byte, first content, end) in seconds from the write; raises on a non-200."""
        reader = self.reader
        start = time.perf_counter()
        self.writer.write(self.request)
        head = await reader.readexactly(1)
        first_byte = time.perf_counter() - start
        head += await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
        lowered = head.lower()
        content_at = 0.0
        body = bytearray()
        if b"transfer-encoding: chunked" in lowered:
            while True:
                size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if not content_at and any(m in chunk for m in CONTENT_MARKERS):
                    content_at = time.perf_counter() - start
                    if first_content is not None:
                        first_content.set()
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            at = lowered.index(b"content-length:") + 15
            length = int(lowered[at : lowered.index(b"\r\n", at)])
            body += await reader.readexactly(length)
            content_at = time.perf_counter() - start
        end = time.perf_counter() - start
        if b'"error"' in body[-400:] or (b"event:" in body and b"message_stop" not in body):
            raise RuntimeError("the stream did not end cleanly")
        return first_byte, content_at or end, end

    def close(self) -> None:
        self.writer.close()


async def ttfb(url: str, body: bytes, requests: int) -> dict[str, float]:
    client = Client(url, body)
    await client.connect()
    for _ in range(min(200, requests // 5)):  # warm up both ends
        await client.exchange()
    samples = [await client.exchange() for _ in range(requests)]
    client.close()
    figures: dict[str, float] = {"requests": requests}
    for index, name in enumerate(("first_byte", "first_content", "total")):
        values = [sample[index] * 1000 for sample in samples]
        figures[f"{name}_p50_ms"] = statistics.median(values)
        figures[f"{name}_p99_ms"] = percentile(values, 0.99)
    return figures


async def count(url: str, body: bytes, requests: int, connections: int) -> dict[str, float]:
    clients = [Client(url, body) for _ in range(connections)]
    await asyncio.gather(*(client.connect() for client in clients))
    shares = [requests // connections + (n < requests % connections) for n in range(connections)]

    async def run(client: Client, share: int) -> None:
        for _ in range(share):
            await client.exchange()

    started = time.perf_counter()
    await asyncio.gather(*(run(c, n) for c, n in zip(clients, shares, strict=True)))
    seconds = time.perf_counter() - started
    for client in clients:
        client.close()
    return {"requests": requests, "seconds": seconds}


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in _with_children(pids):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _with_children(pids: list[int]) -> list[int]:
    found, queue = [], list(pids)
    while queue:
        pid = queue.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            queue.extend(int(child) for child in task.read_text().split())
    return found


async def hold(url: str, body: bytes, streams: int, pids: list[int]) -> dict[str, float]:
    clients = [Client(url, body) for _ in range(streams)]
    started = time.perf_counter()
    await asyncio.gather(*(client.connect() for client in clients))
    opened = [asyncio.Event() for _ in clients]
    tasks = [
        asyncio.ensure_future(client.exchange(event))
        for client, event in zip(clients, opened, strict=True)
    ]
    await asyncio.gather(*(event.wait() for event in opened))
    open_seconds = time.perf_counter() - started
    still_open = sum(not task.done() for task in tasks)
    rss = rss_mb(pids) if pids else 0.0
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    for client in clients:
        client.close()
    result: dict[str, Any] = {
        "streams": streams,
        "open_at_sample": still_open,
        "errors": len(errors),
        "first_error": str(errors[0]) if errors else "",
        "open_seconds": open_seconds,
        "rss_mb": rss,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["ttfb", "hold", "count"])
    parser.add_argument("url")
    parser.add_argument("body", type=Path)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--pids", default="")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    body = args.body.read_bytes()
    if args.mode == "ttfb":
        work = ttfb(args.url, body, args.requests)
    elif args.mode == "count":
        work = count(args.url, body, args.requests, args.connections)
    else:
        pids = [int(p) for p in args.pids.split(",") if p]
        work = hold(args.url, body, args.streams, pids)

    async def bounded() -> dict[str, float]:
        return await asyncio.wait_for(work, args.timeout)

    try:
        import uvloop
    except ImportError:
        print("uvloop is not installed: the load generator runs on asyncio", file=sys.stderr)
        result = asyncio.run(bounded())
    else:
        result = uvloop.run(bounded())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
