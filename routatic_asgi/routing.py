"""Resolve a request to its ordered targets: route by model glob and traits, expand key pools.

Pure apart from the rotation counter of each key pool. It never calls an upstream and never
looks at breaker or credential state: skipping a target is the inner layers' decision.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any

from routatic_asgi.attempt import Credential, Target
from routatic_asgi.config import Config, ProviderConfig, RouteConfig, RouteWhen, iter_chain
from routatic_asgi.translate.fit import has_images
from routatic_asgi.translate.tokens import estimate_tokens

__all__ = ["Routing", "is_background_model", "request_traits"]

_BACKGROUND = re.compile(r"haiku", re.IGNORECASE)


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

    def __init__(self, config: Config) -> None:
        self.config = config
        self.credentials = {name: _credentials(config, name) for name in config.providers}
        self.uses_traits = any(route.when is not None for route in config.routes)
        self._turns = {name: itertools.count() for name in config.providers}

    def route_for(self, model: str, traits: Mapping[str, Any]) -> RouteConfig | None:
        for route in self.config.routes:
            if route.matches(model) and _traits_match(route.when, traits):
                return route
        return None

    def targets(self, route: RouteConfig, model: str) -> list[Target]:
        """Every target of the route, each keyed provider expanded over its pool."""
        targets: list[Target] = []
        rotation: dict[str, int] = {}
        for provider_name, upstream_model in iter_chain(route, model):
            provider = self.config.providers[provider_name]
            if provider_name not in rotation:
                rotation[provider_name] = next(self._turns[provider_name])
            targets.extend(
                Target(
                    provider_name,
                    provider.protocol,
                    upstream_model,
                    provider.base_url,
                    provider.passthrough,
                    credential,
                )
                for credential in self._pool(provider_name, provider, rotation[provider_name])
            )
        return targets

    def _pool(self, name: str, provider: ProviderConfig, turn: int) -> Iterator[Credential | None]:
        pool = self.credentials[name]
        if not pool:
            yield None
            return
        start = turn % len(pool) if provider.strategy == "round_robin" else 0
        yield from pool[start:]
        yield from pool[:start]


def _traits_match(when: RouteWhen | None, traits: Mapping[str, Any]) -> bool:
    if when is None:
        return True
    if when.thinking is not None and bool(traits.get("thinking")) != when.thinking:
        return False
    if when.images is not None and bool(traits.get("images")) != when.images:
        return False
    if when.background is not None and bool(traits.get("background")) != when.background:
        return False
    return when.tokens_over is None or int(traits.get("tokens", 0)) > when.tokens_over


def request_traits(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The traits a route's `when` can ask for, from the parsed body of either protocol.

    `tokens` is the local estimate (an image costs a flat amount, not its base64 size).
    `background` marks the client's small/fast model: Claude Code sends its background work
    (titles, summaries, quick checks) to Haiku.
    """
    return {
        "thinking": _wants_thinking(payload),
        "images": has_images(payload),
        "tokens": estimate_tokens(payload),
        "background": is_background_model(str(payload.get("model", ""))),
    }


def is_background_model(model: str) -> bool:
    return _BACKGROUND.search(model) is not None


def _wants_thinking(payload: Mapping[str, Any]) -> bool:
    thinking = payload.get("thinking")  # Anthropic, and DeepSeek-style OpenAI bodies
    if isinstance(thinking, dict):
        return thinking.get("type") in ("enabled", "adaptive")
    effort = payload.get("reasoning_effort")
    reasoning = payload.get("reasoning")  # OpenRouter's form
    if isinstance(reasoning, dict):
        effort = effort or reasoning.get("effort") or reasoning.get("max_tokens")
    return bool(effort) and effort != "none"
