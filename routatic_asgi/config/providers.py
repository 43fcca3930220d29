"""A provider's settings: its protocol, base URL, credentials and models.

A provider is checked on its own here (its URL, its one source of credentials, the cache
options its protocol allows); which providers a chain may name is checked by `Config`.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from routatic_asgi.config.units import Model, Seconds, Secret

__all__ = ["ModelCaps", "ProviderConfig"]


class ModelCaps(Model):
    """What a model can serve; a target that cannot serve a request is skipped as unfit."""

    context: int | None = Field(None, gt=0, description="Context window in tokens.")
    vision: bool = True
    tools: bool = True
    thinking: bool = True
    max_output: int | None = Field(
        None, gt=0, description="Largest max_tokens it accepts; translated requests are capped."
    )
    reasoning_replay: bool | None = Field(
        None,
        description="protocol openai: the model wants its reasoning_content back on tool-call "
        "turns (DeepSeek's thinking mode); the gateway keeps it and puts it back when the client "
        "drops it. Unset: guessed from a DeepSeek name in the model or base_url.",
    )


class ProviderConfig(Model):
    protocol: Literal["anthropic", "openai", "responses"] = Field(
        description="anthropic (Messages), openai (Chat Completions) or responses (Responses API)."
    )
    base_url: str = Field(description="Anthropic: without /v1. OpenAI and Responses: with /v1.")
    auth: Literal["passthrough", "none"] | None = None
    keys: list[Secret] = Field(default_factory=list)
    key_command: str | None = Field(
        None, description="A command that prints a fresh key; run once on a 401."
    )
    strategy: Literal["affinity", "round_robin", "ordered"] = Field(
        "affinity",
        description="How a pool picks a key: affinity (each session keeps its key), "
        "round_robin (per request) or ordered (the first healthy key).",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    models: dict[str, ModelCaps] = Field(default_factory=dict)
    connect_timeout: Seconds = 10.0
    cache_control: bool = Field(
        False,
        description="protocol openai: the provider honours Anthropic cache_control "
        "breakpoints on content parts (OpenRouter), so translated requests keep them.",
    )
    auto_cache: bool = Field(
        True,
        description="protocol anthropic: requests translated from OpenAI and Responses "
        "clients get prompt-cache breakpoints (tools, system, the last turns).",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # The value is not echoed: a URL may carry a password.
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("not an http(s) URL; write it like https://api.anthropic.com")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _api_root(self) -> ProviderConfig:
        """A base_url that names an endpoint, or repeats what the gateway appends, fails
        every request with a 404 that looks like an unknown model: refuse it here."""
        path = urlsplit(self.base_url).path.rstrip("/")
        if self.protocol == "anthropic" and re.search(r"/v1(/messages)?$", path):
            raise ValueError(
                "base_url: an anthropic base_url ends before /v1: the gateway appends "
                "/v1/messages, so this would call .../v1/v1/messages; remove the trailing /v1"
            )
        endpoint = re.search(r"/(chat/completions|responses|completions|messages)$", path)
        if self.protocol != "anthropic" and endpoint:
            raise ValueError(
                f"base_url: names the endpoint /{endpoint.group(1)}; give the API root "
                "(e.g. https://api.openai.com/v1): the gateway appends /chat/completions "
                "or /responses itself"
            )
        return self

    @model_validator(mode="after")
    def _cache_options_fit_the_protocol(self) -> ProviderConfig:
        if self.cache_control and self.protocol != "openai":
            raise ValueError(
                "cache_control: true is for protocol: openai providers; Anthropic targets "
                "always get the client's breakpoints and Responses has none"
            )
        if not self.auto_cache and self.protocol != "anthropic":
            raise ValueError("auto_cache is for protocol: anthropic providers")
        return self

    @model_validator(mode="after")
    def _one_credential_source(self) -> ProviderConfig:
        has_keys = bool(self.keys) or self.key_command is not None
        if self.auth is None and not has_keys:
            raise ValueError(
                "set auth: passthrough (forward the client's credential), auth: none, "
                "or keys: [...]"
            )
        if self.auth is not None and has_keys:
            raise ValueError(f"auth: {self.auth} and keys/key_command exclude each other")
        return self

    @property
    def passthrough(self) -> bool:
        return self.auth == "passthrough"
