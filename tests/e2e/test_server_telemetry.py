"""The server's telemetry: OTLP export from OTEL_* variables, the request log on stdout, and
metric totals that stay right under `serve --workers N`."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from routatic_asgi import build_app
from routatic_asgi.telemetry.otel import tracer_provider_from_environment
from tests.conftest import FakeUpstream, gateway_config, one_provider
from tests.e2e.serving import serve, until

REQUEST = {"model": "claude-x", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}



@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"},
    ],
)
def test_no_tracing_unless_an_otlp_endpoint_is_set(env: dict[str, str]) -> None:
    assert tracer_provider_from_environment(env) is None


@contextmanager
def collector() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback OTLP/HTTP receiver that keeps every POST body."""
    received: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.anyio
async def test_spans_are_exported_over_otlp_when_the_endpoint_is_set(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = upstream.provider()
    config = gateway_config(
        {"p": {"protocol": "anthropic", "base_url": upstream.url(prefix), "auth": "none"}},
        [{"match": "*", "chain": ["p/{model}"]}],
    )
    with collector() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        provider = tracer_provider_from_environment()
        assert provider is not None
        app = build_app(config, tracer_provider=provider)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://gateway"
        ) as client:
            assert (await client.post("/v1/messages", json=REQUEST)).status_code == 200
        await app.aclose()
        assert provider.force_flush(10_000)
        provider.shutdown()
    exported = b"".join(received)
    for expected in (b"gen_ai.request.model", b"claude-x", b"routatic-asgi", b"gen_ai.usage"):
        assert expected in exported


def _total(scrape: str) -> float:
    found = re.findall(
        r'^routatic_requests_total\{[^}]*outcome="success"[^}]*\} (\S+)$', scrape, re.M
    )
    return sum(float(value) for value in found)


def _settled(url: str, total: int) -> None:
    """A request is recorded just after its last byte: wait (briefly) until every one is."""
    until(lambda: _total(httpx.get(f"{url}/metrics").text) == total, timeout=10,
          what=f"the totals to reach {total}")  # fmt: skip


def test_totals_stay_right_under_several_workers(upstream: FakeUpstream, tmp_path: Path) -> None:
    prefix = upstream.provider()
    config = one_provider(tmp_path, upstream.url(prefix), "anthropic/{model}")
    environment = {"TMPDIR": str(tmp_path)}  # where serve makes its metrics directory
    with serve("--config", str(config), "--workers", "2", env=environment) as server:
        url = server.url
        for _ in range(24):  # a new connection each: the workers share them out
            assert httpx.post(f"{url}/v1/messages", json=REQUEST).status_code == 200
        _settled(url, 24)
        scrapes = [httpx.get(f"{url}/metrics").text for _ in range(6)]
        [directory] = tmp_path.glob("routatic-metrics-*")
        # each worker writes files of its own: the totals are sums over processes
        writers = {path.stem.rsplit("_", 1)[-1] for path in directory.glob("counter_*.db")}
    assert [_total(scrape) for scrape in scrapes] == [24.0] * 6
    assert len(upstream.calls(prefix)) == 24
    assert len(writers) == 2
    assert not directory.exists()  # removed when the server stops


def test_serve_logs_one_json_line_per_request(upstream: FakeUpstream, tmp_path: Path) -> None:
    prefix = upstream.provider()
    config = one_provider(tmp_path, upstream.url(prefix), "anthropic/{model}")
    with serve("--config", str(config)) as server:
        response = httpx.post(
            f"{server.url}/v1/messages", json=REQUEST, headers={"x-api-key": "sk-x1"}
        )
        assert response.status_code == 200
        line = json.loads(until(lambda: server.printed, what="the request log line")[0])
    assert line["model"] == "claude-x" and line["provider"] == "anthropic"
    assert line["tokens"]["input"] == 12 and line["stop_reason"] == "end_turn"


def test_one_worker_in_multiprocess_mode_makes_its_directory(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    prefix = upstream.provider()
    config = one_provider(tmp_path, upstream.url(prefix), "anthropic/{model}")
    environment = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "not-yet")}  # as the image sets
    with serve("--config", str(config), env=environment) as server:
        url = server.url
        assert httpx.post(f"{url}/v1/messages", json=REQUEST).status_code == 200
        _settled(url, 1)
        assert list((tmp_path / "not-yet").glob("gauge_livesum_*.db"))
    assert list((tmp_path / "not-yet").glob("counter_*.db"))
    # a worker that stops takes its live gauges (active streams) out of the totals
    assert not list((tmp_path / "not-yet").glob("gauge_livesum_*.db"))
