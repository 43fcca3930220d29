"""GET /ui in a real headless Chromium, driven over the DevTools protocol: the page shows the
chains, breakers, credentials, prompt-cache hits and requests, and follows a breaker that opens
while it is open."""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from routatic_asgi.session import Session
from tests.conftest import FakeUpstream
from tests.e2e.serving import serve, until
from tests.fake_upstream import anthropic_message

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium to drive: apt-get install chromium (.ci/run does)"
)
PROXY_KEY = "proxy-key-page-0001"
SESSION = "4e0d-private-session-id"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]


class Page:
    """One browser tab, spoken to over the Chrome DevTools Protocol."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:  # events arrive between answers; only ours matters
            message = json.loads(self.socket.recv(timeout=20))
            if message.get("id") == number:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def until(self, expression: str, what: str) -> Any:
        try:
            return until(lambda: self.evaluate(expression), what=f"the page to show {what}")
        except AssertionError as failed:
            raise AssertionError(f"{failed}: {self.evaluate('document.body.innerText')}") from None


@contextmanager
def chromium(profile: Path) -> Iterator[Page]:
    assert CHROMIUM is not None
    log = profile.with_suffix(".log")
    with log.open("w") as sink:
        process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        try:
            found = until(lambda: re.search(r"DevTools listening on ws://([\d.]+:\d+)/", log.read_text()),
                          what="chromium to listen", timeout=30, process=process)  # fmt: skip
        except AssertionError as failed:
            raise AssertionError(f"{failed}: {log.read_text()[-2000:]}") from None
        tabs = httpx.get(f"http://{found.group(1)}/json/list").json()
        tab = next(tab for tab in tabs if tab["type"] == "page")
        with connect(tab["webSocketDebuggerUrl"], max_size=2**24) as socket:
            yield Page(socket)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_status_page_follows_a_breaker_opening(upstream: FakeUpstream, tmp_path: Path) -> None:
    flaky, backup = upstream.provider(), upstream.provider()
    path = tmp_path / "routatic.yaml"
    path.write_text(
        f"""
server: {{keys: ["{PROXY_KEY}"]}}
providers:
  flaky: {{protocol: anthropic, base_url: "{upstream.url(flaky)}", keys: ["sk-flaky-0001"]}}
  backup: {{protocol: anthropic, base_url: "{upstream.url(backup)}", keys: ["sk-backup-0002"]}}
routes:
  - match: "*"
    chain: [flaky/model-a, backup/model-b]
"""
    )
    with serve("--config", str(path)) as server:
        url = server.url
        refused = httpx.get(f"{url}/ui")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic ")
        basic = "Basic " + base64.b64encode(f"me:{PROXY_KEY}".encode()).decode()
        served = httpx.get(f"{url}/ui", headers={"authorization": basic})
        assert served.status_code == 200 and served.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in served.headers["content-security-policy"]
        assert not re.search(r"(src|href)\s*=|https?://", served.text)  # nothing from elsewhere

        with chromium(tmp_path / "profile") as page:
            page.call("Network.enable")
            page.call("Network.setExtraHTTPHeaders", headers={"authorization": basic})
            page.call("Page.navigate", url=f"{url}/ui")
            row = 'document.querySelector(\'tr[data-target="flaky/model-a#0"]\')'
            page.until(f"{row}?.dataset.state === 'closed'", "the flaky breaker closed")
            assert page.evaluate("document.getElementById('chains').innerText").count("flaky/model-a") == 1
            assert "sk-flaky-0001" not in page.evaluate("document.body.innerText")

            upstream.script(flaky, *[{"status": 503, "headers": {"retry-after": "600"}, "body": "{}"}] * 3)
            cached = {"input_tokens": 10, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 10, "output_tokens": 7}
            upstream.script(backup, {"status": 200, "json": {**anthropic_message("model-b"), "usage": cached}})
            answer = httpx.post(
                f"{url}/v1/messages",
                json={"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
                headers={"x-routatic-key": PROXY_KEY, "x-claude-code-session-id": SESSION},
                timeout=30,
            )
            assert answer.headers["x-routatic-target"] == "backup/model-b"

            page.until(f"{row}?.dataset.state === 'open'", "the flaky breaker open")
            left = page.evaluate(f"{row}.cells[4].innerText")
            assert re.fullmatch(r"\d+m \d+s|\d+s", left), left
            requests = page.until(
                "document.querySelector('#requests tr[data-outcome=\"success\"]')?.innerText",
                "the request that fell back",
            )
            assert "flaky/model-a transient" in requests and "backup/model-b success" in requests

            # 60 of the 80 input tokens were read from the provider's cache
            hits = 'document.querySelector(\'#caches tr[data-cache="backup/model-b"]\')'
            assert page.until(f"{hits}?.cells[2].innerText", "the cache hit ratio") == "75%"
            data = httpx.get(f"{url}/ui/data", headers={"authorization": basic}).json()
            [line] = [r for r in data["requests"] if r["provider"] == "backup"]
            assert line["tokens"] == {"input": 10, "output": 7, "cache_read": 60, "cache_write": 10}
            assert line["session"] == Session(SESSION, "x-claude-code-session-id").hashed
            assert SESSION not in page.evaluate("document.body.innerText") + json.dumps(data)
            assert page.evaluate("document.getElementById('problem').innerText") == ""
