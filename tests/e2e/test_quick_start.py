"""The README's quick start, run as written in a fresh copy of the project and a fresh
virtualenv. It downloads the dependencies, so it runs in CI (CI=true) or when asked
(ROUTATIC_TEST_QUICK_START=1), and is skipped, saying so, otherwise."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import FakeUpstream
from tests.e2e.serving import listening, until

ROOT = Path(__file__).resolve().parents[2]
ASKED = os.environ.get("CI") == "true" or os.environ.get("ROUTATIC_TEST_QUICK_START") == "1"
pytestmark = pytest.mark.skipif(
    not ASKED, reason="builds a virtualenv from the network: set CI=true or ROUTATIC_TEST_QUICK_START=1"
)


def quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)[0].strip()


def healthy() -> bool:
    try:
        return httpx.get("http://127.0.0.1:8787/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_quick_start_as_written_serves_and_installs_no_dev_tools(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    if listening(8787):
        pytest.skip("something already listens on 127.0.0.1:8787, the quick start's port")
    project = tmp_path / "routatic-asgi"
    shutil.copytree(
        ROOT, project,
        ignore=shutil.ignore_patterns(".git", ".venv", "*.egg-info", "__pycache__", "build"),
    )
    prefix = upstream.provider()
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ROUTATIC_ANTHROPIC_BASE_URL": upstream.url(prefix),  # the default's Anthropic, faked
    }
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE"):
        if name in os.environ:
            environment[name] = os.environ[name]
    log = tmp_path / "quick-start.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["bash", "-c", quick_start()], cwd=project, env=environment,
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        try:
            until(healthy, what="the quick start to serve", timeout=600, process=process)
        except AssertionError as failed:
            raise AssertionError(f"{failed}: {log.read_text()[-3000:]}") from None
        response = httpx.post(
            "http://127.0.0.1:8787/v1/messages",
            json={"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-api-key": "sk-ant-quick-start"},
            timeout=30,
        )
        assert response.status_code == 200
        assert response.headers["x-routatic-target"] == "anthropic/claude-x"
        tools = project / ".venv" / "bin"
        assert (tools / "routatic-asgi").exists()
        for dev_tool in ("pytest", "ruff", "mypy"):
            assert not (tools / dev_tool).exists(), f"{dev_tool} came with the server"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
