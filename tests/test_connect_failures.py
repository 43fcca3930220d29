"""A target the gateway cannot reach is named with its host, port and why: refused, DNS, TLS
or timeout. The metric label stays the bounded reason; the words go to the message and the log.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from routatic_asgi.classify import Outcome, Reason, classify_exception
from routatic_asgi.http11 import Http11Transport
from tests.conftest import closed_port_url

REQUEST = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": "hi"}],
}


async def _failure(url: str, connect: float = 5.0) -> Outcome:
    timeout = httpx.Timeout(5.0, connect=connect)
    async with httpx.AsyncClient(transport=Http11Transport(), timeout=timeout) as client:
        with pytest.raises(httpx.HTTPError) as caught:
            await client.post(url + "/v1/messages", content=b"{}")
    assert isinstance(caught.value, Exception)
    return classify_exception(caught.value)


async def _serve(handler: Any) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_refused_connection_says_refused() -> None:
    outcome = asyncio.run(_failure(closed_port_url()))
    assert outcome.reason == Reason.CONNECT_ERROR
    assert outcome.detail == "connection refused"


def test_an_unresolvable_name_says_dns() -> None:
    outcome = asyncio.run(_failure("http://nonexistent.invalid"))
    assert outcome.reason == Reason.CONNECT_ERROR
    assert outcome.detail is not None and "DNS" in outcome.detail


def test_a_peer_that_does_not_speak_tls_says_tls() -> None:
    async def main() -> Outcome:
        async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        server, port = await _serve(plain)
        async with server:
            return await _failure(f"https://127.0.0.1:{port}")

    outcome = asyncio.run(main())
    assert outcome.reason == Reason.TLS_ERROR
    assert outcome.detail is not None and outcome.detail.startswith("TLS")


def test_a_peer_that_never_answers_the_handshake_says_timed_out() -> None:
    async def main() -> Outcome:
        release = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await release.wait()  # takes the connection and never answers the TLS hello
            writer.close()
            await writer.wait_closed()

        server, port = await _serve(silent)
        async with server:
            try:
                return await _failure(f"https://127.0.0.1:{port}", connect=0.2)
            finally:
                release.set()
                await asyncio.sleep(0)  # let the handler close its side

    outcome = asyncio.run(main())
    assert outcome.reason == Reason.CONNECT_TIMEOUT
    assert outcome.detail == "timed out"
