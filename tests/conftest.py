"""Shared fixtures: the fake provider process, configurations, the command line run as a
process, request log lines and state stores (served gateways: tests/e2e/serving.py)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from routatic_asgi import parse_config
from routatic_asgi.config import Config
from routatic_asgi.state import MemoryStore, RedisStore, StateStore
from tests.e2e.serving import CLI, free_port, stop_shared
from tests.fake_clock import FakeClock

HERE = Path(__file__).parent
_prefixes = itertools.count()


class FakeUpstream:
    """Client for tests/fake_upstream.py: each `provider()` is a fresh path prefix."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def provider(self) -> str:
        return f"p{next(_prefixes)}"

    def url(self, prefix: str) -> str:
        return f"http://127.0.0.1:{self.port}/{prefix}"

    def script(self, prefix: str, *answers: dict[str, Any]) -> None:
        self.http.post(f"/_script/{prefix}", content=json.dumps(list(answers))).raise_for_status()

    def clear(self, prefix: str) -> None:
        """Drop the answers still queued for `prefix`: it answers like a healthy provider."""
        self.http.post(f"/_clear/{prefix}").raise_for_status()

    def disconnected(self, prefix: str, count: int | None = None) -> list[dict[str, Any]]:
        """The prefix's calls, once its last one (or `count` of them) has seen its client go
        away: the fake upstream waits, so nothing polls it meanwhile."""
        query = {} if count is None else {"count": count}
        response = self.http.get(f"/_disconnected/{prefix}", params=query)
        response.raise_for_status()
        calls: list[dict[str, Any]] = response.json()
        return calls

    def calls(self, prefix: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/_calls/{prefix}")
        response.raise_for_status()
        calls: list[dict[str, Any]] = response.json()
        return calls


@pytest.fixture
def anyio_backend() -> str:
    """The gateway runs on asyncio (uvicorn's loop): `@pytest.mark.anyio` tests run there only."""
    return "asyncio"


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "fake_upstream.py")], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    fake = FakeUpstream(port)
    yield fake
    fake.http.close()
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=10)
    process.stdout.close()


def http_scope(headers: list[tuple[bytes, bytes]], path: str = "/v1/messages") -> dict[str, Any]:
    """An ASGI HTTP scope for a POST, as uvicorn would pass it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8787),
    }


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connections are refused."""
    return f"http://127.0.0.1:{free_port()}"


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    """The value `registry` holds for the metric `name` with `labels` (None: never recorded)."""
    return registry.get_sample_value(name, labels)


def traced() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A tracer provider whose finished spans the exporter keeps in memory."""
    provider, exporter = TracerProvider(), InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def gateway_config(
    providers: dict[str, dict[str, Any]],
    routes: list[dict[str, Any]],
    **sections: Any,
) -> Config:
    return parse_config({"providers": providers, "routes": routes, **sections}, env={})


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_server() -> Iterator[None]:
    yield
    stop_shared()


# --- the command line, run as a process of its own ---------------------------------------

def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env=environment
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routatic.yaml"
    path.write_text(text)
    return path


def one_provider(tmp_path: Path, base_url: str, chain: str = "up/{model}") -> Path:
    """A configuration file: one Anthropic provider at `base_url`, no credential, that every
    model goes to (`chain`: the provider's name and the model)."""
    name = chain.split("/", 1)[0]
    return write(
        tmp_path,
        f'providers:\n  {name}: {{protocol: anthropic, base_url: "{base_url}", auth: none}}\n'
        f'routes:\n  - {{match: "*", chain: ["{chain}"]}}\n',
    )


class RequestLines(logging.Handler):
    """Collects the request log's lines; `wait(n)` blocks until n have been logged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.raw.append(record.getMessage())
            self.lines.append(json.loads(record.getMessage()))
            self.changed.notify_all()

    def wait(self, count: int) -> list[dict[str, Any]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.lines) >= count, timeout=10)
            return list(self.lines)

    def of(self, model: str) -> dict[str, Any]:
        """The one line of a request for `model`, once it is logged."""
        with self.changed:
            assert self.changed.wait_for(lambda: self._for(model), timeout=10), model
            (line,) = self._for(model)
            return line

    def _for(self, model: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["model"] == model]


@contextmanager
def request_log() -> Iterator[RequestLines]:
    """The request log's lines while the block runs."""
    handler = RequestLines()
    log = logging.getLogger("routatic_asgi.requests")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


@pytest.fixture
def request_lines() -> Iterator[RequestLines]:
    with request_log() as lines:
        yield lines


REDIS_URL = os.environ.get("ROUTATIC_TEST_REDIS_URL")


def redis_url(prefix: str | None = None) -> str:
    """The test Redis with a key prefix of its own (a fresh one unless given); skips the test,
    saying why, where ROUTATIC_TEST_REDIS_URL is unset."""
    if not REDIS_URL:
        pytest.skip("ROUTATIC_TEST_REDIS_URL is not set: no Redis to test the shared store on")
    separator = "&" if "?" in REDIS_URL else "?"
    return f"{REDIS_URL}{separator}key_prefix={prefix or f'routatic-test-{uuid.uuid4().hex}:'}"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[tuple[StateStore, FakeClock]]:
    """Each StateStore on a fake clock: memory always, Redis where the suite has one."""
    clock = FakeClock()
    made: StateStore
    if request.param == "memory":
        made = MemoryStore(clock=clock)
    else:
        made = RedisStore(redis_url(), clock=clock)
    yield made, clock
    await cleared(made)


async def cleared(*stores: StateStore) -> None:
    """Closes `stores` after a test, first deleting what a Redis one wrote under its prefix."""
    for made in stores:
        if isinstance(made, RedisStore):
            client = made._redis()
            keys = [key async for key in client.scan_iter(match=f"{made.prefix}*")]
            if keys:
                await client.delete(*keys)
        await made.aclose()
