"""Hot reload of a real `serve` process: SIGHUP and file changes, a bad file refused, streams
in flight finishing on the old configuration, breakers of unchanged targets kept, and the same
under --workers 2."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import FakeUpstream
from tests.e2e.serving import serve, until
from tests.fake_upstream import anthropic_stream

MESSAGE = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


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
    with serve("--config", str(path)) as server:
        url, process = server.url, server.process
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
        refused = until(lambda: "refused, still serving" in server.text(), what="the refusal")
        assert refused
        text = server.text()
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
    with serve("--config", str(path), "--no-watch") as server:
        url, process = server.url, server.process
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


def test_sighup_reloads_every_worker(upstream: FakeUpstream, tmp_path: Path) -> None:
    first, second, steady = upstream.provider(), upstream.provider(), upstream.provider()
    path = tmp_path / "routatic.yaml"
    path.write_text(config(upstream, first, steady))
    with serve("--config", str(path), "--workers", "2") as server:
        url, process = server.url, server.process
        assert server.startups() == 2
        path.write_text(config(upstream, second, steady))
        process.send_signal(signal.SIGHUP)
        until(lambda: server.text().count("reloaded") == 2, what="both workers to reload")
        for _ in range(8):  # the kernel spreads new connections over both workers
            with httpx.Client() as client:
                response = client.post(f"{url}/v1/messages", json=MESSAGE, timeout=30)
            assert response.status_code == 200
        assert upstream.calls(first) == [] and len(upstream.calls(second)) == 8
        assert "Waiting for application shutdown" not in server.text()  # no worker restarted
