"""The embedded default: Anthropic passthrough first, then the fallbacks that have a key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from routatic_asgi.config.loading import parse_config
from routatic_asgi.config.model import Config

__all__ = ["default_config", "default_left_out"]

# (name, environment variable, provider, fallback model): tried in this order after Anthropic.
_FALLBACKS: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    (
        "zen",
        "OPENCODE_API_KEY",
        {"protocol": "openai", "base_url": "https://opencode.ai/zen/v1"},
        "deepseek-v4-flash",
    ),
    (
        "openrouter",
        "OPENROUTER_API_KEY",
        {"protocol": "openai", "base_url": "https://openrouter.ai/api/v1"},
        "deepseek/deepseek-chat",
    ),
    (
        "deepseek",
        "DEEPSEEK_API_KEY",
        {"protocol": "openai", "base_url": "https://api.deepseek.com/v1"},
        "deepseek-chat",
    ),
)


def default_config(env: Mapping[str, str] | None = None) -> Config:
    """Anthropic passthrough first, then every fallback provider whose key is in `env`."""
    env = os.environ if env is None else env
    providers: dict[str, Any] = {
        "anthropic": {
            "protocol": "anthropic",
            "base_url": env.get("ROUTATIC_ANTHROPIC_BASE_URL") or "https://api.anthropic.com",
            "auth": "passthrough",
        }
    }
    chain = ["anthropic/{model}"]
    for name, variable, provider, model in _FALLBACKS:
        if env.get(variable):
            providers[name] = {**provider, "keys": [f"${{{variable}}}"]}
            chain.append(f"{name}/{model}")
    data = {"providers": providers, "routes": [{"match": "*", "chain": chain}]}
    return parse_config(data, source="<embedded default>", env=env)


def default_left_out(env: Mapping[str, str] | None = None) -> list[str]:
    """The embedded default's fallback providers left out, and why."""
    env = os.environ if env is None else env
    return [
        f"{name} left out: {variable} is not set"
        for name, variable, _, _ in _FALLBACKS
        if not env.get(variable)
    ]
