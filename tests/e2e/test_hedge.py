"""End to end: a stream whose first content is slow is hedged on the next target.

A real gateway in front of the fake provider, whose primary sends its stream's headers and
then nothing. `hedge_after` is set short (50 ms) so nothing waits; the slow call is ended by
the gateway, never by a timer of the test.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import FakeUpstream, gateway_config, request_log
from tests.e2e.serving import gateway
from tests.fault_kit import MODEL, WIRES, Wire, words

PRIMARY = f"primary/{MODEL}"
BACKUP = "backup/backup-model"
SLOW = {"sse": [], "then": "hang"}  # headers at once, first content never


def chain(upstream: FakeUpstream, wire: Wire, **resilience: Any) -> tuple[Any, str, str]:
    primary, backup = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "primary": wire.provider(upstream.url(primary)),
            "backup": wire.provider(upstream.url(backup)),
        },
        [{"match": "*", "chain": ["primary/{model}", BACKUP]}],
        resilience=resilience,
    )
    return config, primary, backup


def ask(url: str, wire: Wire) -> httpx.Response:
    return httpx.post(url + wire.path, json=wire.body(True), timeout=30)


def attempts(line: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(a["target"], a["outcome"], a["reason"]) for a in line["attempts"]]


@pytest.mark.parametrize("wire", WIRES, ids=[w.name for w in WIRES])
def test_a_slow_first_token_is_served_by_the_hedge_and_the_slow_call_cancelled(
    upstream: FakeUpstream, wire: Wire
) -> None:
    config, primary, backup = chain(upstream, wire, hedge_after="50ms")
    upstream.script(primary, SLOW)
    with request_log() as log, gateway(config) as url:
        response = ask(url, wire)
        [line] = log.wait(1)
        metrics = httpx.get(url + "/metrics").text
    assert response.status_code == 200
    assert wire.text(response, True) == words(3)
    assert response.headers["x-routatic-target"] == BACKUP
    assert response.headers["x-routatic-attempts"] == "2"
    assert response.headers["x-routatic-fallback"] == f"{PRIMARY}=hedged"
    assert attempts(line) == [(PRIMARY, "cancelled", "hedged"), (BACKUP, "success", "hedged")]
    assert line["attempts"][1]["via"] == "hedged"
    # The slow call's connection was closed by the gateway, not left to run out.
    [slow] = upstream.disconnected(primary)
    assert "disconnected_at" in slow
    assert len(upstream.calls(backup)) == 1
    assert (
        'routatic_fallbacks_total{from_provider="primary",reason="hedged",to_provider="backup"} 1.0'
        in metrics
    )


def test_a_prompt_first_token_starts_no_hedge(upstream: FakeUpstream) -> None:
    wire = WIRES[0]
    config, primary, backup = chain(upstream, wire, hedge_after="50ms")
    with gateway(config) as url:
        response = ask(url, wire)
    assert wire.text(response, True) == words(3)
    assert response.headers["x-routatic-target"] == PRIMARY
    assert response.headers["x-routatic-attempts"] == "1"
    assert len(upstream.calls(primary)) == 1 and upstream.calls(backup) == []


def test_hedging_is_off_by_default_and_first_byte_timeout_decides(upstream: FakeUpstream) -> None:
    wire = WIRES[0]
    config, primary, backup = chain(upstream, wire, first_byte_timeout="200ms")
    assert config.resilience.hedge_after is None
    upstream.script(primary, SLOW)
    with request_log() as log, gateway(config) as url:
        response = ask(url, wire)
        [line] = log.wait(1)
    assert wire.text(response, True) == words(3)
    assert response.headers["x-routatic-target"] == BACKUP
    assert "hedged" not in response.headers["x-routatic-fallback"]
    assert all(a.get("via") is None for a in line["attempts"])
    assert attempts(line)[0][:2] == (PRIMARY, "transient")
    assert len(upstream.calls(backup)) == 1
