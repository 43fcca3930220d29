"""End to end with the real opencode CLI on the OpenAI front door, when it is installed
(.ci/run installs it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway

OPENCODE = shutil.which("opencode")
pytestmark = pytest.mark.skipif(
    OPENCODE is None, reason="the opencode CLI is not installed: npm install -g opencode-ai"
)


def test_opencode_falls_back_from_an_openai_provider_to_an_anthropic_one(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    assert OPENCODE is not None
    oai, ant = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "oai": {"protocol": "openai", "base_url": f"{upstream.url(oai)}/v1", "auth": "none"},
            "ant": {
                "protocol": "anthropic",
                "base_url": upstream.url(ant),
                "keys": ["sk-ant-backup-0001"],
            },
        },
        [{"match": "*", "chain": ["oai/{model}", "ant/claude-sonnet-4-6"]}],
    )
    # Down on the call and on its retry: the breaker opens, the Anthropic backup serves.
    # opencode may send its title request beside the prompt, so up to two requests can each
    # make a call and a retry before the breaker has opened.
    upstream.script(oai, *[{"status": 503, "body": "{}"}] * 4)
    project = tmp_path / "project"
    project.mkdir()
    with gateway(config) as url:
        settings = {
            "provider": {
                "routatic": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "routatic",
                    "options": {"baseURL": f"{url}/v1", "apiKey": "sk-local-client"},
                    "models": {"gpt-x": {"name": "gpt-x"}},
                }
            },
            "model": "routatic/gpt-x",
        }
        (project / "opencode.json").write_text(json.dumps(settings))
        environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
        result = subprocess.run(
            [OPENCODE, "run", "say hello"],
            capture_output=True,
            text=True,
            timeout=180,
            env=environment,
            cwd=project,
        )
    assert result.returncode == 0, result.stderr
    assert "word0 word1 word2" in result.stdout
    calls = upstream.calls(oai)
    assert 2 <= len(calls) <= 4
    assert {call["path"] for call in calls} == {"/v1/chat/completions"}
    served = upstream.calls(ant)
    assert served and {call["path"] for call in served} == {"/v1/messages"}
    headers = dict(served[0]["headers"])
    assert headers["x-api-key"] == "sk-ant-backup-0001"
    assert "sk-local-client" not in json.dumps(served)
