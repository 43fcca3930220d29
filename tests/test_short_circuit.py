"""The credential short-circuit: what an outcome says about a key, then the layer in the chain."""

from __future__ import annotations

import shlex
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from routatic_asgi import parse_config
from routatic_asgi.attempt import Credential, Target
from routatic_asgi.classify import Kind, Outcome
from routatic_asgi.config import Config, ProviderConfig
from routatic_asgi.keyring import Keyring, run_key_command
from routatic_asgi.marks import credential_record
from routatic_asgi.state import MemoryStore, Record
from tests.fake_clock import NOW, FakeClock
from tests.resilience_kit import Upstreams, app_for, ask, client_for, error, healthy, respond

BAD = "sk-bad-key-00000001"
GOOD = "sk-good-key-0000002"
FRESH = "sk-fresh-key-000003"

# --- pure -----------------------------------------------------------------------------------


def test_a_rejected_key_is_bad_until_cleared() -> None:
    record = credential_record(Outcome(Kind.AUTH, "auth_rejected", 401), {}, NOW, 3600)
    assert record == Record("auth_rejected", NOW, None)


def test_a_used_up_key_cools_until_its_reset_else_the_quota_cooldown() -> None:
    stated = Outcome(Kind.EXHAUSTED, "usage_limit", 429, reset_at=NOW + 600)
    assert credential_record(stated, {}, NOW, 3600) == Record("usage_limit", NOW, NOW + 600)
    unstated = Outcome(Kind.EXHAUSTED, "usage_limit", 402)
    assert credential_record(unstated, {}, NOW, 3600) == Record("usage_limit", NOW, NOW + 3600)
    past = Outcome(Kind.EXHAUSTED, "usage_limit", 429, reset_at=NOW - 5)
    assert credential_record(past, {}, NOW, 60) == Record("usage_limit", NOW, NOW + 60)


def test_a_success_that_used_the_last_request_cools_the_key() -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2027-01-15T08:00:30Z",
    }
    record = credential_record(Outcome(Kind.SUCCESS, "ok"), headers, NOW, 3600)
    assert record is not None and record.reason == "depleted"
    assert record.until == NOW + 30  # NOW is 2027-01-15T08:00:00Z


@pytest.mark.parametrize("kind", [Kind.SUCCESS, Kind.TRANSIENT, Kind.CLIENT, Kind.UNFIT])
def test_other_outcomes_say_nothing_about_the_key(kind: Kind) -> None:
    assert credential_record(Outcome(kind, "x"), {}, NOW, 3600) is None


pytestmark = pytest.mark.anyio



def provider(command: str | None = None, **options: Any) -> ProviderConfig:
    return ProviderConfig.model_validate(
        {"protocol": "openai", "base_url": "http://z.test/v1", "key_command": command, **options}
    )


async def test_concurrent_rejections_run_the_key_command_once() -> None:
    runs: list[str] = []

    async def run(command: str, limit: float) -> str:
        runs.append(command)
        await anyio.lowlevel.checkpoint()
        return FRESH

    keyring = Keyring({"z": provider("print-key", keys=[BAD])}, run=run)
    stale = Credential("z", 0, BAD)
    results: list[Credential | None] = []

    async def refresh() -> None:
        results.append(await keyring.refresh("z", stale))

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(refresh)
    assert runs == ["print-key"]
    assert {r.secret if r else None for r in results} == {FRESH}


async def test_a_command_that_prints_the_same_key_gives_nothing_new() -> None:
    async def run(command: str, limit: float) -> str:
        return BAD

    keyring = Keyring({"z": provider("print-key", keys=[BAD])}, run=run)
    assert await keyring.refresh("z", Credential("z", 0, BAD)) is None


