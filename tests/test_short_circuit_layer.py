"""`AuthShortCircuit` on its own: raw ASGI around a scripted inner app, on the fake clock.

The inner app plays the upstream's outcomes (tests/scripted.py); each test drives attempts
through the layer, as the router would, and checks what it passed on, what it settled, which
key each call carried, what it remembered about the key and what it announced.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from routatic_asgi.attempt import Credential
from routatic_asgi.classify import SUCCESS, Kind, Outcome, Reason
from routatic_asgi.config import ProviderConfig
from routatic_asgi.keyring import Keyring
from routatic_asgi.short_circuit import AuthShortCircuit
from routatic_asgi.state import MemoryStore
from routatic_asgi.transitions import Board, Transition
from tests.fake_clock import NOW, FakeClock
from tests.scripted import REJECTED, USED_UP, Scripted, call, target

pytestmark = pytest.mark.anyio

STALE, FRESH = "sk-zen-stale-0001", "sk-zen-fresh-0002"
ZEN = target(secret=STALE)
CLIENT = replace(target("anthropic", "claude-x", index=None), passthrough=True)
CLIENT_KEY = [(b"x-api-key", b"sk-ant-client-0001")]
OTHER_CLIENT_KEY = [(b"x-api-key", b"sk-ant-client-0002")]


class Layer:
    """The layer around a scripted upstream; `printed` is what `key_command` prints (None: the
    provider has no key_command)."""

    def __init__(self, *outcomes: Outcome, printed: str | None = None) -> None:
        self.clock = FakeClock()
        self.inner = Scripted().play(*outcomes)
        self.runs = 0
        self.heard: list[Transition] = []
        board = Board.for_credentials()
        board.listeners.append(self.heard.append)

        async def run(command: str, limit: float) -> str | None:
            self.runs += 1
            return printed

        command = {"key_command": "print-key"} if printed is not None else {}
        zen = {"protocol": "anthropic", "base_url": "http://zen.test", "keys": [STALE], **command}
        keyring = Keyring({"zen": ProviderConfig.model_validate(zen)}, run=run, clock=self.clock)
        self.layer = AuthShortCircuit(
            self.inner,
            store=MemoryStore(clock=self.clock),
            keyring=keyring,
            quota_cooldown=3600,
            quota_recheck=3600,
            clock=self.clock,
            board=board,
        )

    def keys(self) -> list[str | None]:
        """The key each upstream call carried."""
        return [t.credential.secret if t.credential else None for t in self.inner.calls]

    async def state(self) -> str:
        [row] = await self.layer.status([Credential("zen", 0, STALE)])
        return str(row["state"])

    def announced(self) -> list[tuple[str, str, bool]]:
        return [(t.subject.name, t.state, t.here) for t in self.heard]


async def test_a_rejected_key_is_skipped_from_then_on_without_a_call() -> None:
    layer = Layer(REJECTED)
    rejected = await call(layer.layer, ZEN)
    assert rejected.outcome == REJECTED and rejected.sent[0]["status"] == 401  # passed on
    skipped = await call(layer.layer, ZEN)
    assert skipped.outcome == Outcome(Kind.SKIPPED, Reason.CREDENTIAL_AUTH)
    assert skipped.sent == [] and layer.keys() == [STALE]
    assert await layer.state() == "bad"
    assert layer.announced() == [("zen#0", "bad", True)]


async def test_a_used_up_key_cools_until_its_reset() -> None:
    layer = Layer(replace(USED_UP, reset_at=NOW + 600))
    await call(layer.layer, ZEN)
    layer.clock.now += 100
    skipped = await call(layer.layer, ZEN)
    assert skipped.outcome == Outcome(Kind.SKIPPED, Reason.CREDENTIAL_EXHAUSTED, retry_after=500)
    assert await layer.state() == "cooling"
    layer.clock.now += 500
    assert (await call(layer.layer, ZEN)).outcome.kind is Kind.SUCCESS
    assert layer.keys() == [STALE, STALE]
    # The mark lapsed by itself: the next look at the key announces it ok, learned.
    assert layer.announced() == [("zen#0", "cooling", True), ("zen#0", "ok", False)]


async def test_a_success_that_used_the_last_request_cools_the_key() -> None:
    layer = Layer(SUCCESS)
    layer.inner.headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2027-01-15T08:00:30Z",  # NOW + 30 s
    }
    served = await call(layer.layer, ZEN)
    assert served.outcome.kind is Kind.SUCCESS and len(served.sent) == 3
    skipped = await call(layer.layer, ZEN)
    assert skipped.outcome.reason == Reason.CREDENTIAL_EXHAUSTED
    assert skipped.outcome.retry_after == 30


async def test_a_refreshed_key_is_an_announced_retry_and_the_401_never_leaves() -> None:
    layer = Layer(REJECTED, SUCCESS, printed=FRESH)
    heard: list[str | None] = []
    served = await call(
        layer.layer, ZEN, listener=lambda a: heard.append(a.outcome and a.outcome.reason)
    )
    assert layer.keys() == [STALE, FRESH] and layer.runs == 1
    assert served.outcome.kind is Kind.SUCCESS and served.attempt.retried == [REJECTED]
    assert heard == ["auth_rejected", None, "ok"]  # settled, retried, settled again
    assert [m.get("status") for m in served.sent] == [200, None, None]  # no 401 passed on
    assert layer.announced() == [("zen#0", "bad", True)]  # the stale key was marked
    [current] = await layer.layer.status([])  # the fresh key is zen#0 now, and clean
    assert (current["key"], current["state"]) == ("…0002", "ok")


async def test_a_refresh_that_prints_nothing_passes_the_401_on_as_it_came() -> None:
    layer = Layer(REJECTED, printed="")
    rejected = await call(layer.layer, ZEN)
    assert rejected.outcome == REJECTED and rejected.attempt.retried == []
    assert [m.get("status") for m in rejected.sent] == [401, None]
    assert layer.keys() == [STALE] and layer.runs == 1


async def test_a_clients_own_rejected_key_is_never_marked() -> None:
    layer = Layer(REJECTED, REJECTED)
    for _ in range(2):
        assert (await call(layer.layer, CLIENT, headers=CLIENT_KEY)).outcome == REJECTED
    assert len(layer.inner.calls) == 2 and layer.heard == []


async def test_a_clients_used_up_key_cools_that_client_only() -> None:
    layer = Layer(USED_UP)
    await call(layer.layer, CLIENT, headers=CLIENT_KEY)
    skipped = await call(layer.layer, CLIENT, headers=CLIENT_KEY)
    assert skipped.outcome.reason == Reason.CREDENTIAL_EXHAUSTED
    other = await call(layer.layer, CLIENT, headers=OTHER_CLIENT_KEY)
    assert other.outcome.kind is Kind.SUCCESS and len(layer.inner.calls) == 2
    assert layer.announced() == [("anthropic#client", "cooling", True)]


async def test_a_key_used_up_for_long_is_rechecked_by_one_request() -> None:
    layer = Layer(replace(USED_UP, reset_at=NOW + 86400))
    await call(layer.layer, ZEN)
    layer.clock.now += 3600  # quota_recheck: one real request tries the key
    recheck = await call(layer.layer, ZEN)
    assert recheck.outcome.kind is Kind.SUCCESS and recheck.attempt.probe
    assert await layer.state() == "ok"  # the limit was lifted early: usable again
    assert layer.announced()[-1] == ("zen#0", "ok", True)
