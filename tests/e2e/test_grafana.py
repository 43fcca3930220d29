"""A real Prometheus scraping a served gateway under faults: every dashboard panel answers."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.conftest import FakeUpstream, closed_port_url, gateway_config
from tests.e2e.serving import free_port, gateway, until
from tests.fake_upstream import anthropic_message, anthropic_stream
from tests.test_grafana import HIT_RATIO, as_grafana_sends, panel_queries

ROOT = Path(__file__).resolve().parent.parent


PROMETHEUS = shutil.which("prometheus")


@contextmanager
def prometheus(target: str, tmp_path: Path) -> Iterator[httpx.Client]:
    assert PROMETHEUS is not None
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "250ms", "scrape_timeout": "200ms"},
                "scrape_configs": [
                    {"job_name": "routatic", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    port = free_port()
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
    try:

        def ready() -> bool:
            try:
                return client.get("/-/ready").status_code == 200
            except httpx.TransportError:
                return False

        until(ready, what="Prometheus to be ready", process=process)
        yield client
    finally:
        client.close()
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def _query(client: httpx.Client, expr: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/query", params={"query": expr})
    assert response.status_code == 200, (expr, response.text)
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def _scalar(client: httpx.Client, expr: str) -> float:
    result = _query(client, expr)
    return float(result[0]["value"][1]) if result else 0.0


# What the good provider reports: 60 of its 80 input tokens read from its prompt cache.
CACHED = {"input_tokens": 10, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 10}


def _cached_answers(model: str) -> list[dict[str, Any]]:
    """An unstreamed and a streamed answer whose usage reports CACHED, in _load's order."""
    message = {**anthropic_message(model), "usage": {**CACHED, "output_tokens": 7}}
    events = anthropic_stream(model)
    start = json.loads(events[0].split("data: ", 1)[1])
    start["message"]["usage"] = {**CACHED, "output_tokens": 1}
    events[0] = f"event: message_start\ndata: {json.dumps(start)}\n\n"
    return [{"status": 200, "json": message}, {"sse": events}] * 2


SCRAPES = 'count_over_time(up{job="routatic"}[10m])'


TOTAL = "sum(routatic_requests_total)"


def _more_scrapes(client: httpx.Client, count: int = 2) -> None:
    before = _scalar(client, SCRAPES)
    _reaches(client, SCRAPES, before + count, "scrape the gateway")


def _reaches(client: httpx.Client, expr: str, value: float, what: str) -> None:
    """Waits for Prometheus (its own scrape clock, not ours) to bring `expr` to `value`."""
    until(lambda: _scalar(client, expr) >= value, what=f"Prometheus to {what}")


def _faulty_config(upstream: FakeUpstream) -> tuple[Any, dict[str, str]]:
    prefixes = {name: upstream.provider() for name in ("flaky", "keyed", "good")}
    config = gateway_config(
        {
            "flaky": {"protocol": "anthropic", "base_url": upstream.url(prefixes["flaky"]), "auth": "none"},
            "keyed": {"protocol": "anthropic", "base_url": upstream.url(prefixes["keyed"]), "keys": ["sk-keyed-000001"]},
            "good": {"protocol": "anthropic", "base_url": upstream.url(prefixes["good"]), "auth": "none"},
            "dead": {"protocol": "anthropic", "base_url": closed_port_url(), "auth": "none"},
        },
        [
            {"match": "claude-*", "chain": ["flaky/{model}", "keyed/{model}", "good/{model}"]},
            {"match": "dead-*", "chain": ["dead/{model}"]},
        ],
    )  # fmt: skip
    return config, prefixes


def _load(url: str) -> int:
    """A short burst: served, streamed, fallen back, short-circuited and failing requests."""
    body = {"max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    sent = 0
    with httpx.Client(base_url=url, timeout=10) as client:
        for model, stream in [("claude-x", False), ("claude-x", True), ("dead-x", False)] * 2:
            client.post("/v1/messages", json={**body, "model": model, "stream": stream})
            sent += 1
    return sent


@pytest.mark.skipif(
    PROMETHEUS is None,
    reason="no prometheus binary on PATH: apt-get install -y prometheus (.ci/run does)",
)
def test_prometheus_scraping_a_gateway_under_faults_answers_every_panel(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    config, prefixes = _faulty_config(upstream)
    # Overloaded on the call and on its retry: the breaker opens.
    upstream.script(
        prefixes["flaky"], *[{"status": 529, "body": '{"type":"error","error":{}}'}] * 2
    )
    upstream.script(prefixes["keyed"], {"status": 401, "body": '{"type":"error","error":{}}'})
    with gateway(config, registry=CollectorRegistry()) as url:
        target = url.removeprefix("http://")
        with prometheus(target, tmp_path) as client:
            sent = 0
            for _ in range(2):  # two bursts, each seen by scrapes before and after it
                upstream.script(prefixes["good"], *_cached_answers("claude-x"))
                _more_scrapes(client)
                sent += _load(url)
                _reaches(client, TOTAL, sent, "see every request")
            _more_scrapes(client)

            empty, ratios = [], {}
            for dashboard, title, expr in panel_queries():
                result = _query(client, as_grafana_sends(expr))
                values = [float(sample["value"][1]) for sample in result]
                if not any(math.isfinite(value) for value in values):
                    empty.append(f"{dashboard}: {title}: {expr} -> {values}")
                if title == HIT_RATIO:
                    ratios = {s["metric"]["provider"]: float(s["value"][1]) for s in result}
    assert not empty, "panels without data:\n" + "\n".join(empty)
    # cache read over every input token: uncached, read and written
    assert ratios["good"] == pytest.approx(60 / 80)
