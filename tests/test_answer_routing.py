"""The final answer when nothing committed, and target resolution with key pools."""

from __future__ import annotations

import json

from routatic_asgi.answer import final_answer
from routatic_asgi.attempt import Attempt, Credential, Target
from routatic_asgi.classify import Kind, Outcome
from routatic_asgi.config import parse_config
from routatic_asgi.routing import Routing

NOW = 1_000.0


def attempt(
    name: str,
    outcome: Outcome,
    *,
    status: int = 0,
    first: bool = False,
    passthrough: bool = False,
    credential: Credential | None = None,
) -> Attempt:
    provider, _, model = name.partition("/")
    made = Attempt(
        Target(provider, "anthropic", model, "http://x", passthrough, credential), 1, first
    )
    made.settle(outcome)
    made.status = status
    made.body = b'{"upstream": true}'
    return made


def body(answer_body: bytes) -> dict[str, object]:
    payload = json.loads(answer_body)
    assert payload["type"] == "error"
    return payload["error"]  # type: ignore[no-any-return]


def test_a_first_target_client_error_is_returned_as_is() -> None:
    answer = final_answer(
        "anthropic",
        [attempt("a/m", Outcome(Kind.CLIENT, "status_400", 400), status=400, first=True)],
        NOW,
    )
    assert (answer.status, answer.body) == (400, b'{"upstream": true}')


def test_all_rate_limited_is_429_with_the_soonest_wait() -> None:
    answer = final_answer(
        "anthropic",
        [
            attempt(
                "a/m", Outcome(Kind.TRANSIENT, "rate_limited", 429, retry_after=30), status=429
            ),
            attempt(
                "b/m", Outcome(Kind.EXHAUSTED, "usage_limit", 429, reset_at=NOW + 4.2), status=429
            ),
        ],
        NOW,
    )
    assert answer.status == 429
    assert (b"retry-after", b"5") in answer.headers
    assert body(answer.body)["type"] == "rate_limit_error"


def test_transient_failures_are_529_when_any_was_overloaded_else_503() -> None:
    overloaded = [
        attempt("a/m", Outcome(Kind.TRANSIENT, "overloaded", 529), status=529),
        attempt("b/m", Outcome(Kind.TRANSIENT, "connect_error")),
    ]
    assert final_answer("anthropic", overloaded, NOW).status == 529
    down = [
        attempt("a/m", Outcome(Kind.TRANSIENT, "connect_error")),
        attempt("b/m", Outcome(Kind.TRANSIENT, "read_timeout")),
    ]
    answer = final_answer("anthropic", down, NOW)
    assert answer.status == 503
    assert "a/m connect_error (x:80); b/m read_timeout" in str(body(answer.body)["message"])


def test_every_configured_key_rejected_names_provider_and_variable() -> None:
    credential = Credential("zen", 0, "sk-very-secret-value", "OPENCODE_API_KEY")
    answer = final_answer(
        "anthropic",
        [
            attempt(
                "zen/a", Outcome(Kind.AUTH, "auth_rejected", 401), status=401, credential=credential
            ),
            attempt(
                "zen/b", Outcome(Kind.AUTH, "auth_rejected", 401), status=401, credential=credential
            ),
        ],
        NOW,
    )
    assert answer.status == 401
    assert body(answer.body)["message"] == "provider 'zen' rejected its key (OPENCODE_API_KEY)"
    assert b"sk-very-secret-value" not in answer.body


def test_openai_callers_get_the_openai_envelope() -> None:
    answer = final_answer(
        "openai",
        [
            attempt("a/m", Outcome(Kind.TRANSIENT, "connect_error")),
            attempt("b/m", Outcome(Kind.TRANSIENT, "connect_error")),
        ],
        NOW,
    )
    assert answer.status == 503
    assert "error" in json.loads(answer.body) and "type" not in json.loads(answer.body)


def test_only_skipped_targets_answer_at_once_with_the_soonest_recovery() -> None:
    answer = final_answer(
        "anthropic",
        [
            attempt("a/m", Outcome(Kind.SKIPPED, "breaker_open", retry_after=40)),
            attempt("b/m", Outcome(Kind.SKIPPED, "breaker_open", retry_after=9.5)),
        ],
        NOW,
    )
    assert answer.status in (429, 503)
    assert (b"retry-after", b"10") in answer.headers


def routing(**provider: object) -> Routing:
    config = parse_config(
        {
            "providers": {
                "pool": {
                    "protocol": "openai",
                    "base_url": "http://pool",
                    "keys": ["k-a", "k-b", "k-c"],
                    **provider,
                },
                "anthropic": {
                    "protocol": "anthropic",
                    "base_url": "http://a",
                    "auth": "passthrough",
                },
            },
            "routes": [
                {"match": "claude-*", "chain": ["anthropic/{model}", "pool/big", "pool/small"]}
            ],
        },
        env={},
    )
    return Routing(config)


def test_targets_follow_the_chain_with_the_requested_model_filled_in() -> None:
    resolver = routing(strategy="ordered")
    route = resolver.route_for("claude-opus-4-7", {})
    assert route is not None
    targets = resolver.targets(route, "claude-opus-4-7")
    assert [t.key for t in targets] == [
        "anthropic/claude-opus-4-7",
        "pool/big#0",
        "pool/big#1",
        "pool/big#2",
        "pool/small#0",
        "pool/small#1",
        "pool/small#2",
    ]
    assert targets[0].passthrough and targets[0].credential is None
    assert resolver.route_for("gpt-5", {}) is None


def test_round_robin_rotates_the_pool_per_request() -> None:
    resolver = routing(strategy="round_robin")
    route = resolver.route_for("claude-x", {})
    assert route is not None
    firsts = [resolver.targets(route, "claude-x")[1].credential.index for _ in range(4)]  # type: ignore[union-attr]
    assert firsts == [0, 1, 2, 0]
