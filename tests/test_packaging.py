"""Packaging: what the Docker build context holds, and the README's way to get the request
log when the gateway is mounted in another app."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from fnmatch import fnmatch
from pathlib import Path

from tests.conftest import FakeUpstream

ROOT = Path(__file__).resolve().parent.parent


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path (or a parent) decides."""
    verdict = False
    parts = path.split("/")
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch(p, bare) or fnmatch(p.rsplit("/", 1)[-1], bare) for p in prefixes):
            verdict = not negated
    return verdict


def test_the_docker_context_holds_what_the_image_copies_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = re.findall(r"^COPY (?!--from)(.+?) \S+$", (ROOT / "deploy/Dockerfile").read_text(), re.M)
    for source in " ".join(copied).split():
        assert not ignored(source.rstrip("/"), patterns), source
    assert not ignored("routatic_asgi/app/__init__.py", patterns)
    for private in (".venv/bin/python", ".git/config", "tests/e2e/test_cli.py", "bench/run.py",
                    "routatic_asgi/__pycache__/app.cpython-311.pyc", ".env", "routatic.yaml"):
        assert ignored(private, patterns), private


def test_the_readmes_mounted_request_log_recipe_logs_each_request(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    readme = (ROOT / "README.md").read_text()
    recipe = next(
        block for block in re.findall(r"```python\n(.*?)```", readme, re.S)
        if 'getLogger("routatic_asgi.requests")' in block
    )
    prefix = upstream.provider()
    (tmp_path / "routatic.yaml").write_text(
        f'providers: {{a: {{protocol: anthropic, base_url: "{upstream.url(prefix)}", auth: none}}}}\n'
        'routes: [{match: "*", chain: ["a/{model}"]}]\n'
    )
    host = textwrap.dedent(
        """
        import anyio, httpx
        from starlette.applications import Starlette
        from starlette.routing import Mount
        from routatic_asgi import build_app, load_config

        gateway = build_app(load_config("routatic.yaml"))
        app = Starlette(routes=[Mount("/llm", app=gateway)])

        async def main():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
                body = {"model": "claude-x", "max_tokens": 5, "messages": []}
                response = await client.post("/llm/v1/messages", json=body)
                assert response.status_code == 200, response.text
            await gateway.aclose()

        anyio.run(main)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", recipe + host], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert '"model":"claude-x"' in line and '"status":200' in line