async def test_the_key_command_runs_in_a_shell_with_a_time_limit() -> None:
    command = f"{shlex.quote(sys.executable)} -c 'print(\"{FRESH}\")'"
    assert await run_key_command(command, 10) == FRESH
    assert await run_key_command("exit 3", 10) is None
    slow = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(30)'"
    with anyio.fail_after(5):
        assert await run_key_command(slow, 0.2) is None


# --- in the chain ---------------------------------------------------------------------------


def config(providers: dict[str, Any], chain: list[str], **env: str) -> Config:
    return parse_config(
        {
            "providers": providers,
            "routes": [{"match": "*", "chain": chain}],
            "resilience": {"quota_cooldown": "1h"},
        },
        env=env,
    )


def openai(host: str, **options: Any) -> dict[str, Any]:
    return {"protocol": "openai", "base_url": f"http://{host}/v1", **options}


class Rig:
    def __init__(self, cfg: Config) -> None:
        self.clock = FakeClock()
        self.upstreams = Upstreams()
        self.app = app_for(cfg, self.upstreams, self.clock, store=MemoryStore(clock=self.clock))
        self.client = client_for(self.app)

    async def credentials(self) -> list[dict[str, Any]]:
        response = await self.client.get("/status")
        rows: list[dict[str, Any]] = response.json()["credentials"]
        return rows

    async def close(self) -> None:
        await self.client.aclose()
        await self.app.aclose()


@pytest.fixture
async def rigs() -> AsyncIterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        await rig.close()


def rig_for(rigs: list[Rig], cfg: Config) -> Rig:
    rigs.append(Rig(cfg))
    return rigs[-1]


async def test_a_bad_key_costs_one_call_for_every_model_of_its_provider(rigs: list[Rig]) -> None:
    rig = rig_for(
        rigs,
        config(
            {"zen": openai("zen.test", keys=[BAD]), "b": openai("b.test", keys=[GOOD])},
            ["zen/model-one", "zen/model-two", "b/backup"],
        ),
    )
    rig.upstreams.script("zen.test", 401)
    first = await ask(rig.client)
    assert first.status_code == 200 and first.headers["x-routatic-target"] == "b/backup"
    assert "zen/model-two=credential_auth" in first.headers["x-routatic-fallback"]
    assert rig.upstreams.count("zen.test") == 1
    second = await ask(rig.client)
    assert second.status_code == 200
    assert rig.upstreams.count("zen.test") == 1
    [zen, _] = await rig.credentials()
    assert zen["state"] == "bad" and zen["reason"] == "auth_rejected" and zen["until"] is None


async def test_every_key_rejected_answers_401_naming_provider_and_variable(
    rigs: list[Rig],
) -> None:
    providers = {"zen": openai("zen.test", keys=["${OPENCODE_API_KEY}"])}
    rig = rig_for(rigs, config(providers, ["zen/a", "zen/b"], OPENCODE_API_KEY=BAD))
    rig.upstreams.script("zen.test", error(401, "invalid api key"))
    for _ in range(2):  # rejected now, then known to be rejected
        response = await ask(rig.client)
        assert response.status_code == 401
        error_body = response.json()["error"]
        assert error_body["type"] == "authentication_error"
        assert error_body["message"] == "provider 'zen' rejected its key (OPENCODE_API_KEY)"
        assert BAD not in response.text
    assert rig.upstreams.count("zen.test") == 1


async def test_a_passthrough_rejection_goes_back_unchanged_and_is_not_remembered(
    rigs: list[Rig],
) -> None:
    providers = {
        "anthropic": {
            "protocol": "anthropic",
            "base_url": "http://anthropic.test",
            "auth": "passthrough",
        },
        "b": openai("b.test", keys=[GOOD]),
    }
    rig = rig_for(rigs, config(providers, ["anthropic/{model}", "b/backup"]))
    rig.upstreams.script("anthropic.test", error(401, "your token expired"), 200)
    first = await ask(rig.client)
    assert first.status_code == 401 and first.json()["error"]["message"] == "your token expired"
    second = await ask(rig.client)
    assert second.headers["x-routatic-target"] == "anthropic/claude-sonnet-4-6"
    assert rig.upstreams.count("b.test") == 0


