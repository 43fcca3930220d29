"""Hot reload of a real `serve` process: SIGHUP and file changes, a bad file refused, streams
in flight finishing on the old configuration, breakers of unchanged targets kept, and the same
under --workers 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import CLI, FakeUpstream
from tests.fake_upstream import anthropic_stream

MESSAGE = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@contextmanager
def server(*args: str, log: Path, port: int = 0) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`serve` in its own process; its stderr goes to `log`, read while it runs."""
    environment = {k: v for k, v in os.environ.items() if k != "ROUTATIC_CONFIG"}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), *args],
            stderr=sink,
            stdout=subprocess.DEVNULL,
            env=environment,
        )
    try:
        line = until(lambda: _running(log), what="the server to listen", process=process)
        yield process, f"http://127.0.0.1:{port}" if port else line
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def _running(log: Path) -> str | None:
    for line in log.read_text().splitlines():
        if "Uvicorn running on http://" in line:
            return line.split("running on ")[1].split()[0]
    return None


def until(
    probe: Callable[[], Any], *, what: str, process: subprocess.Popen[bytes] | None = None
) -> Any:
    """Poll `probe` until it returns something truthy (at most 20 s)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited while waiting for {what}")
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def config(upstream: FakeUpstream, served_by: str, steady: str) -> str:
    return f"""
providers:
  main: {{protocol: anthropic, base_url: "{upstream.url(served_by)}", keys: ["sk-main-0001"]}}
  steady: {{protocol: anthropic, base_url: "{upstream.url(steady)}", keys: ["sk-steady-0002"]}}
routes:
  - match: "steady-*"
    chain: [steady/steady-model]
  - match: "*"
    chain: ["main/{{model}}"]
"""


def status(url: str) -> dict[str, Any]:
    report: dict[str, Any] = httpx.get(f"{url}/status").json()
    return report


def breaker(url: str, target: str) -> str:
    rows = [row for row in status(url)["breakers"] if row["target"] == target]
    return str(rows[0]["state"]) if rows else "unknown"


def test_sighup_and_file_changes_reload_without_dropping_a_stream(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    first, second, third, steady = (upstream.provider() for _ in range(4))
    path = tmp_path / "routatic.yaml"
    path.write_text(config(upstream, first, steady))
    log = tmp_path / "stderr.log"
    with server("--config", str(path), log=log) as (process, url):
        loaded = status(url)["config"]
        assert loaded["source"] == str(path) and len(loaded["hash"]) == 12
        # A breaker opens on the target that will not change.
        upstream.script(steady, *[{"status": 503, "headers": {"retry-after": "600"}, "body": "{}"}] * 3)
        httpx.post(f"{url}/v1/messages", json={**MESSAGE, "model": "steady-x"}, timeout=30)
        assert breaker(url, "steady/steady-model#0") == "open"

        # A stream starts on the first configuration and holds after its first words.
        events = anthropic_stream("claude-x")
        upstream.script(first, {"sse": events[:4], "hold": f"{first}-gate", "rest": events[4:]})
        received: list[bytes] = []
        started = threading.Event()

        def stream() -> None:
            with httpx.stream("POST", f"{url}/v1/messages", json={**MESSAGE, "stream": True}, timeout=30) as response:
                received.append(str(response.status_code).encode())
                for chunk in response.iter_bytes():
                    received.append(chunk)
                    started.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert started.wait(20)

        path.write_text(config(upstream, second, steady))
        process.send_signal(signal.SIGHUP)
        until(lambda: status(url)["config"]["hash"] != loaded["hash"], what="the reload")
        served = httpx.post(f"{url}/v1/messages", json=MESSAGE, timeout=30)
        assert served.headers["x-routatic-target"] == "main/claude-x"
        assert len(upstream.calls(second)) == 1  # the new configuration serves new requests

        upstream.http.post(f"/_release/{first}-gate").raise_for_status()
        reader.join(20)
        body = b"".join(received[1:])
        assert received[0] == b"200"
        assert b"word2" in body and b"message_stop" in body  # finished where it started
        assert len(upstream.calls(first)) == 1
        assert breaker(url, "steady/steady-model#0") == "open"  # unchanged target: kept

        # A file that does not validate is refused; the running configuration stays.
        reloaded = status(url)["config"]
        path.write_text(config(upstream, third, steady).replace("protocol: anthropic", "protocol: smtp", 1))
        process.send_signal(signal.SIGHUP)
        refused = until(lambda: "refused, still serving" in log.read_text(), what="the refusal")
        assert refused
        text = log.read_text()
        assert "providers.main.protocol" in text and "sk-main-0001" not in text
        assert status(url)["config"]["hash"] == reloaded["hash"]
        httpx.post(f"{url}/v1/messages", json=MESSAGE, timeout=30)
        assert len(upstream.calls(second)) == 2 and upstream.calls(third) == []

        # --watch is on by default with a file: saving it is enough.
        path.write_text(config(upstream, third, steady))
        until(lambda: status(url)["config"]["hash"] != reloaded["hash"], what="the watcher")
        httpx.post(f"{url}/v1/messages", json=MESSAGE, timeout=30)
        assert len(upstream.calls(third)) == 1


def test_a_changed_provider_starts_afresh(upstream: FakeUpstream, tmp_path: Path) -> None:
    main, steady, moved = upstream.provider(), upstream.provider(), upstream.provider()
    path = tmp_path / "routatic.yaml"
    path.write_text(config(upstream, main, steady))
    with server("--config", str(path), "--no-watch", log=tmp_path / "stderr.log") as (process, url):
        upstream.script(steady, *[{"status": 503, "headers": {"retry-after": "600"}, "body": "{}"}] * 3)
        httpx.post(f"{url}/v1/messages", json={**MESSAGE, "model": "steady-x"}, timeout=30)
        assert breaker(url, "steady/steady-model#0") == "open"
        before = status(url)["config"]["hash"]
        path.write_text(config(upstream, main, steady).replace(upstream.url(steady), upstream.url(moved)))
        process.send_signal(signal.SIGHUP)
        until(lambda: status(url)["config"]["hash"] != before, what="the reload")
        assert breaker(url, "steady/steady-model#0") == "closed"
        served = httpx.post(f"{url}/v1/messages", json={**MESSAGE, "model": "steady-x"}, timeout=30)
        assert served.status_code == 200 and len(upstream.calls(moved)) == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_sighup_reloads_every_worker(upstream: FakeUpstream, tmp_path: Path) -> None:
    first, second, steady = upstream.provider(), upstream.provider(), upstream.provider()
    path = tmp_path / "routatic.yaml"
    path.write_text(config(upstream, first, steady))
    port = free_port()
    log = tmp_path / "stderr.log"
    with server("--config", str(path), "--workers", "2", log=log, port=port) as (process, url):
        until(lambda: log.read_text().count("Application startup complete") == 2, what="2 workers")
        path.write_text(config(upstream, second, steady))
        process.send_signal(signal.SIGHUP)
        until(lambda: log.read_text().count("reloaded") == 2, what="both workers to reload")
        for _ in range(8):  # the kernel spreads new connections over both workers
            with httpx.Client() as client:
                response = client.post(f"{url}/v1/messages", json=MESSAGE, timeout=30)
            assert response.status_code == 200
        assert upstream.calls(first) == [] and len(upstream.calls(second)) == 8
        assert "Waiting for application shutdown" not in log.read_text()  # no worker restarted
