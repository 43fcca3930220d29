"""Micro-benchmark of upstream HTTP clients: CPU per request against the bench upstream.

    python bench/clients.py URL [--requests 6400] [--concurrency 32]

URL is a running bench/upstream.py (e.g. http://127.0.0.1:PORT). Each client sends the same
unstreamed POST from `--concurrency` tasks and reads the body; the figure is this process's
CPU time per request (the upstream runs elsewhere), best of three rounds. aiohttp is tried
only when installed. Prints one line per client.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from routatic_asgi.http11 import Http11Transport

BODY = b'{"model":"claude-bench-1","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
RAW_HEADERS = [(k.encode(), v.encode()) for k, v in HEADERS.items()]

Send = Callable[[], Awaitable[bytes]]


async def measure(send: Send, requests: int, concurrency: int) -> tuple[float, float]:
    """(CPU microseconds per request, requests per second), best of three rounds."""

    async def worker(count: int) -> None:
        for _ in range(count):
            assert await send()

    await asyncio.gather(*(worker(20) for _ in range(concurrency)))
    best = (float("inf"), 0.0)
    for _ in range(3):
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        best = min(best, (cpu * 1e6 / requests, requests / wall))
    return best


def httpx_client(url: str, client: httpx.AsyncClient) -> Send:
    async def send() -> bytes:
        request = client.build_request("POST", url, headers=HEADERS, content=BODY)
        response = await client.send(request, stream=True)
        try:
            return await response.aread()
        finally:
            await response.aclose()

    return send


def direct(url: str, transport: Http11Transport) -> Send:
    parsed = httpx.URL(url)
    timeouts = httpx.Timeout(10).as_dict()

    async def send() -> bytes:
        response = await transport.post(parsed, RAW_HEADERS, BODY, timeouts)
        try:
            return await response.aread()
        finally:
            await response.aclose()

    return send


async def run(base: str, requests: int, concurrency: int) -> None:
    url = base.rstrip("/") + "/v1/messages"
    print(f"{'client':<52} {'CPU µs/req':>11} {'req/s':>8}")
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("httpx.AsyncClient, httpcore pool (defaults)", lambda: httpx.AsyncClient()),
        (
            "httpx.AsyncClient, httpcore pool (256 keep-alive)",
            lambda: httpx.AsyncClient(
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=256)
            ),
        ),
        (
            "httpx.AsyncClient, httpcore pool (32 connections)",
            lambda: httpx.AsyncClient(limits=httpx.Limits(max_connections=32)),
        ),
        (
            "httpx.AsyncClient + Http11Transport",
            lambda: httpx.AsyncClient(transport=Http11Transport()),
        ),
    ]
    for name, make in cases:
        async with make() as client:
            cpu, rate = await measure(httpx_client(url, client), requests, concurrency)
        print(f"{name:<52} {cpu:>11.1f} {rate:>8.0f}")
    transport = Http11Transport()
    cpu, rate = await measure(direct(url, transport), requests, concurrency)
    await transport.aclose()
    print(f"{'Http11Transport.post (what the relay uses)':<52} {cpu:>11.1f} {rate:>8.0f}")
    await aiohttp_case(url, requests, concurrency)


async def aiohttp_case(url: str, requests: int, concurrency: int) -> None:
    try:
        import aiohttp  # type: ignore[import-not-found]
    except ImportError:
        print("aiohttp: not installed, skipped")
        return
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def send() -> bytes:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                return bytes(await response.read())

        cpu, rate = await measure(send, requests, concurrency)
    print(f"{'aiohttp.ClientSession':<52} {cpu:>11.1f} {rate:>8.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=6400)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(args.url, args.requests, args.concurrency))
    else:
        uvloop.run(run(args.url, args.requests, args.concurrency))