async def test_a_used_up_key_is_skipped_until_its_reset(rigs: list[Rig]) -> None:
    providers = {"zen": openai("zen.test", keys=[BAD]), "b": openai("b.test", keys=[GOOD])}
    rig = rig_for(rigs, config(providers, ["zen/a", "zen/b", "b/backup"]))
    body = {"error": {"type": "usage_limit_reached", "message": "limit", "resets_in_seconds": 600}}
    rig.upstreams.script("zen.test", respond(429, body))
    await ask(rig.client)
    assert rig.upstreams.count("zen.test") == 1
    [zen, _] = await rig.credentials()
    assert zen["state"] == "cooling" and zen["until"] == NOW + 600
    rig.clock.now += 599
    skipped = await ask(rig.client)
    assert "zen/a=credential_exhausted" in skipped.headers["x-routatic-fallback"]
    assert rig.upstreams.count("zen.test") == 1
    rig.clock.now += 1
    back = await ask(rig.client)
    assert back.headers["x-routatic-target"] == "zen/a"
    assert rig.upstreams.count("zen.test") == 2


async def test_a_used_up_key_without_a_stated_reset_cools_for_the_quota_cooldown(
    rigs: list[Rig],
) -> None:
    rig = rig_for(rigs, config({"zen": openai("zen.test", keys=[BAD])}, ["zen/a"]))
    rig.upstreams.script("zen.test", error(402, "Insufficient balance"))
    assert (await ask(rig.client)).status_code == 402
    rig.clock.now += 60
    cooling = await ask(rig.client)
    assert cooling.status_code == 429
    assert cooling.json()["error"]["type"] == "rate_limit_error"
    assert cooling.headers["retry-after"] == str(3600 - 60)
    assert rig.upstreams.count("zen.test") == 1


async def test_a_success_with_nothing_left_sends_the_next_request_elsewhere(
    rigs: list[Rig],
) -> None:
    providers = {
        "a": {"protocol": "anthropic", "base_url": "http://a.test", "keys": [BAD]},
        "b": openai("b.test", keys=[GOOD]),
    }
    rig = rig_for(rigs, config(providers, ["a/{model}", "b/backup"]))

    async def last_request(request: httpx.Request) -> httpx.Response:
        return healthy(
            request,
            **{
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "2027-01-15T08:01:40Z",
            },
        )

    rig.upstreams.script("a.test", last_request)
    assert rig.clock.now == 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert (await ask(rig.client)).headers["x-routatic-target"] == "a/claude-sonnet-4-6"
    second = await ask(rig.client)
    assert second.headers["x-routatic-target"] == "b/backup"
    assert rig.upstreams.count("a.test") == 1
    rig.clock.now += 100
    assert (await ask(rig.client)).headers["x-routatic-target"] == "a/claude-sonnet-4-6"


