"""The gateways bench/peers.py measures: claude-code-router and LiteLLM's proxy installed
once, at pinned versions, into a cache directory outside the repository, and each gateway's
configuration (routatic-asgi's included) written into the run's work directory. It never
writes the user's own `~/.claude-code-router`: claude-code-router runs with HOME in the run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from processes import PYTHON, REPO

LITELLM_VERSION = "1.106.12"
CCR_PACKAGE = "@musistudio/claude-code-router"
CCR_VERSION = "2.0.0"
KEY = "sk-bench-00000000000000000000000000000000"  # LiteLLM's master key; others ignore it
INSTALL_SECONDS = 1200


@dataclass
class Gateway:
    name: str
    version: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


# installing the peers, once


def install_litellm(cache: Path) -> Path:
    """LiteLLM's `litellm` command in its own virtualenv under `cache`."""
    venv = cache / f"litellm-{LITELLM_VERSION}"
    command = venv / "bin" / "litellm"
    if (venv / ".installed").exists() and command.exists():
        return command
    base = getattr(sys, "_base_executable", PYTHON)
    _run([base, "-m", "venv", str(venv)], "making LiteLLM's virtualenv")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    _run([*pip, f"litellm[proxy]=={LITELLM_VERSION}"], "pip install litellm[proxy]")
    (venv / ".installed").touch()
    return command


def install_ccr(cache: Path) -> Path:
    """claude-code-router's `cli.js` installed from npm under `cache`."""
    folder = cache / f"ccr-{CCR_VERSION}"
    cli = folder / "node_modules" / CCR_PACKAGE / "dist" / "cli.js"
    if (folder / ".installed").exists() and cli.exists():
        return cli
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise RuntimeError("needs node and npm")
    folder.mkdir(parents=True, exist_ok=True)
    npm = ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund"]
    _run([*npm, f"{CCR_PACKAGE}@{CCR_VERSION}"], "npm install claude-code-router")
    (folder / ".installed").touch()
    return cli


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_SECONDS)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise RuntimeError(f"{what} failed: {last}")


# each gateway's configuration, in the run's work directory


def routatic(workdir: Path, upstream: str, port: int) -> Gateway:
    config = workdir / "routatic.yaml"
    config.write_text(
        f"server: {{host: 127.0.0.1, port: {port}}}\n"
        f'providers:\n  fast: {{protocol: anthropic, base_url: "{upstream}", auth: passthrough}}\n'
        f'  oai: {{protocol: openai, base_url: "{upstream}/v1", auth: none}}\n'
        'routes:\n  - {match: bench-oai, chain: ["oai/claude-bench-1"]}\n'
        '  - {match: "*", chain: ["fast/{model}"]}\n'
    )
    serve = [PYTHON, "-m", "routatic_asgi.cli", "serve", "--config", str(config)]
    version = _git_version()
    return Gateway(
        "routatic-asgi",
        version,
        [*serve, "--log-level", "warning"],
        {"PYTHONPATH": str(REPO)},
        REPO,
    )


def ccr(cli: Path, workdir: Path, upstream: str, port: int) -> Gateway:
    home = workdir / "ccr-home"
    (home / ".claude-code-router").mkdir(parents=True, exist_ok=True)
    provider = {
        "name": "bench",
        "api_base_url": f"{upstream}/v1/messages",
        "api_key": KEY,
        "models": ["claude-bench-1"],
        "transformer": {"use": ["Anthropic"]},  # Anthropic in, Anthropic out: passthrough
    }
    config = {
        "LOG": False,
        "HOST": "127.0.0.1",
        "PORT": port,
        "NON_INTERACTIVE_MODE": True,
        "Providers": [provider],
        "Router": {"default": "bench,claude-bench-1"},
    }
    (home / ".claude-code-router" / "config.json").write_text(json.dumps(config))
    return Gateway(
        "claude-code-router", CCR_VERSION, ["node", str(cli), "start"], {"HOME": str(home)}
    )


def litellm(command: Path, workdir: Path, upstream: str, port: int) -> Gateway:
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: claude-bench-1\n"
        f'    litellm_params: {{model: anthropic/claude-bench-1, api_base: "{upstream}", '
        f"api_key: {KEY}}}\n"
        "litellm_settings: {telemetry: false}\n"
        f"general_settings: {{master_key: {KEY}}}\n"
    )
    serve = [str(command), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    # The model price list ships with the package: no fetch at start.
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    return Gateway("litellm", LITELLM_VERSION, [*serve, "--num_workers", "1"], env, workdir)


def _git_version() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or "?"


PEERS: dict[str, Callable[[Path], Path]] = {"ccr": install_ccr, "litellm": install_litellm}


def gateway_for(name: str, workdir: Path, upstream: str, port: int, cache: Path) -> Gateway:
    """The gateway `name` (routatic, ccr, litellm), its peer installed first if need be.
    Raises RuntimeError, OSError or TimeoutExpired when the peer cannot be installed."""
    if name == "routatic":
        return routatic(workdir, upstream, port)
    installed = PEERS[name](cache)
    make = ccr if name == "ccr" else litellm
    return make(installed, workdir, upstream, port)
