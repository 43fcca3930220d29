"""Resolve a request to its ordered targets: route by model glob and traits, expand groups
and key pools in the order the request's session prefers. Each target carries what the
configuration says of it (its model's capabilities, its provider's headers and cache
settings), so the layers that serve it never read the configuration.

A pool's keys are ordered by `strategy`: `affinity` (rendezvous on the session, the default),
`round_robin` (a rotation per request) or `ordered`; a group's members by weighted rendezvous
on the session. Pure apart from the rotation counters and the optional failover hold. It
never calls an upstream and never looks at breaker or credential state: skipping a target is
the inner layers' decision, which is what makes "the best healthy key" of a session.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from routatic_asgi.affinity import FailoverHold, rendezvous, seed_of
from routatic_asgi.attempt import Attempt, Credential, Target
from routatic_asgi.config import Config, GroupMember, GroupStep, RouteConfig
from routatic_asgi.session import Session

__all__ = ["Routing"]


def _credentials(config: Config, name: str) -> tuple[Credential, ...]:
    keys = config.providers[name].keys
    return tuple(
        Credential(
            name,
            index,
            key.get_secret_value(),
            config.variable_for(f"providers.{name}.keys.{index}")
            or f"providers.{name}.keys[{index}]",
        )
        for index, key in enumerate(keys)
    )


class Routing:
    """Turns a requested model into the targets to try, in order."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.credentials = {name: _credentials(config, name) for name in config.providers}
        # A key's place in the hash comes from its secret, so reordering or adding keys
        # moves only the sessions that must move.
        self._key_seeds = {
            name: [seed_of(f"{name}:{c.secret}") for c in pool]
            for name, pool in self.credentials.items()
        }
        self.uses_traits = any(route.when is not None for route in config.routes)
        self._turns = {name: itertools.count() for name in config.providers}
        self._steps = {id(route): _steps(route) for route in config.routes}
        self.hold = FailoverHold(config.resilience.affinity.hold, clock=clock)
        self._headers = {
            name: tuple((k.lower().encode(), v.encode()) for k, v in provider.headers.items())
            for name, provider in config.providers.items()
        }

    def route_for(self, model: str, traits: Mapping[str, Any]) -> RouteConfig | None:
        return self.config.route_for(model, traits)

    def targets(
        self, route: RouteConfig, model: str, session: Session | None = None
    ) -> list[Target]:
        """Every target of the route, groups and key pools in the session's order."""
        affinity = (session.key if session is not None else "").encode()
        targets: list[Target] = []
        rotation: dict[str, int] = {}
        for step in self._steps.get(id(route)) or _steps(route):
            for entry in rendezvous(affinity, step.entries, step.seeds, step.weights):
                provider_name, _, upstream_model = entry.partition("/")
                if provider_name not in rotation:
                    rotation[provider_name] = next(self._turns[provider_name])
                targets.extend(
                    self._pool(
                        provider_name,
                        upstream_model.replace("{model}", model),
                        affinity,
                        rotation[provider_name],
                    )
                )
        if session is not None:
            targets = self.hold.arrange(session.hashed, targets)
        return targets

    def settled(self, session: Session | None, attempts: Sequence[Attempt]) -> None:
        """After a request: what the failover hold learns from its attempts."""
        if session is not None:
            self.hold.learn(session.hashed, attempts)

    def _pool(self, name: str, model: str, affinity: bytes, turn: int) -> list[Target]:
        provider = self.config.providers[name]
        pool: Sequence[Credential | None] = self.credentials[name] or (None,)
        if len(pool) > 1 and provider.strategy == "affinity":
            pool = rendezvous(affinity, pool, self._key_seeds[name], [1.0] * len(pool))
        elif len(pool) > 1 and provider.strategy == "round_robin":
            start = turn % len(pool)
            pool = [*pool[start:], *pool[:start]]
        return [
            Target(
                name,
                provider.protocol,
                model,
                provider.base_url,
                provider.passthrough,
                credential,
                caps=provider.models.get(model),
                headers=self._headers[name],
                cache_control=provider.cache_control,
                auto_cache=provider.auto_cache,
            )
            for credential in pool
        ]


@dataclass(frozen=True, slots=True)
class _Step:
    """A chain step, ready to order: one target, or a group's members with their weights."""

    entries: tuple[str, ...]
    seeds: tuple[bytes, ...]
    weights: tuple[float, ...]


def _steps(route: RouteConfig) -> list[_Step]:
    steps = []
    for step in route.chain:
        members = step.group if isinstance(step, GroupStep) else [GroupMember(target=step)]
        steps.append(
            _Step(
                tuple(m.target for m in members),
                tuple(seed_of(m.target) for m in members),
                tuple(m.weight for m in members),
            )
        )
    return steps
