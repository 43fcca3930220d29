"""End to end with the real Claude Code CLI, when it is installed (.ci/run installs it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway

CLAUDE = shutil.which("claude")
pytestmark = pytest.mark.skipif(
    CLAUDE is None, reason="the Claude Code CLI (`claude`) is not installed: npm install -g @anthropic-ai/claude-code"
)


def run_claude(url: str, home: Path, prompt: str) -> subprocess.CompletedProcess[str]:
    assert CLAUDE is not None
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "sk-ant-client-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    return subprocess.run(
        [CLAUDE, "-p", prompt], capture_output=True, text=True, timeout=120, env=environment, cwd=home
    )


def test_claude_code_keeps_working_when_its_provider_is_overloaded(upstream: FakeUpstream, tmp_path: Path) -> None:
    primary, backup = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "anthropic": {"protocol": "anthropic", "base_url": upstream.url(primary), "auth": "passthrough"},
            "backup": {"protocol": "anthropic", "base_url": upstream.url(backup), "keys": ["sk-backup-000001"]},
        },
        [{"match": "*", "chain": ["anthropic/{model}", "backup/{model}"]}],
    )
    overloaded = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    # Overloaded on the call and on its retry: the breaker opens, the backup serves the rest.
    upstream.script(primary, *[{"status": 529, "body": overloaded}] * 2)
    with gateway(config) as url:
        result = run_claude(url, tmp_path, "say hello")
    assert result.returncode == 0, result.stderr
    assert "word0 word1 word2" in result.stdout
    failed, retried = upstream.calls(primary)
    assert retried["body"] == failed["body"]
    served = upstream.calls(backup)[-1]
    assert failed["query"] == served["query"] == "beta=true"
    assert failed["body"] == served["body"]  # the same ~76 KB body, byte for byte
    assert dict(failed["headers"])["x-api-key"] == "sk-ant-client-key"
    backup_headers = dict(served["headers"])
    assert backup_headers["x-api-key"] == "sk-backup-000001"
    assert "claude-code-20250219" in backup_headers["anthropic-beta"]
