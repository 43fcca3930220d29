"""The whole configuration: the server, the resilience settings and `Config` itself.

A configuration is validated once, at start, into frozen pydantic models. This module never
opens a connection and never logs a secret: a key is held as a `SecretStr`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from routatic_asgi.config.providers import ProviderConfig
from routatic_asgi.config.routes import RouteConfig, iter_chain
from routatic_asgi.config.units import Bytes, Model, Seconds, Secret
from routatic_asgi.config_errors import unknown_providers
from routatic_asgi.state import parse_state_url

__all__ = [
    "AffinityConfig",
    "BreakerConfig",
    "Config",
    "CooldownConfig",
    "InboundKey",
    "ResilienceConfig",
    "RetryConfig",
    "ServerConfig",
    "config_schema",
]


class InboundKey(Model):
    """A proxy key a client may present; `name` is the actor in logs."""

    name: str
    key: Secret


# A proxy key is a bare string (named key0, key1, ...) or {name, key}.
_INBOUND_KEYS_SCHEMA = {
    "type": "array",
    "items": {
        "anyOf": [
            {"type": "string"},
            {
                "type": "object",
                "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
                "required": ["name", "key"],
                "additionalProperties": False,
            },
        ]
    },
}


def _inbound_keys(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    return [
        {"name": f"key{index}", "key": item} if isinstance(item, str) else item
        for index, item in enumerate(value)
    ]


class ServerConfig(Model):
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    keys: Annotated[
        list[InboundKey], BeforeValidator(_inbound_keys), WithJsonSchema(_INBOUND_KEYS_SCHEMA)
    ] = Field(
        default_factory=list,
        description="Inbound proxy keys, sent as x-routatic-key (or Authorization: Bearer).",
    )
    max_body: Bytes = Field(32 * 1024**2, description="Largest request body accepted.")
    body_memory: Bytes = Field(
        1024**3,
        gt=0,
        description="What bodies of 1 MiB or more may take at once, parsed, across requests; "
        "one that does not fit waits up to 5 s, then gets a 503 to retry.",
    )
    max_connections: int = Field(
        4096,
        gt=0,
        description="Open client connections at most (per worker); past it an idle one is "
        "closed to make room, else the new one is refused.",
    )
    idle_timeout: Seconds = Field(5.0, description="A kept-alive connection may wait this long.")
    header_timeout: Seconds = Field(
        10.0, description="A request's line and headers must arrive within this of its start."
    )
    body_timeout: Seconds = Field(60.0, description="A request's body must arrive within this.")


class CooldownConfig(Model):
    base: Seconds = 30.0
    max: Seconds = 900.0


class RetryConfig(Model):
    """Trying the same target again before moving on."""

    attempts: int = Field(
        1, ge=0, le=5, description="Retries of a target after a blip; 0 turns retrying off."
    )
    max_wait: Seconds = Field(
        5.0, description="The longest Retry-After waited out on the same target."
    )


class BreakerConfig(Model):
    """When a breaker opens, and how long it waits between probes."""

    failures: int = Field(2, ge=1, description="Consecutive failed calls that open a breaker.")
    probe_max: Seconds = Field(
        30.0, description="The longest wait between probes of a target failing on its own."
    )


class AffinityConfig(Model):
    hold: Seconds = Field(
        0.0,
        description="How long a session that failed over stays on its fallback after the "
        "primary was last seen failing; 0: it goes back as soon as the primary is healthy.",
    )


class ResilienceConfig(Model):
    fallback_on: list[int] = Field(default_factory=lambda: [408, 429, 500, 502, 503, 504, 529])
    cooldown: CooldownConfig = Field(default_factory=CooldownConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    rescue: bool = Field(
        True, description="Continue a stream that broke after its commit on the next target."
    )
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    quota_cooldown: Seconds = 3600.0
    quota_recheck: Seconds = Field(
        3600.0, description="How often one real request rechecks a used-up credential."
    )
    max_wait: Seconds = Field(
        3600.0, description="Longest Retry-After honoured; a longer one is taken as this."
    )
    max_attempts: int = Field(4, ge=1)
    deadline: Seconds = 600.0
    first_byte_timeout: Seconds = 60.0
    hedge_after: Seconds | None = Field(
        None,
        description="Start the next target beside a stream whose first content is this late.",
    )
    idle_timeout: Seconds = 300.0
    affinity: AffinityConfig = Field(default_factory=AffinityConfig)


class Config(Model):
    server: ServerConfig = Field(default_factory=ServerConfig)
    providers: dict[str, ProviderConfig] = Field(min_length=1)
    routes: list[RouteConfig] = Field(min_length=1)
    resilience: ResilienceConfig = Field(default_factory=ResilienceConfig)
    state: str = Field("memory", description="memory, or a redis:// URL shared by replicas.")
    # Which environment variable each value came from, by key path: "providers.zen.keys.0".
    _variables: dict[str, str] = PrivateAttr(default_factory=dict)
    # Where it was read from, and a short hash of what it resolved to (keys included: a
    # rotated key is a new configuration), for /status and the reload log.
    _source: str = PrivateAttr("<config>")
    _digest: str = PrivateAttr("")

    def variable_for(self, path: str) -> str | None:
        return self._variables.get(path)

    @property
    def source(self) -> str:
        return self._source

    @property
    def digest(self) -> str:
        return self._digest

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, providers: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        for name in providers:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise ValueError(f"provider name {name!r} may use only letters, digits, _ . -")
        return providers

    @field_validator("state")
    @classmethod
    def _state_url(cls, value: str) -> str:
        # The value is not echoed: a Redis URL may carry a password.
        if value != "memory" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use memory or a redis:// (rediss://, unix://) URL")
        if value != "memory":
            parse_state_url(value)  # a bad staleness is a configuration error
        return value

    @model_validator(mode="after")
    def _chains_name_known_providers(self) -> Config:
        unknown = unknown_providers(self.model_dump(include={"providers", "routes"}), "")
        if unknown:
            raise ValueError("; ".join(f"{e.path}: {e.problem}" for e in unknown))
        return self

    def route_for(self, model: str, traits: Mapping[str, Any] | None = None) -> RouteConfig | None:
        """The first route for `model` whose `when` admits `traits` (None: any traits)."""
        return next((route for route in self.routes if route.matches(model, traits)), None)

    def named_models(self) -> set[str]:
        """Every model name the configuration itself writes: literal route matches, `models:`
        catalogs and the fixed models of chains. Any other name is a client's choice."""
        names = {r.match for r in self.routes if not any(c in r.match for c in "*?[")}
        names.update(m for provider in self.providers.values() for m in provider.models)
        for route in self.routes:
            for _, model in iter_chain(route, "{model}"):
                if "{model}" not in model:
                    names.add(model)
        return names


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a configuration file as written, for editors and
    validators: durations and sizes may be strings, `keys` may be bare strings."""
    schema = Config.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "routatic-asgi configuration",
    }
