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
from tests.fake_upstream import anthropic_blocks

CODEX = shutil.which("codex")
pytestmark = pytest.mark.skipif(
    CODEX is None, reason="the Codex CLI is not installed: npm install -g @openai/codex"
)
BUSY = {"status": 503, "json": {"error": {"message": "busy", "type": "server_error"}}}


def anthropic_stream(block: dict[str, Any], delta: dict[str, Any], stop: str) -> list[str]:
    """An Anthropic answer of one content block, in one delta."""
    return anthropic_blocks("claude-sonnet-4-6", [(block, [delta])], stop=stop, tokens=(30, 9),
                            message_id="msg_codex01", ping=False)  # fmt: skip


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
    upstream.script(ant, {"sse": anthropic_stream(call, arguments, "tool_use")})
    said = {"type": "text_delta", "text": "The command printed it."}
    upstream.script(ant, {"sse": anthropic_stream(text, said, "end_turn")})
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