async def test_a_pool_of_bad_and_good_keys_serves_from_the_good_one(rigs: list[Rig]) -> None:
    pool = openai("zen.test", keys=[BAD, GOOD], strategy="ordered")
    rig = rig_for(rigs, config({"zen": pool}, ["zen/a"]))

    async def by_key(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == f"Bearer {BAD}":
            return error(401, "invalid key")
        return healthy(request)

    rig.upstreams.script("zen.test", *[by_key] * 10)
    for _ in range(5):
        response = await ask(rig.client)
        assert response.status_code == 200
    assert rig.upstreams.keys("zen.test") == [BAD, GOOD, GOOD, GOOD, GOOD, GOOD]
    bad, good = await rig.credentials()
    assert (bad["index"], bad["state"], good["index"], good["state"]) == (0, "bad", 1, "ok")


async def test_round_robin_rotates_requests_over_a_pool_of_healthy_keys(rigs: list[Rig]) -> None:
    pool = openai("zen.test", keys=[BAD, GOOD, FRESH], strategy="round_robin")
    rig = rig_for(rigs, config({"zen": pool}, ["zen/a"]))
    for _ in range(6):
        await ask(rig.client)
    assert rig.upstreams.keys("zen.test") == [BAD, GOOD, FRESH] * 2


async def test_a_401_runs_the_key_command_and_retries_the_same_target(rigs: list[Rig]) -> None:
    command = f"{shlex.quote(sys.executable)} -c 'print(\"{FRESH}\")'"
    providers = {
        "zen": openai("zen.test", keys=[BAD], key_command=command),
        "b": openai("b.test", keys=[GOOD]),
    }
    rig = rig_for(rigs, config(providers, ["zen/a", "b/backup"]))
    rig.upstreams.script("zen.test", error(401, "token expired"))
    first = await ask(rig.client)
    assert first.status_code == 200 and first.headers["x-routatic-target"] == "zen/a"
    assert "x-routatic-fallback" not in first.headers
    await ask(rig.client)
    assert rig.upstreams.keys("zen.test") == [BAD, FRESH, FRESH]
    assert rig.upstreams.count("b.test") == 0


async def test_a_provider_with_only_a_key_command_gets_its_key_from_it(rigs: list[Rig]) -> None:
    command = f"{shlex.quote(sys.executable)} -c 'print(\"{FRESH}\")'"
    rig = rig_for(rigs, config({"zen": openai("zen.test", key_command=command)}, ["zen/a"]))
    assert (await ask(rig.client)).status_code == 200
    assert rig.upstreams.keys("zen.test") == [FRESH]
    [row] = await rig.credentials()
    assert row["key"] == "…0003" and row["source"] == "providers.zen.key_command"


async def test_status_shows_a_key_only_by_provider_index_and_last_four(rigs: list[Rig]) -> None:
    rig = rig_for(rigs, config({"zen": openai("zen.test", keys=[BAD, GOOD])}, ["zen/a"]))
    response = await rig.client.get("/status")
    assert BAD not in response.text and GOOD not in response.text
    rows = response.json()["credentials"]
    assert [(r["provider"], r["index"], r["key"], r["state"]) for r in rows] == [
        ("zen", 0, "…0001", "ok"),
        ("zen", 1, "…0002", "ok"),
    ]


async def test_a_failed_first_run_waits_before_running_again() -> None:
    runs: list[str] = []
    clock = FakeClock(0.0)

    async def run(command: str, limit: float) -> str | None:
        runs.append(command)
        return None

    keyring = Keyring({"z": provider("print-key")}, run=run, pause=60, clock=clock)
    target = Target("z", "openai", "m", "http://z.test/v1")
    assert await keyring.current(target) is None
    clock.now += 59
    assert await keyring.current(target) is None
    assert len(runs) == 1
    clock.now += 1
    await keyring.current(target)
    assert len(runs) == 2


async def test_a_broken_key_command_answers_401_naming_it(rigs: list[Rig]) -> None:
    rig = rig_for(rigs, config({"zen": openai("zen.test", key_command="exit 1")}, ["zen/a"]))
    response = await ask(rig.client)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == (
        "provider 'zen' rejected its key (providers.zen.key_command)"
    )
    assert rig.upstreams.count("zen.test") == 0


async def test_an_ordered_pool_uses_its_first_healthy_key(rigs: list[Rig]) -> None:
    pool = openai("zen.test", keys=[BAD, GOOD, FRESH], strategy="ordered")
    rig = rig_for(rigs, config({"zen": pool}, ["zen/a"]))
    rig.upstreams.script("zen.test", error(429, "You exceeded your current quota"))
    for _ in range(4):
        assert (await ask(rig.client)).status_code == 200
    assert rig.upstreams.keys("zen.test") == [BAD, GOOD, GOOD, GOOD, GOOD]
