"""Session affinity in routing: key pools, weighted groups, and the failover hold."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from routatic_asgi.attempt import Attempt, Target
from routatic_asgi.classify import SUCCESS, Kind, Outcome
from routatic_asgi.config import load_config, parse_config
from routatic_asgi.errors import ConfigError
from routatic_asgi.routing import Routing
from routatic_asgi.session import Session
from tests.fake_clock import FakeClock

KEYS = ["sk-pool-key-000000a", "sk-pool-key-000000b", "sk-pool-key-000000c"]


def config(chain: list[Any], **resilience: Any) -> Any:
    providers = {
        name: {"protocol": "openai", "base_url": f"http://{name}/v1", "keys": KEYS}
        for name in ("pool", "a", "b", "c")
    }
    return parse_config(
        {
            "providers": providers,
            "routes": [{"match": "*", "chain": chain}],
            "resilience": resilience,
        },
        env={},
    )


def session(n: int) -> Session:
    return Session(f"session-{n}", "x-session-id")


def targets(routing: Routing, who: Session) -> list[Target]:
    return routing.targets(routing.config.routes[0], "m", who)


def first_healthy(routing: Routing, who: Session, bad: set[int] = frozenset()) -> Target:  # type: ignore[assignment]
    """The target the inner layers would serve from: the first whose key is not bad."""
    return next(t for t in targets(routing, who) if t.credential and t.credential.index not in bad)


def test_a_session_keeps_its_key_and_sessions_spread_over_the_pool() -> None:
    routing = Routing(config(["pool/m"]))
    for n in range(20):
        assert len({targets(routing, session(n))[0].key for _ in range(5)}) == 1
    spread = Counter(targets(routing, session(n))[0].key for n in range(600))
    assert set(spread) == {"pool/m#0", "pool/m#1", "pool/m#2"}
    assert all(150 <= count <= 250 for count in spread.values()), spread


def test_a_bad_key_moves_only_its_sessions_and_they_stay_where_they_moved() -> None:
    routing = Routing(config(["pool/m"]))
    before = {n: first_healthy(routing, session(n)).key for n in range(300)}
    after = {n: first_healthy(routing, session(n), bad={1}).key for n in range(300)}
    moved = {n for n in before if before[n] != after[n]}
    assert moved == {n for n in before if before[n] == "pool/m#1"}
    assert 60 <= len(moved) <= 140  # about a third
    assert Counter(after[n] for n in moved).keys() == {"pool/m#0", "pool/m#2"}
    # Later requests of a moved session go where it moved, not elsewhere in the pool.
    again = {n: first_healthy(routing, session(n), bad={1}).key for n in moved}
    assert again == {n: after[n] for n in moved}


def test_a_new_key_takes_only_its_share_of_sessions() -> None:
    three = Routing(config(["pool/m"]))
    four = parse_config(
        {
            "providers": {
                "pool": {
                    "protocol": "openai",
                    "base_url": "http://pool/v1",
                    "keys": [KEYS[2], "sk-pool-key-000000d", *KEYS[:2]],
                },
            },
            "routes": [{"match": "*", "chain": ["pool/m"]}],
        },
        env={},
    )
    bigger = Routing(four)
    secret = {c.index: c.secret for c in bigger.credentials["pool"]}

    def key_of(routing: Routing, n: int) -> str:
        credential = targets(routing, session(n))[0].credential
        assert credential is not None
        return credential.secret if routing is three else secret[credential.index]

    moved = [n for n in range(400) if key_of(three, n) != key_of(bigger, n)]
    assert all(key_of(bigger, n) == "sk-pool-key-000000d" for n in moved)
    assert 60 <= len(moved) <= 140  # about a quarter, all to the new key


@pytest.mark.parametrize("weights", [(3, 1), (5, 3, 2), (1, 1)])
def test_new_sessions_spread_over_a_group_by_weight(weights: tuple[int, ...]) -> None:
    names = ["a", "b", "c"][: len(weights)]
    group = [{"target": f"{name}/m", "weight": w} for name, w in zip(names, weights, strict=True)]
    routing = Routing(config([{"group": group}, "pool/last"]))
    firsts = Counter(targets(routing, session(n))[0].provider for n in range(1000))
    for name, weight in zip(names, weights, strict=True):
        share = firsts[name] / 1000
        assert abs(share - weight / sum(weights)) <= 0.05, (name, share)


def test_a_failed_group_members_sessions_move_within_the_group_before_the_chain() -> None:
    chain = [{"group": [{"target": "a/m", "weight": 3}, "b/m"]}, "pool/last"]
    routing = Routing(config(chain))
    for n in range(50):
        order = targets(routing, session(n))
        providers = [t.provider for t in order]  # each member over its pool of three keys
        member, other = providers[0], providers[3]
        assert {member, other} == {"a", "b"}  # its member, the other member, then the chain
        assert providers == [member] * 3 + [other] * 3 + ["pool"] * 3
        assert targets(routing, session(n)) == order  # it stays on its member


def test_round_robin_and_ordered_pools_ignore_the_session() -> None:
    ordered = config(["pool/m"])
    providers = {**ordered.model_dump()["providers"]}
    for strategy, expected in (("ordered", [0, 0, 0]), ("round_robin", [0, 1, 2])):
        data = {
            "providers": {"pool": {**providers["pool"], "keys": KEYS, "strategy": strategy}},
            "routes": [{"match": "*", "chain": ["pool/m"]}],
        }
        routing = Routing(parse_config(data, env={}))
        firsts = [targets(routing, session(n))[0].credential.index for n in range(3)]  # type: ignore[union-attr]
        assert firsts == expected


def test_a_group_reads_well_in_yaml_and_bad_groups_are_named(tmp_path: Any) -> None:
    path = tmp_path / "routatic.yaml"
    path.write_text(
        "providers:\n"
        "  a: {protocol: openai, base_url: 'http://a/v1', auth: none}\n"
        "  b: {protocol: openai, base_url: 'http://b/v1', auth: none}\n"
        "routes:\n"
        "  - match: '*'\n"
        "    chain:\n"
        "      - group:\n"
        "          - {target: a/{model}, weight: 3}\n"
        "          - b/glm-5\n"
        "      - a/small\n"
    )
    step = load_config(path).routes[0].chain[0]
    assert [(m.target, m.weight) for m in step.group] == [("a/{model}", 3.0), ("b/glm-5", 1.0)]  # type: ignore[union-attr]
    for group, where, words in (
        ([{"target": "a/m", "weight": 0}], "routes.0.chain.0.group.0.weight", "greater than 0"),
        ([{"target": "nobody/m"}], "routes.0.chain", "'nobody'"),
        (["a-model"], "routes.0.chain.0.group.0.target", "provider/model"),
        ([], "routes.0.chain.0.group", "at least 1"),
    ):
        with pytest.raises(ConfigError) as error:
            config([{"group": group}])
        assert f": {where}: " in str(error.value) and words in str(error.value)


def settle(target: Target, outcome: Outcome) -> Attempt:
    attempt = Attempt(target, 1, False)
    attempt.settle(outcome)
    return attempt


def test_a_held_session_stays_on_its_fallback_until_the_primary_has_been_quiet() -> None:
    clock = FakeClock()
    routing = Routing(config(["a/m", "b/m"], affinity={"hold": "5m"}), clock=clock)
    who = session(7)
    primary, fallback = targets(routing, who)[0], targets(routing, who)[3]
    assert (primary.provider, fallback.provider) == ("a", "b")
    # The primary fails: the session is served by the fallback.
    routing.settled(who, [settle(primary, Outcome(Kind.TRANSIENT, "overloaded")),
                          settle(fallback, SUCCESS)])  # fmt: skip
    clock.now += 60  # the primary has recovered; the hold keeps the session on b
    assert targets(routing, who)[0] == fallback
    routing.settled(who, [settle(fallback, SUCCESS)])
    # Another session sees the primary fail again: the hold lasts from then.
    clock.now += 200
    routing.settled(session(8), [settle(primary, Outcome(Kind.SKIPPED, "breaker_open"))])
    clock.now += 299
    assert targets(routing, who)[0] == fallback
    clock.now += 2
    assert targets(routing, who)[0] == primary
    assert targets(routing, session(9))[0].provider == "a"  # never held: never moved


def test_without_a_hold_the_primary_comes_back_at_once() -> None:
    routing = Routing(config(["a/m", "b/m"]))
    who = session(7)
    primary, fallback = targets(routing, who)[0], targets(routing, who)[3]
    routing.settled(who, [settle(primary, Outcome(Kind.TRANSIENT, "overloaded")),
                          settle(fallback, SUCCESS)])  # fmt: skip
    assert targets(routing, who)[0] == primary
