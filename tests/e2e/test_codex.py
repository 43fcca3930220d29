"""End to end with the real Codex CLI on the Responses front door, when it is installed
(.ci/run installs it): its primary Responses provider fails, and a whole tool loop runs on an
Anthropic provider instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway
from tests.e2e.test_translation import event

CODEX = shutil.which("codex")
pytestmark = pytest.mark.skipif(
    CODEX is None, reason="the Codex CLI is not installed: npm install -g @openai/codex"
)
BUSY = {"status": 503, "json": {"error": {"message": "busy", "type": "server_error"}}}


def anthropic_stream(
    blocks: list[dict[str, Any]], deltas: list[dict[str, Any]], stop: str
) -> list[str]:
    start = {
        "id": "msg_codex01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 1},
    }
    events = [event("message_start", {"type": "message_start", "message": start})]
    for index, (block, delta) in enumerate(zip(blocks, deltas, strict=True)):
        events.append(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        )
        events.append(
            event(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        )
        events.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
    usage = {"output_tokens": 9}
    events.append(
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": usage,
            },
        )
    )
    events.append(event("message_stop", {"type": "message_stop"}))
    return events


def test_codex_exec_runs_a_tool_loop_on_anthropic_when_its_primary_fails(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    assert CODEX is not None
    rsp, ant = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "rsp": {
                "protocol": "responses",
                "base_url": f"{upstream.url(rsp)}/v1",
                "keys": ["sk-rsp-0001"],
            },
            "ant": {
                "protocol": "anthropic",
                "base_url": upstream.url(ant),
                "keys": ["sk-ant-backup-0001"],
            },
        },
        [{"match": "*", "chain": ["rsp/{model}", "ant/claude-sonnet-4-6"]}],
        resilience={"cooldown": {"base": "1h", "max": "2h"}},
    )
    call = {"type": "tool_use", "id": "toolu_codex01", "name": "exec_command", "input": {}}
    arguments = {
        "type": "input_json_delta",
        "partial_json": json.dumps({"cmd": "echo routatic-tool-ran"}),
    }
    text = {"type": "text", "text": ""}
    upstream.script(rsp, *[BUSY] * 6)  # down for every call this test could make
    upstream.script(ant, {"sse": anthropic_stream([call], [arguments], "tool_use")})
    upstream.script(
        ant,
        {
            "sse": anthropic_stream(
                [text], [{"type": "text_delta", "text": "The command printed it."}], "end_turn"
            )
        },
    )
    home, project = tmp_path / "codex-home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    with gateway(config) as url:
        (home / "config.toml").write_text(
            'model = "gpt-5"\nmodel_provider = "gateway"\n'
            "[model_providers.gateway]\n"
            f'name = "gateway"\nbase_url = "{url}/v1"\nwire_api = "responses"\n'
            'env_key = "ROUTATIC_TEST_KEY"\nrequest_max_retries = 0\nstream_max_retries = 0\n'
        )
        environment = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "CODEX_HOME": str(home),
            "ROUTATIC_TEST_KEY": "sk-local-client",
        }
        result = subprocess.run(
            [
                CODEX,
                "exec",
                "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox",
                "run the check",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            env=environment,
            cwd=project,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 0, result.stderr
    assert "The command printed it." in result.stdout
    failed = upstream.calls(rsp)
    assert failed and {call["path"] for call in failed} == {"/v1/responses"}
    first, second = (json.loads(call["body"]) for call in upstream.calls(ant))
    tool_names = {tool["name"] for tool in first["tools"]}
    assert "exec_command" in tool_names
    assert any("__" in name for name in tool_names)  # Codex's namespace tool, flattened
    assert "web_search" not in tool_names  # the hosted tool is dropped
    results = [b for m in second["messages"] for b in m["content"] if b["type"] == "tool_result"]
    assert results[0]["tool_use_id"] == "toolu_codex01"
    assert "routatic-tool-ran" in results[0]["content"]
    served = upstream.calls(ant)
    assert all(dict(c["headers"])["x-api-key"] == "sk-ant-backup-0001" for c in served)
    assert "sk-local-client" not in json.dumps(served)
