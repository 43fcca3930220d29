"""Paths as clients get them wrong: the front doors without /v1 are served, other unknown
paths get a 404 with a hint, and every 404 and 405 is in the request log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import FakeUpstream, one_provider
from tests.e2e.serving import serve, until


def request_lines(printed: list[str], count: int) -> list[dict[str, Any]]:
    """The request log's lines on stdout, once there are `count` of them."""
    lines = [json.loads(line) for line in list(printed) if line.startswith("{")]
    return lines if len(lines) >= count else []


MESSAGES = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def test_paths_without_v1_are_served_and_unknown_ones_hinted_and_logged(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    prefix = upstream.provider()
    path = one_provider(tmp_path, upstream.url(prefix), "a/claude-sonnet-4-6")
    with serve("--config", str(path)) as server:
        url = server.url
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

        # three served, three 404s and a 405 (the models list is not a request of the log)
        lines = until(lambda: request_lines(server.printed, 7), what="7 request log lines")
    statuses = [line["status"] for line in lines]
    assert statuses.count(404) == 3 and statuses.count(405) == 1, statuses
    assert [call["path"] for call in upstream.calls(prefix)] == ["/v1/messages"] * 3
