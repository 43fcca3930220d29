"""End to end: breakers, rejected and used-up keys, key pools and shared state, counted in
upstream calls.

A real gateway on a loopback port with a fake clock, in front of the fake provider process.
The last test runs two `routatic-asgi serve` processes that share a Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FakeUpstream, gateway_config
from tests.e2e.serving import gateway, serve
from tests.fake_clock import NOW, FakeClock

MODEL = "claude-sonnet-4-6"
REQUEST = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**REQUEST, "stream": True}
BAD = "sk-bad-key-00000001"
GOOD = "sk-good-key-0000002"
REDIS_URL = os.environ.get("ROUTATIC_TEST_REDIS_URL")


def error(status: int, kind: str = "api_error", **extra: Any) -> dict[str, Any]:
    body = {"type": "error", "error": {"type": kind, "message": "boom", **extra}}
    return {"status": status, "body": json.dumps(body)}


def keys_sent(upstream: FakeUpstream, prefix: str) -> list[str]:
    found = []
    for call in upstream.calls(prefix):
        headers = dict(call["headers"])
        found.append(headers.get("x-api-key") or headers.get("authorization", "")[7:])
    return found


async def concurrently(url: str, count: int, body: dict[str, Any]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        return list(
            await asyncio.gather(*(client.post("/v1/messages", json=body) for _ in range(count)))
        )


async def concurrently_with_a_slow_probe(
    url: str, upstream: FakeUpstream, primary: str, clock: FakeClock
) -> list[httpx.Response]:
    """50 concurrent streams; once the probe hangs on `primary`, its first byte is overdue."""
    async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=50)) as client:
        pending = [asyncio.create_task(client.post("/v1/messages", json=STREAM)) for _ in range(50)]
        answered = asyncio.as_completed(pending)
        for _ in range(49):  # the 49 that skip the probing primary answer from the backup
            await next(answered)
        # The fake provider is another process: its record of calls is polled, not awaited.
        while len(upstream.calls(primary)) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0)
        clock.now += 1  # past the first-byte timeout: the probe falls back too
        return list(await asyncio.gather(*pending))


def primary_and_backup(upstream: FakeUpstream, **resilience: Any) -> tuple[Any, str, str]:
    primary, backup = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "primary": {"protocol": "anthropic", "base_url": upstream.url(primary), "keys": [GOOD]},
            "backup": {"protocol": "anthropic", "base_url": upstream.url(backup), "keys": [GOOD]},
        },
        [{"match": "*", "chain": ["primary/{model}", "backup/backup-model"]}],
        resilience=resilience,
    )
    return config, primary, backup


def test_one_probe_under_fifty_concurrent_requests(upstream: FakeUpstream) -> None:
    config, primary, backup = primary_and_backup(upstream, first_byte_timeout="500ms")
    clock = FakeClock()
    upstream.script(primary, error(500), error(500), {"hang": True})
    with gateway(config, clock=clock) as url:
        assert httpx.post(f"{url}/v1/messages", json=REQUEST).status_code == 200
        clock.now += 40  # the ~30 s cooldown is over: half-open
        responses = asyncio.run(concurrently_with_a_slow_probe(url, upstream, primary, clock))
        status = httpx.get(f"{url}/status").json()
    assert [r.status_code for r in responses] == [200] * 50
    # The failure and its retry, which opened it, and one probe.
    assert len(upstream.calls(primary)) == 3
    assert len(upstream.calls(backup)) == 51
    fallbacks = [r.headers["x-routatic-fallback"] for r in responses]
    assert sum("first_byte_timeout" in f for f in fallbacks) == 1
    skipped = sum("breaker_probing" in f or "breaker_open" in f for f in fallbacks)
    assert skipped == 49
    backup_breaker, breaker = status["breakers"]  # sorted by target
    assert breaker["target"] == f"primary/{MODEL}#0"
    assert breaker["state"] == "open" and breaker["consecutive_failures"] == 3
    # A target with a fixed model is listed even while its breaker is closed.
    assert backup_breaker["target"] == "backup/backup-model#0"
    assert backup_breaker["state"] == "closed" and backup_breaker["until"] is None


def test_a_bad_key_on_a_provider_with_two_models_costs_one_call(upstream: FakeUpstream) -> None:
    zen, backup = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "zen": {"protocol": "openai", "base_url": upstream.url(zen) + "/v1", "keys": [BAD]},
            "backup": {"protocol": "anthropic", "base_url": upstream.url(backup), "keys": [GOOD]},
        },
        [{"match": "*", "chain": ["zen/model-one", "zen/model-two", "backup/backup-model"]}],
    )
    upstream.script(zen, error(401, "authentication_error"))
    with gateway(config) as url:
        first = httpx.post(f"{url}/v1/messages", json=REQUEST)
        assert len(upstream.calls(zen)) == 1
        second = httpx.post(f"{url}/v1/messages", json=REQUEST)
        assert len(upstream.calls(zen)) == 1
    for response in (first, second):
        assert response.status_code == 200
        assert response.headers["x-routatic-target"] == "backup/backup-model"
    assert "zen/model-two=credential_auth" in first.headers["x-routatic-fallback"]
    assert second.headers["x-routatic-fallback"] == (
        "zen/model-one=credential_auth, zen/model-two=credential_auth"
    )


def test_a_usage_limited_provider_is_skipped_until_its_reset(upstream: FakeUpstream) -> None:
    config, primary, _ = primary_and_backup(upstream, quota_recheck="10h")  # no recheck before
    clock = FakeClock()
    limited = error(429, "rate_limit_error")
    limited["headers"] = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-reset": str(int(NOW + 5 * 3600)),
    }
    upstream.script(primary, limited)
    with gateway(config, clock=clock) as url:
        answers = [httpx.post(f"{url}/v1/messages", json=REQUEST)]
        clock.now += 5 * 3600 - 1
        answers.append(httpx.post(f"{url}/v1/messages", json=REQUEST))
        assert len(upstream.calls(primary)) == 1
        clock.now += 1
        answers.append(httpx.post(f"{url}/v1/messages", json=REQUEST))
    assert [a.headers["x-routatic-target"] for a in answers] == [
        "backup/backup-model",
        "backup/backup-model",
        f"primary/{MODEL}",
    ]
    assert answers[1].headers["x-routatic-fallback"] == f"primary/{MODEL}=credential_exhausted"
    assert len(upstream.calls(primary)) == 2


def test_a_clients_used_up_subscription_is_skipped_for_that_client_until_its_reset(
    upstream: FakeUpstream,
) -> None:
    anthropic, backup = upstream.provider(), upstream.provider()
    config = gateway_config(
        {
            "anthropic": {
                "protocol": "anthropic",
                "base_url": upstream.url(anthropic),
                "auth": "passthrough",
            },
            "backup": {"protocol": "anthropic", "base_url": upstream.url(backup), "keys": [GOOD]},
        },
        [{"match": "*", "chain": ["anthropic/{model}", "backup/backup-model"]}],
    )
    clock = FakeClock()
    limited = error(429, "rate_limit_error")
    limited["headers"] = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-reset": str(int(NOW + 3600)),
    }
    upstream.script(anthropic, limited)
    alice = {"authorization": "Bearer sk-ant-oat01-alice"}
    bob = {"authorization": "Bearer sk-ant-oat01-bob"}
    with gateway(config, clock=clock) as url:
        first = httpx.post(f"{url}/v1/messages", json=REQUEST, headers=alice)
        again = httpx.post(f"{url}/v1/messages", json=REQUEST, headers=alice)
        other = httpx.post(f"{url}/v1/messages", json=REQUEST, headers=bob)
        clock.now += 3600
        reset = httpx.post(f"{url}/v1/messages", json=REQUEST, headers=alice)
    assert [r.headers["x-routatic-target"] for r in (first, again, other, reset)] == [
        "backup/backup-model",
        "backup/backup-model",
        f"anthropic/{MODEL}",
        f"anthropic/{MODEL}",
    ]
    assert again.headers["x-routatic-fallback"] == f"anthropic/{MODEL}=credential_exhausted"
    assert keys_sent(upstream, anthropic) == [
        "sk-ant-oat01-alice",
        "sk-ant-oat01-bob",
        "sk-ant-oat01-alice",
    ]


def test_a_pool_of_bad_and_good_keys_serves_from_the_good_one(upstream: FakeUpstream) -> None:
    zen = upstream.provider()
    config = gateway_config(
        {
            "zen": {
                "protocol": "anthropic",
                "base_url": upstream.url(zen),
                "keys": [BAD, GOOD],
                "strategy": "ordered",
            }
        },
        [{"match": "*", "chain": ["zen/{model}"]}],
    )
    upstream.script(zen, error(401, "authentication_error"))  # the first call carries BAD
    with gateway(config) as url:
        responses = [httpx.post(f"{url}/v1/messages", json=REQUEST) for _ in range(4)]
        credentials = httpx.get(f"{url}/status").json()["credentials"]
    assert [r.status_code for r in responses] == [200] * 4
    assert keys_sent(upstream, zen) == [BAD, GOOD, GOOD, GOOD, GOOD]
    assert [(c["index"], c["key"], c["state"]) for c in credentials] == [
        (0, "…0001", "bad"),
        (1, "…0002", "ok"),
    ]


def test_every_target_cooling_answers_at_once_with_the_soonest_recovery(
    upstream: FakeUpstream,
) -> None:
    config, primary, backup = primary_and_backup(upstream)
    clock = FakeClock()
    upstream.script(primary, error(402, "billing_error", resets_in_seconds=600))
    upstream.script(backup, {**error(503), "headers": {"retry-after": "90"}})
    with gateway(config, clock=clock) as url:
        httpx.post(f"{url}/v1/messages", json=REQUEST)
        clock.now += 30
        cooling = httpx.post(f"{url}/v1/messages", json=REQUEST)
    assert len(upstream.calls(primary)) == len(upstream.calls(backup)) == 1
    assert cooling.status_code == 429
    assert cooling.headers["retry-after"] == "60"  # the backup's 90 s, 30 s gone
    assert cooling.headers["x-routatic-attempts"] == "0"
    assert cooling.json()["error"]["type"] == "rate_limit_error"


# --- two processes, one Redis -------------------------------------------------------------


def test_two_processes_sharing_redis_agree_and_probe_once(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    if not REDIS_URL:
        pytest.skip("ROUTATIC_TEST_REDIS_URL is not set: no Redis for two processes to share")
    import redis

    prefix = f"routatic-test-{uuid.uuid4().hex}:"
    separator = "&" if "?" in REDIS_URL else "?"
    primary, backup = upstream.provider(), upstream.provider()
    config = tmp_path / "routatic.yaml"
    config.write_text(
        f"""
