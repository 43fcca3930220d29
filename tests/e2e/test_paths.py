"""Paths as clients get them wrong: the front doors without /v1 are served, other unknown
paths get a 404 with a hint, and every 404 and 405 is in the request log."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import CLI, FakeUpstream

MESSAGES = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def test_paths_without_v1_are_served_and_unknown_ones_hinted_and_logged(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    prefix = upstream.provider()
    path = tmp_path / "routatic.yaml"
    path.write_text(
        f'providers: {{a: {{protocol: anthropic, base_url: "{upstream.url(prefix)}", auth: none}}}}\n'
        'routes: [{match: "*", chain: ["a/claude-sonnet-4-6"]}]\n'
    )
    log, errors = tmp_path / "requests.log", tmp_path / "stderr.log"
    environment = {k: v for k, v in os.environ.items() if k != "ROUTATIC_CONFIG"}
    with log.open("wb") as out, errors.open("wb") as err:
        process = subprocess.Popen(
            [*CLI, "serve", "--port", "0", "--config", str(path)], stdout=out, stderr=err, env=environment
        )
    try:
        deadline = time.monotonic() + 20
        while not (found := re.search(r"running on (http://\S+)", errors.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, errors.read_text()
            time.sleep(0.05)
        url = found.group(1)
        assert httpx.post(f"{url}/messages", json=MESSAGES).status_code == 200
        chat = httpx.post(f"{url}/chat/completions", json={"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200 and chat.json()["object"] == "chat.completion"
        responses = httpx.post(f"{url}/responses", json={"model": "gpt-x", "input": "hi"})
        assert responses.status_code == 200 and responses.json()["object"] == "response"
        assert httpx.get(f"{url}/models").json()["data"][0]["id"] == "claude-sonnet-4-6"

        doubled = httpx.post(f"{url}/v1/v1/messages", json=MESSAGES)
        assert doubled.status_code == 404
        assert "already ends in /v1" in doubled.text
        prefixed = httpx.post(f"{url}/api/anthropic/v1/messages", json=MESSAGES)
        assert prefixed.status_code == 404 and "serves /v1/messages at its root" in prefixed.text
        elsewhere = httpx.get(f"{url}/nothing-here")
        assert elsewhere.status_code == 404 and "/v1/chat/completions" in elsewhere.text
        assert httpx.get(f"{url}/v1/messages").status_code == 405

        lines = []
        deadline = time.monotonic() + 10
        while len(lines) < 8 and time.monotonic() < deadline:
            lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    statuses = [line["status"] for line in lines]
    assert statuses.count(404) == 3 and statuses.count(405) == 1, statuses
    assert [call["path"] for call in upstream.calls(prefix)] == ["/v1/messages"] * 3