providers:
  primary: {{protocol: anthropic, base_url: "{upstream.url(primary)}", keys: ["{GOOD}"]}}
  backup: {{protocol: anthropic, base_url: "{upstream.url(backup)}", keys: ["{GOOD}"]}}
routes:
  - match: "*"
    chain: ["primary/{{model}}", "backup/backup-model"]
resilience:
  cooldown: {{base: 10m, max: 15m}}
  breaker: {{failures: 1, probe_max: 15m}}
  retry: {{attempts: 0}}
  first_byte_timeout: 500ms
state: "{REDIS_URL}{separator}key_prefix={prefix}"
"""
    )
    upstream.script(primary, error(500), {"hang": True})
    shared = redis.Redis.from_url(REDIS_URL)
    try:
        with serve("--config", str(config)) as first, serve("--config", str(config)) as second:
            one, two = first.url, second.url
            opened = httpx.post(f"{one}/v1/messages", json=REQUEST)
            assert opened.headers["x-routatic-target"] == "backup/backup-model"
            seen = httpx.post(f"{two}/v1/messages", json=REQUEST)
            assert seen.headers["x-routatic-fallback"] == f"primary/{MODEL}=breaker_open"
            assert len(upstream.calls(primary)) == 1
            breakers = httpx.get(f"{two}/status").json()["breakers"]
            assert [b["state"] for b in breakers] == ["closed", "open"]  # backup, primary
            # End the cooldown in the shared record, as if ten minutes had passed.
            key = f"{prefix}rec:breaker:primary/{MODEL}#0"
            record = json.loads(shared.get(key) or b"{}")
            record["until"] = record["since"] - 1
            shared.set(key, json.dumps(record))

            async def both() -> list[httpx.Response]:
                a, b = await asyncio.gather(
                    concurrently(one, 20, STREAM), concurrently(two, 20, STREAM)
                )
                return a + b

            responses = asyncio.run(both())
            ready = httpx.get(f"{one}/readyz").json()
    finally:
        for key in shared.scan_iter(match=f"{prefix}*"):
            shared.delete(key)
        shared.close()
    assert [r.status_code for r in responses] == [200] * 40
    assert len(upstream.calls(primary)) == 2  # the failure, and one probe between them
    assert ready["state"] == "redis" and ready["state_degraded"] is False
